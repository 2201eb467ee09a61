"""Every option of a conversion, in one dataclass shared by the CLI, YAML configs and Python.

``box2mask convert --crop-size 384`` and ``crop_size: 384`` in a ``--config``
YAML file and ``ConvertOptions(crop_size=384)`` are the same thing; options on
the command line win over the file.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from box2mask.choices import Interpolation, Precision, Window
from box2mask.errors import AnnotationError, UsageError

#: classes given a box mask without running the model, as in the ROS-SAM paper (the SAM
#: family's and the weight-free models' default; ``lite`` segments them: docs/lite.md)
DEFAULT_BOX_FILL_CLASSES = ("car",)


def in_identity(how: str = "value") -> dict[str, str]:
    """Field metadata: the option determines the output, so it is part of the job identity.

    ``how``: ``"value"`` (as is), ``"sorted"`` (a list whose order does not
    matter), ``"prompt"`` (only for prompt models; ``None`` for weight-free
    ones, which it does not affect), ``"prompt-when-set"`` (only for prompt
    models and only when not the default, so that jobs started before the
    option existed still resume), ``"when-set"`` (only when not the default, for any
    model), ``"with-split"`` (only when ``--split`` is given: ``--split-by``, ``--seed``).
    """
    return {"identity": how}


@dataclass
class EngineOptions:
    """The options the engine itself uses (DESIGN §4, §6); :class:`ConvertOptions` extends them.

    Declared once here: ``convert``, ``eval`` and the engine read the same
    fields, and those marked :func:`in_identity` enter the job identity.
    """

    batch_size: int = 4
    crop_size: int = field(default=512, metadata=in_identity())
    context: float = field(default=1.25, metadata=in_identity())
    window: str = field(default="centred", metadata=in_identity())
    interpolation: str = field(default="bicubic", metadata=in_identity())
    threshold: float = field(default=0.0, metadata=in_identity())
    box_fill_classes: tuple[str, ...] = field(
        default=DEFAULT_BOX_FILL_CLASSES, metadata=in_identity("sorted")
    )
    box_fill_area: float = field(default=0.0, metadata=in_identity())
    classes: tuple[str, ...] = field(default=(), metadata=in_identity("sorted"))
    clip_to_obb: bool = field(default=False, metadata=in_identity())
    workers: int = 2
    #: frames decoded ahead of the model
    prefetch_frames: int = 4
    #: objects of one frame whose windows have the same side and IoU >= this share
    #: one encoder pass (0: off, every object gets its own crop)
    share_crops: float = field(default=0.0, metadata=in_identity("prompt-when-set"))
    #: --temporal propagate (sam2): SAM 2's video memory along each track, the box prompted
    #: on every --prompt-every K-th frame of a track (docs/models.md); in the identity when set
    temporal: str = field(default="off", metadata=in_identity("prompt-when-set"))
    prompt_every: int = field(default=1, metadata=in_identity("prompt-when-set"))
    #: finished frames queued for the writer thread (0: ``on_frame`` runs inline)
    write_queue: int = 8


@dataclass(kw_only=True)
class ConvertOptions(EngineOptions):
    """Options of ``box2mask convert`` (see ``box2mask convert --help`` for each).

    The engine's options (crop geometry, small objects, batching) come from
    :class:`EngineOptions`; geometry follows DESIGN §4. ``model="auto"`` picks
    the best model whose weights are present, else the best weight-free one
    (said in the run summary). Keyword arguments only.
    """

    # Fields marked ``in_identity`` determine the output: they form the job
    # identity (job_identity) that a resumed run must match. The dataset, its
    # root, the adapter's options, the model and its checkpoint's hash are
    # added by ``convert``, which resolves them.
    dataset: str
    out: Path
    root: Path | None = None
    model: str = "auto"
    checkpoint: str | None = None
    device: str = "auto"
    executor: str = "auto"
    formats: tuple[str, ...] = field(default=("coco",), metadata=in_identity("sorted"))
    sequences: tuple[str, ...] = field(default=(), metadata=in_identity("sorted"))
    shard: str | None = field(default=None, metadata=in_identity())
    overwrite: bool = False
    strict: bool = False
    hq_token_only: bool = field(default=False, metadata=in_identity("prompt"))
    #: resolved (``auto`` -> bf16 on CUDA, else fp32) before it enters the identity
    precision: str = field(default="auto", metadata=in_identity("prompt"))
    compile: bool = False
    profile: bool = False
    adapter_options: dict[str, Any] = field(default_factory=dict)
    ray_address: str | None = None
    ray_actors: int = 0
    #: --split val=F[,test=F]: held-out sequences (or tracks) written as their own files by
    #: every format (box2mask.split); --split-by and --seed only with it
    split: str | None = field(default=None, metadata=in_identity("when-set"))
    split_by: str = field(default="sequence", metadata=in_identity("with-split"))
    seed: int = field(default=0, metadata=in_identity("with-split"))
    #: --summary-json FILE: the run's summary as JSON (box2mask.summary), also in finished.json
    summary_json: Path | None = None
    #: ``None``: the chosen model's default (:attr:`ModelSpec.box_fill_classes`), resolved by
    #: :func:`box2mask.runtime.with_model_defaults` before the identity and the engine see it
    box_fill_classes: tuple[str, ...] | None = field(default=None, metadata=in_identity("sorted"))

    def __post_init__(self) -> None:
        check_types({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})
        self.out = Path(self.out)
        if self.root is not None:
            self.root = Path(self.root)
        self.formats = tuple(split_list(self.formats))
        self.sequences = tuple(split_list(self.sequences))
        self.classes = tuple(split_list(self.classes))
        if self.box_fill_classes is not None:
            self.box_fill_classes = tuple(split_list(self.box_fill_classes))
        from box2mask.writers import WRITERS

        bad = [f for f in self.formats if f not in WRITERS]
        if bad or not self.formats:
            raise UsageError(
                f"--format must be one or more of {', '.join(WRITERS.names())}, "
                f"got {','.join(self.formats) or 'nothing'}"
            )
        self.formats = tuple(dict.fromkeys(self.formats))  # coco,coco is coco
        if self.batch_size < 1:
            raise UsageError(f"--batch-size must be at least 1, got {self.batch_size}")
        if self.workers < 1:
            raise UsageError(f"--workers must be at least 1, got {self.workers}")
        if self.crop_size < 16:
            raise UsageError(f"--crop-size must be at least 16, got {self.crop_size}")
        for name in ("context", "threshold", "box_fill_area", "share_crops"):
            if not math.isfinite(getattr(self, name)):
                raise UsageError(
                    f"{_flag(name)} must be a finite number, got {getattr(self, name)}"
                )
        if self.context < 0:
            raise UsageError(f"--context must be >= 0, got {self.context}")
        self.window = Window.parse(self.window, "--window")
        self.interpolation = Interpolation.parse(self.interpolation, "--interpolation")
        self.precision = Precision.parse(self.precision, "--precision")
        if not 0 <= self.share_crops <= 1:
            raise UsageError(
                f"--share-crops takes a window IoU in 0..1 (0: off), got {self.share_crops}"
            )
        if self.box_fill_area < 0:
            raise UsageError(f"--box-fill-area must be >= 0, got {self.box_fill_area}")
        if self.temporal not in ("off", "propagate"):
            raise UsageError(f"--temporal must be off or propagate, got {self.temporal!r}")
        if self.prompt_every < 1:
            raise UsageError(f"--prompt-every must be at least 1, got {self.prompt_every}")
        if self.prompt_every != 1 and self.temporal == "off":
            raise UsageError(
                f"--prompt-every {self.prompt_every} needs --temporal propagate "
                "(without it every frame is prompted)"
            )
        if self.shard is not None:
            parse_shard(self.shard)
        if self.split is not None:
            from box2mask.split import UNITS, format_split, parse_split

            self.split = format_split(parse_split(self.split))  # canonical: val first, then test
            if self.split_by not in UNITS:
                raise UsageError(f"--split-by must be sequence or track, got {self.split_by!r}")
        elif self.split_by != "sequence" or self.seed != 0:
            flag = "--split-by" if self.split_by != "sequence" else "--seed"
            raise UsageError(f"{flag} is an option of --split (give --split val=F[,test=F])")
        if self.summary_json is not None:
            self.summary_json = Path(self.summary_json)
        if self.ray_actors < 0:
            raise UsageError(f"--ray-actors must be >= 0 (0: auto), got {self.ray_actors}")
        if (self.ray_address or self.ray_actors) and self.executor != "ray":
            flag = "--ray-address" if self.ray_address else "--ray-actors"
            raise UsageError(
                f"{flag} is an option of --executor ray (got --executor {self.executor})"
            )

    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]


def job_identity(opts: ConvertOptions, prompt_model: bool, precision: str) -> dict[str, Any]:
    """The options that determine a job's output, from the fields marked :func:`in_identity`.

    Args:
        opts: the run's options.
        prompt_model: the model is a prompt model (SAM family).
        precision: ``opts.precision`` resolved (``auto`` -> the device's).
    """
    out: dict[str, Any] = {}
    for f in dataclasses.fields(ConvertOptions):
        how = f.metadata.get("identity")
        if how is None:
            continue
        value = precision if f.name == "precision" else getattr(opts, f.name)
        if how == "sorted":
            out[f.name] = None if value is None else sorted(value)  # None: not resolved yet
        elif how == "prompt":
            out[f.name] = value if prompt_model else None
        elif how == "prompt-when-set":
            if prompt_model and value != f.default:
                out[f.name] = value
        elif how == "when-set":
            if value != f.default:
                out[f.name] = value
        elif how == "with-split":
            if opts.split is not None:
                out[f.name] = value
        else:
            out[f.name] = value
    return out


def _flag(name: str) -> str:
    return "--" + ("format" if name == "formats" else name.replace("_", "-"))


def _type_name(kind: Any) -> str | None:
    """The checkable kind of a ConvertOptions field: int, float, bool, str, list, path, mapping."""
    text = str(kind)
    if text.startswith("dict"):
        return "mapping"
    if text.startswith("tuple"):
        return "list"
    for name in ("bool", "int", "float", "Path", "str"):
        if text.split(" |")[0] == name:
            return name
    return None


_HINTS: dict[str, str] = {}


def check_types(values: dict[str, Any], where: str = "") -> None:
    """Each value has its option's type (as YAML or Python gives it), else a
    :class:`UsageError` naming ``where`` (``--config FILE: key 'batch_size'``) or the option."""
    if not _HINTS:
        _HINTS.update({f.name: f.type for f in dataclasses.fields(ConvertOptions)})
    for name, value in values.items():
        kind = _type_name(_HINTS.get(name))
        if value is None or kind is None:
            continue
        ok = {
            "bool": isinstance(value, bool),
            "int": isinstance(value, numbers.Integral) and not isinstance(value, bool),
            "float": isinstance(value, numbers.Real) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "Path": isinstance(value, str | os.PathLike),
            "list": isinstance(value, str | list | tuple)
            and all(isinstance(v, str | int) for v in ([] if isinstance(value, str) else value)),
            "mapping": isinstance(value, dict),
        }[kind]
        if not ok:
            want = {
                "bool": "true or false", "int": "a whole number", "float": "a number",
                "str": "a string", "Path": "a path", "list": "a name or a list of names",
                "mapping": "a mapping of KEY: VALUE",
            }[kind]  # fmt: skip
            what = f"{where}: key {name!r}" if where else _flag(name)
            raise UsageError(f"{what} must be {want}, got {value!r}")


def check_output_dir(out: Path) -> None:
    """``--out`` can be created and written to, else a :class:`UsageError` naming it."""
    from box2mask.safe_paths import check_out_path

    check_out_path(out)  # a name over 255 bytes, a path too long for the files inside, a NUL
    out = Path(out)
    for parent in (out, *out.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"--out {out}: {parent} is a file, not a folder")
            break
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".box2mask-probe-"):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise UsageError(f"--out {out}: cannot write there ({reason})") from None


def check_folder_option(folder: Path, option: str) -> None:
    """``folder`` (the value of ``option``) can be a folder to write into, checked without
    creating anything: a file there or above it, or a read-only place, is a
    :class:`UsageError` naming the option, before the command writes anything."""
    folder = Path(folder)
    for parent in (folder, *folder.parents):
        if parent.exists():
            if not parent.is_dir():
                raise UsageError(f"{option} {folder}: {parent} is a file, not a folder")
            if not os.access(parent, os.W_OK | os.X_OK):
                raise UsageError(f"{option} {folder}: cannot write there ({parent} is read-only)")
            return


def split_list(value: Any) -> list[str]:
    """``"a,b"`` or ``["a", "b,c"]`` → ``["a", "b", "c"]``."""
    if value is None:
        return []
    items = [value] if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in items:
        out.extend(p.strip() for p in str(item).split(",") if p.strip())
    return out


def parse_shard(text: str) -> tuple[int, int]:
    """``"K/N"`` → ``(K, N)`` with ``1 <= K <= N``.

    >>> parse_shard("2/3")
    (2, 3)
    """
    try:
        k, n = (int(p) for p in text.split("/"))
    except ValueError:
        raise UsageError(f"--shard must look like K/N (e.g. 2/8), got {text!r}") from None
    if not 1 <= k <= n:
        raise UsageError(f"--shard K/N needs 1 <= K <= N, got {text!r}")
    return k, n


def parse_key_values(items: list[str] | tuple[str, ...], option: str = "--opt") -> dict[str, Any]:
    """``["part=sot", "split=train"]`` → ``{"part": "sot", "split": "train"}`` (values YAML-typed)."""
    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise UsageError(f"{option} takes KEY=VALUE, got {item!r}")
        key, value = item.split("=", 1)
        out[key.strip()] = yaml.safe_load(value) if value.strip() else ""
    return out


class _UniqueKeyLoader(yaml.SafeLoader):
    """``yaml.safe_load`` that refuses a mapping with one key twice (YAML 1.2 says keys are
    unique; PyYAML keeps the last silently, so a second ``batch_size:`` hid the first)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)  # type: ignore[no-untyped-call]
            try:
                first = seen.get(key)
                seen.setdefault(key, key_node.start_mark.line + 1)
            except TypeError:  # an unhashable key: the base class says so
                break
            if first is not None:
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    f"key {key!r} given twice (first on line {first}); keep one",
                    key_node.start_mark,
                )
        return super().construct_mapping(node, deep=deep)


