"""What the exchange speaks in: object keys, names as the tools can hold them, found objects.

An object of a job is known by its key ``(sequence, frame_index, track_id)``:
the frame of a video and the object's track in it. Every exported object
carries its key into the tool (attributes, task data) and every object read
back is matched by it, never by the tool's own ids, which tools renumber.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from box2mask.masks import MaskBlock

#: the tool names ``--to`` and ``--from`` take
TOOLS = ("cvat", "labelstudio")
#: the shapes an export can give a mask: the tool's own mask RLE, or polygons (approximate)
SHAPES = ("mask", "polygon")


class FrameKey(NamedTuple):
    """A frame: its sequence's name and its number in the dataset's own numbering."""

    sequence: str
    frame_index: int


class ObjectKey(NamedTuple):
    """An object: its frame and its track id."""

    sequence: str
    frame_index: int
    track_id: int

    @property
    def frame(self) -> FrameKey:
        return FrameKey(self.sequence, self.frame_index)


def name_to_json(name: str) -> str | dict[str, str]:
    """A name from the data as a JSON value that survives any JSON parser.

    A name that UTF-8 can hold is itself. One holding lone surrogates (a folder
    name's bytes that are not UTF-8, a JSON ``"\\ud800"``) is ``{"utf8_hex": ...}``,
    the hex of its bytes (``surrogatepass``): a server that stores JSON as UTF-8
    (Label Studio's database) cannot take the surrogates themselves.

    >>> name_to_json("car/001"), name_to_json("a\\udcff")
    ('car/001', {'utf8_hex': '61edb3bf'})
    """
    try:
        name.encode("utf-8")
        return name
    except UnicodeEncodeError:
        return {"utf8_hex": name.encode("utf-8", "surrogatepass").hex()}


def name_from_json(value: Any) -> str:
    """The name :func:`name_to_json` wrote.

    Raises:
        ValueError: ``value`` is neither form.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("utf8_hex"), str):
        try:
            return bytes.fromhex(value["utf8_hex"]).decode("utf-8", "surrogatepass")
        except ValueError:
            pass
    raise ValueError(f"not a name: {value!r}")


def _escape(ch: str) -> str:
    return "".join(f"%{b:02X}" for b in ch.encode("utf-8", "surrogatepass"))


def tool_text(name: str) -> str:
    """A name as text every tool can hold: XML 1.0 (CVAT's files, Label Studio's
    labeling config), a database column, one line.

    ``%``, control characters (newline and tab included), DEL, the C1 controls,
    lone surrogates and the non-characters U+FFFE/U+FFFF are written as ``%XX``
    (their UTF-8 bytes); the empty name is ``%``. Everything else stays. One-to-one,
    so categories and sequences keep distinct names in the tools.

    >>> tool_text("small vehicle"), tool_text("a\\nb"), tool_text("50%"), tool_text("")
    ('small vehicle', 'a%0Ab', '50%25', '%')
    """
    if name == "":
        return "%"
    out = []
    for ch in name:
        o = ord(ch)
        bad = ch == "%" or o < 0x20 or 0x7F <= o <= 0x9F or 0xD800 <= o <= 0xDFFF
        out.append(_escape(ch) if bad or o in (0xFFFE, 0xFFFF) else ch)
    return "".join(out)


def tool_labels(categories: list[dict[str, Any]]) -> dict[str, int]:
    """The tools' label names of a job's categories: ``{label: category_id}``.

    A label is :func:`tool_text` of the category's name; two categories with one
    name (a COCO file may have them) get `` #<id>`` after the name. A pure function
    of the categories, so the way back rebuilds it from the job.
    """
    labels: dict[str, int] = {}
    names = [tool_text(str(c.get("name", ""))) for c in categories]
    for c, name in zip(categories, names, strict=True):
        label = name if names.count(name) == 1 else f"{name} #{c['id']}"
        labels[label] = int(c["id"])
    return labels


@dataclass
class Found:
    """One object as a tool's file gives it back.

    Attributes:
        where: where it is in the file, for messages (``task 12, region 'r7'``).
        frame: its frame, ``None`` when the file does not say which.
        track_id: its track id, ``None`` when the reviewer drew it without one.
        label: the tool's label name (a :func:`tool_labels` key).
        rle: the mask, in frame pixels, as COCO compressed RLE (a file's objects are held
            compactly, not as full-frame arrays), ``None`` when it could not be read
            (``problem``).
        shape_text: for a polygon, its vertices as the tool's file writes them: a polygon
            the reviewer left as the export wrote it keeps the job's own mask (a polygon
            is not exact; see :mod:`box2mask.exchange.polygons`).
        problem: why the object cannot be used, if it cannot.
    """

    where: str
    frame: FrameKey | None
    track_id: int | None
    label: str | None
    rle: dict[str, Any] | None = None
    shape_text: str | None = None
    problem: str | None = None


@dataclass
class ToolFile:
    """What a tool's file says: the objects in it and the frames it covers.

    Attributes:
        tool: ``cvat`` or ``labelstudio``.
        found: the objects.
        covered: each frame the reviewer worked on, with the track ids the export
            sent to it with a shape: an exported track missing from the file was deleted.
        empty: per frame, the track ids sent without a shape (empty masks).
        not_reviewed: frames the file holds without a review (a Label Studio task
            with no annotation); nothing of theirs changes.
        skipped: ``(where, reason)`` of parts of the file that are not box2mask's.
        exported_shapes: for polygon exports, the :attr:`Found.shape_text` of each
            polygon the export writes for a mask (its block in frame pixels) of a frame
            of size ``(H, W)``.
    """

    tool: str
    found: list[Found]
    covered: dict[FrameKey, set[int]]
    empty: dict[FrameKey, set[int]] = field(default_factory=dict)
    not_reviewed: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)
    exported_shapes: Callable[[MaskBlock, tuple[int, int]], list[str]] | None = None
