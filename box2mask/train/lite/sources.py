"""Where ``box2mask train lite`` reads its objects: datasets, COCO files, box2mask jobs.

Every source yields frames whose objects carry ground-truth masks
(:class:`~box2mask.types.Frame` ``gt_mask``), read by the same adapters as
``convert`` and ``eval``:

- ``--dataset NAME --root DIR --opt K=V``: any adapter (``yolo`` for YOLO-seg
  labels, ``coco`` for COCO masks, ``rossam``, ``satmtb --opt source=seg``...);
- ``--data FILE.json``: a COCO file with masks, its images beside it (or in
  ``images/``), as the ``coco`` adapter finds them;
- ``--data JOB``: a box2mask job folder: its frames' masks as the job holds
  them (the model's, with the corrections layer over them: imported from an
  annotation tool or decided in ``qa apply``), read one frame at a time, over
  the images of the dataset the job converted. Objects a person reviewed (``review`` set on
  the annotation: ``manual`` for a corrected or added mask, ``accepted`` for
  one a reviewer kept) are drawn ``--reviewed-weight`` times more often; the
  others still count, as the model's own earlier answers.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from box2mask.errors import DatasetNotFound, UsageError
from box2mask.train.lite.cache import Source
from box2mask.types import Frame


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
    """A box2mask job's frames, read part by part (corrections included) through
    :class:`~box2mask.job.JobFolder`: the masks box2mask made and the ones people fixed."""
    from box2mask.job import JobFolder
    from box2mask.job.corrections import REVIEWED
    from box2mask.masks import decode

    folder = JobFolder(job)
    if not folder.sequences:
        raise UsageError(f"--data {job}: the job has no converted frame (no parts)")
    root = folder.root
    if not root.is_dir():
        raise DatasetNotFound(f"--data {job}: the job's dataset root {root} does not exist here")

    def frames() -> Iterator[Frame]:
        for part in folder.iter_parts():
            im, anns = part["image"], part["annotations"]
            hw = (int(im["height"]), int(im["width"]))
            boxes = [_xywh_to_xyxy(a.get("prompt_box") or a["bbox"]) for a in anns]
            # a box or ellipse fill is no mask to learn from, unless a person kept it
            segs = [
                a["segmentation"]
                if a.get("mask_source") not in FILLS or a.get("review") in REVIEWED
                else None
                for a in anns
            ]

            def gt(i: int, segs: list[Any] = segs, hw: tuple[int, int] = hw) -> np.ndarray | None:
                return None if segs[i] is None else decode(segs[i], hw).to_array(hw)

            yield Frame(
                sequence=str(im["sequence"]),
                frame_index=int(im["frame_index"]),
                image_path=root / im["file_name"],
                image_hw=hw,
                xyxy=np.array(boxes, dtype=np.float64).reshape(-1, 4),
                track_id=np.array([int(a["track_id"]) for a in anns], dtype=np.int64),
                category=np.array([a["category"] for a in anns], dtype=object),
                file_name=im["file_name"],
                gt_mask=gt,
                attributes={"review": [a.get("review") for a in anns]},
            )

    def is_reviewed(frame: Frame, i: int) -> bool:
        return frame.attributes["review"][i] in REVIEWED

    describe = {"job": str(Path(job).resolve()), "dataset": folder.identity.get("dataset")}
    return Source(f"job:{Path(job).name}", frames, describe, reviewed=is_reviewed)


#: mask sources that are shapes filled from the box, not segmentations
FILLS = frozenset({"box", "ellipse", "obb"})


def _xywh_to_xyxy(b: list[float]) -> list[float]:
    x, y, w, h = (float(v) for v in b)
    return [x, y, x + w, y + h]