def load_config(path: Path) -> dict[str, Any]:
    """Read a YAML config whose keys are option names (``batch-size`` or ``batch_size``;
    ``opt`` is a mapping or a list of ``KEY=VALUE``, as ``--opt``). A key given twice,
    also under two spellings (``batch-size`` and ``batch_size``), is refused."""
    from box2mask.io import open_regular

    try:
        with open_regular(Path(path), "--config") as fh:  # a FIFO would block: refused
            text = fh.read().decode("utf-8")
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 (a SafeLoader)
    except AnnotationError as exc:
        if exc.reason.endswith("is missing"):
            raise UsageError(f"--config {path}: no such file") from None
        if "a folder" in exc.reason:
            raise UsageError(f"--config {path}: is a folder, not a YAML file") from None
        raise UsageError(f"--config {path}: {exc.reason}") from None
    except FileNotFoundError:
        raise UsageError(f"--config {path}: no such file") from None
    except IsADirectoryError:
        raise UsageError(f"--config {path}: is a folder, not a YAML file") from None
    except UnicodeDecodeError:
        raise UsageError(f"--config {path}: not a text (UTF-8) file") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark is not None else f"{path}"
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        context = getattr(exc, "context", None)
        started = getattr(exc, "context_mark", None)
        if context and started is not None and started is not mark:
            context += f" started at line {started.line + 1}, column {started.column + 1}"
        raise UsageError(
            f"--config {where}: not valid YAML: {problem}" + (f" ({context})" if context else "")
        ) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise UsageError(f"--config {path}: expected a mapping of option names to values")
    known = set(ConvertOptions.field_names())
    out: dict[str, Any] = {}
    spelled: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        name = {"format": "formats", "opt": "adapter_options"}.get(name, name)
        if name not in known:
            raise UsageError(f"--config {path}: unknown option {key!r}")
        if name in spelled:
            raise UsageError(
                f"--config {path}: {spelled[name]!r} and {key!r} are one option; keep one"
            )
        spelled[name] = key
        if name == "adapter_options" and isinstance(value, list | str):
            items = [value] if isinstance(value, str) else [str(v) for v in value]
            value = parse_key_values(items, f"--config {path}: key {key!r}")
        out[name] = value
    check_types(out, where=f"--config {path}")
    return out
