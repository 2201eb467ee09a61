"""A COCO file a user gives a command, perhaps written by another tool: checked before use.

``merge`` (its COCO inputs), ``qa apply`` (a folder holding only a COCO file),
``import --out`` (the same) and ``eval --predictions`` read COCO files that
box2mask may not have written. Such a file may lack box2mask's own fields
(``sequence``, ``frame_index``, ``track_id``), or name ids it does not hold (an
annotation's ``image_id`` or ``category_id``). :func:`check_coco` finds the
first such problem and raises one :class:`~box2mask.errors.UsageError` naming
the file, the record (``annotations[3]``) and the field, before the command
writes anything; without it the command would end in a ``KeyError`` halfway.

The fields box2mask knows are type-checked wherever they are present
(:data:`KINDS`); a command says which of them it needs (``images=``,
``annotations=``) and why (``why=``, appended to the message).

The record checks (:func:`check_record`, :func:`check_prediction_image`,
:func:`check_prediction_annotation`) look at one record at a time, so that a
reader that streams a file instead of loading it can make them as it goes;
only the cross-checks (an ``image_id`` the file holds, one id per image) need
the file's image ids.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from box2mask.errors import UsageError
from box2mask.ids import whole_id

#: what a known field must hold: ``text``, ``whole`` (a whole number), ``size`` (a whole
#: number >= 1), ``id`` (a whole number or a string, as COCO ids are)
KINDS = {
    "images": {"id": "id", "sequence": "text", "frame_index": "whole", "file_name": "text",
               "width": "size", "height": "size"},
    "annotations": {"id": "id", "image_id": "id", "category_id": "id", "track_id": "whole"},
}  # fmt: skip
_SAID = {
    "text": "a string",
    "whole": "a whole number",
    "size": "a whole number of pixels, at least 1",
    "id": "a whole number or a string",
}


def check_coco(
    data: Any,
    label: str,
    *,
    images: Iterable[str] = (),
    annotations: Iterable[str] = ("image_id",),
    categories: bool = True,
    why: str = "",
) -> None:
    """Check a parsed COCO file; the first problem is one :class:`UsageError`.

    Args:
        data: the file's JSON.
        label: the file in messages (``"--predictions a.json"``).
        images: fields every image must have (``id`` always).
        annotations: fields every annotation must have (``image_id`` always).
        categories: the file has a ``categories`` list, and an annotation's
            ``category_id`` (needed then) is one of its ids.
        why: what needs the fields, appended to a missing field's message
            (``"merge matches frames by ..."``).

    Raises:
        UsageError: not a COCO object; an image or annotation that is not an
            object, lacks a needed field or holds a field of the wrong kind; two
            images with one id; an ``image_id`` or ``category_id`` the file lacks.
    """
    lists = ("images", "annotations", "categories") if categories else ("images", "annotations")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), list) for k in lists):
        raise UsageError(f"{label}: not a COCO file (a JSON object with {', '.join(lists)} lists)")
    image_ids: dict[Any, int] = {}
    for n, im in enumerate(data["images"]):
        check_record(im, "images", n, label, need=("id", *images), why=why)
        key = id_key(im["id"])
        if key in image_ids:
            raise UsageError(
                f"{label}: images[{n}] has id {im['id']!r}, as images[{image_ids[key]}] does "
                "(an annotation's image_id could not say which it means)"
            )
        image_ids[key] = n
    cat_ids = set()
    if categories:
        for n, c in enumerate(data["categories"]):
            if not isinstance(c, dict) or whole_id(c.get("id")) is None:
                raise UsageError(f"{label}: categories[{n}] has no id (a whole number)")
            cat_ids.add(whole_id(c["id"]))
    need = ("image_id", *annotations, *(("category_id",) if categories else ()))
    for n, ann in enumerate(data["annotations"]):
        check_record(ann, "annotations", n, label, need=need, why=why)
        if id_key(ann["image_id"]) not in image_ids:
            raise UsageError(
                f"{label}: annotations[{n}] has image_id {ann['image_id']!r}, which no image of "
                "the file has"
            )
        if categories and whole_id(ann["category_id"]) not in cat_ids:
            raise UsageError(
                f"{label}: annotations[{n}] has category_id {ann['category_id']!r}, which is not "
                "in the file's categories"
            )


def check_record(
    rec: Any, table: str, n: int, label: str, need: Iterable[str] = (), why: str = ""
) -> None:
    """One image (``table`` ``"images"``) or annotation (``"annotations"``), the ``n``-th
    of its list: a JSON object, with the fields ``need``, and box2mask's fields
    (:data:`KINDS`) of the right kind wherever present.

    Raises:
        UsageError: naming ``label``, the record and the field.
    """
    where = f"{table}[{n}]"
    if not isinstance(rec, dict):
        raise UsageError(f"{label}: {where} is not a JSON object")
    kinds = KINDS[table]
    for key in dict.fromkeys(need):
        if key not in rec:
            what = f" ({_SAID[kinds[key]]})" if key in kinds else ""
            raise UsageError(f"{label}: {where} has no {key}{what}{'; ' + why if why else ''}")
    for key, kind in kinds.items():
        if key in rec and not _is(rec[key], kind):
            raise UsageError(f"{label}: {where} has {key} {rec[key]!r}, not {_SAID[kind]}")


def check_predictions(data: Any, label: str, ids_are_tracks: bool) -> None:
    """``eval --predictions``: a file, perhaps another tool's, that can be scored.

    Every annotation names an image of the file (:func:`check_coco`), every image
    can be placed on a frame and every annotation matched to an object
    (:func:`check_prediction_image`, :func:`check_prediction_annotation`).

    Raises:
        UsageError: naming the file and the first record that fails.
    """
    check_coco(data, label, categories=False)
    for n, im in enumerate(data["images"]):
        check_prediction_image(im, n, label)
    for n, ann in enumerate(data["annotations"]):
        check_prediction_annotation(ann, n, label, ids_are_tracks)


def prediction_checks(label: str, ids_are_tracks: bool) -> Callable[[str, int, Any], None]:
    """The record checks of :func:`check_predictions` for a reader that streams the file
    (:class:`box2mask.cocofile.CocoFile`'s ``check``): ``check(table, n, record)``.
    The cross-checks follow once it is indexed (:func:`check_indexed_predictions`)."""

    def check(table: str, n: int, rec: Any) -> None:
        if table == "images":
            check_record(rec, "images", n, label, need=("id",))
            check_prediction_image(rec, n, label)
        else:
            check_record(rec, "annotations", n, label, need=("image_id",))
            check_prediction_annotation(rec, n, label, ids_are_tracks)

    return check


def check_indexed_predictions(coco: Any, label: str) -> None:
    """The cross-checks of :func:`check_coco` on an indexed file
    (:class:`box2mask.cocofile.CocoFile`): one id per image, every ``image_id`` an image's.

    Raises:
        UsageError: naming the file and the first record that fails.
    """
    dup = coco.first_duplicate_image()
    if dup is not None:
        n, m, value = dup
        raise UsageError(
            f"{label}: images[{n}] has id {value!r}, as images[{m}] does (an annotation's "
            "image_id could not say which it means)"
        )
    orphan = coco.first_orphan()
    if orphan is not None:
        n, image_id = orphan
        raise UsageError(
            f"{label}: annotations[{n}] has image_id {image_id!r}, which no image of the file has"
        )


def check_prediction_image(im: dict[str, Any], n: int, label: str) -> None:
    """A predictions file's image can be placed on a dataset's frame: by ``sequence`` and
    ``frame_index``, else by ``file_name``."""
    if not ("sequence" in im and "frame_index" in im) and "file_name" not in im:
        raise UsageError(
            f"{label}: images[{n}] has neither sequence and frame_index nor file_name: it "
            "cannot be placed on a frame of the dataset"
        )


def check_prediction_annotation(
    ann: dict[str, Any], n: int, label: str, ids_are_tracks: bool
) -> None:
    """A predictions file's annotation can be matched to its ground-truth object: by its
    ``track_id``, or by its ``id`` where the dataset numbers its objects so
    (``ids_are_tracks``: the ``coco`` adapter's objects without a ``track_id``)."""
    if "track_id" in ann:
        return
    if not ids_are_tracks:
        raise UsageError(
            f"{label}: annotations[{n}] has no track_id (a whole number): a predicted mask is "
            "matched to its ground-truth object by track id (box2mask's COCO output has them; "
            "an annotation id stands in only for --dataset coco objects without one)"
        )
    if whole_id(ann.get("id")) is None:
        raise UsageError(
            f"{label}: annotations[{n}] has neither track_id nor id (whole numbers) to match it "
            "to a ground-truth object"
        )


def id_key(value: Any) -> Any:
    """An id as a key: ``3`` and ``3.0`` are one image; a string is itself."""
    return value if isinstance(value, str) else whole_id(value)


def _is(value: Any, kind: str) -> bool:
    if kind == "text":
        return isinstance(value, str)
    if kind == "id":
        return isinstance(value, str) or whole_id(value) is not None
    number = whole_id(value)
    return number is not None and (kind == "whole" or number >= 1)


__all__ = [
    "KINDS",
    "check_coco",
    "check_indexed_predictions",
    "check_prediction_annotation",
    "check_prediction_image",
    "check_predictions",
    "check_record",
    "prediction_checks",
    "id_key",
]
