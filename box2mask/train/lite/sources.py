"""Where ``box2mask train lite`` reads its objects: datasets, COCO files, box2mask jobs.

Every source yields frames whose objects carry ground-truth masks
(:class:`~box2mask.types.Frame` ``gt_mask``), read by the same adapters as
``convert`` and ``eval``:

- ``--dataset NAME --root DIR --opt K=V``: any adapter (``yolo`` for YOLO-seg
  labels, ``coco`` for COCO masks, ``rossam``, ``satmtb --opt source=seg``...);
- ``--data FILE.json``: a COCO file with masks, its images beside it (or in
  ``images/``), as the ``coco`` adapter finds them;
- ``--data JOB``: a box2mask job folder: its ``annotations.json`` (the masks
  box2mask made, with the corrections imported into it) over the frames of
  the dataset the job converted. Objects a person reviewed (``review`` set on
  the annotation: ``manual`` for a corrected or added mask, ``accepted`` for
  one a reviewer kept) are drawn ``--reviewed-weight`` times more often; the
  others still count, as the model's own earlier answers.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from box2mask.errors import DatasetNotFound, UsageError
from box2mask.train.lite.cache import Source
from box2mask.types import Frame

#: ``review`` values of an annotation that a person looked at
REVIEWED = frozenset({"manual", "accepted"})


def adapter_source(
    dataset: str, root: Path | None, opts: list[str], source: str, licence: str
) -> Source:
    """A dataset read by its adapter (``--dataset``, ``--root``, ``--opt``)."""
    import box2mask.adapters  # noqa: F401  (registers the adapters)
    from box2mask.adapters.base import ADAPTERS, resolve_root
    from box2mask.options import parse_key_values

    options = parse_key_values(opts)
    real_root = resolve_root(dataset, root)
    adapter = ADAPTERS.get(dataset)(real_root, **options)
    describe: dict[str, Any] = {"dataset": dataset, "root": str(real_root), "options": options}
    if source:
        describe["source"] = source
    if licence:
        describe["licence"] = licence
    name = dataset if not options.get("split") else f"{dataset}:{options['split']}"
    return Source(name, adapter.frames, describe)


def data_source(path: Path) -> Source:
    """``--data PATH``: a box2mask job folder or a COCO JSON file."""
    import box2mask.adapters  # noqa: F401
    from box2mask.adapters.base import ADAPTERS

    path = Path(path)
    if path.is_dir() and (path / ".box2mask" / "job.json").is_file():
        return _job_source(path)
    if path.is_file() and path.suffix.lower() == ".json":
        adapter = ADAPTERS.get("coco")(path.parent, annotations=path.name)
        return Source(
            f"coco:{path.name}", adapter.frames, {"dataset": "coco", "file": str(path.resolve())}
        )
    raise DatasetNotFound(
        f"--data {path}: neither a box2mask job folder (with .box2mask/job.json) nor a COCO .json file"
    )


def _job_source(job: Path) -> Source:
    import box2mask.adapters  # noqa: F401
    from box2mask.adapters.base import ADAPTERS

    identity = json.loads((job / ".box2mask" / "job.json").read_text(encoding="utf-8"))
    identity = identity.get("identity", identity)
    coco = job / "annotations.json"
    if not coco.is_file():
        raise UsageError(
            f"--data {job}: the job has no annotations.json (convert it with --format coco)"
        )
    root = Path(identity.get("root", ""))
    if not root.is_dir():
        raise DatasetNotFound(f"--data {job}: the job's dataset root {root} does not exist here")
    reviewed: set[tuple[str, int, int]] = set()
    with open(coco, encoding="utf-8") as fh:
        data = json.load(fh)
    images = {im["id"]: im for im in data.get("images", []) if isinstance(im, dict) and "id" in im}
    for ann in data.get("annotations", []):
        if (
            isinstance(ann, dict)
            and ann.get("review") in REVIEWED
            and ann.get("image_id") in images
        ):
            im = images[ann["image_id"]]
            reviewed.add(
                (
                    str(im.get("sequence")),
                    int(im.get("frame_index", im["id"])),
                    int(ann.get("track_id", -1)),
                )
            )
    adapter = ADAPTERS.get("coco")(root, annotations=str(coco.resolve()))

    def is_reviewed(frame: Frame, i: int) -> bool:
        return (frame.sequence, int(frame.frame_index), int(frame.track_id[i])) in reviewed

    describe = {
        "job": str(job.resolve()),
        "dataset": identity.get("dataset"),
        "reviewed": len(reviewed),
    }
    return Source(f"job:{job.name}", adapter.frames, describe, reviewed=is_reviewed)
