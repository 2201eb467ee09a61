"""Run by datumaro's own environment (.ci/venvs/datumaro), not box2mask's: CVAT's dataset
library reads box2mask's CVAT task and writes the reviewed task back (tests/test_exchange_datumaro.py).

    python exchange_datumaro_run.py read TASK_DIR OUT.npz
        datumaro's CVAT importer reads TASK_DIR (annotations.xml + images/); OUT.npz gets one
        bool mask per mask annotation, named "<item>|<label>|<track attribute>", and one
        polygon per polygon annotation as "poly|<item>|<label>|<track>" (x, y rows)
    python exchange_datumaro_run.py edit TASK_DIR EDITS.npz OUT_DIR
        imports TASK_DIR, applies EDITS (keys "change|<item>|<track>" and
        "add|<item>|<label>|<track>": a new mask; "delete|<item>|<track>": anything), and
        exports the dataset with datumaro's CVAT exporter into OUT_DIR (XML only)
"""

from __future__ import annotations

import sys

import numpy as np
from datumaro.components.annotation import AnnotationType, Mask
from datumaro.components.dataset import Dataset


def _load(task_dir: str) -> Dataset:
    return Dataset.import_from(task_dir, "cvat")


def read(task_dir: str, out: str) -> None:
    ds = _load(task_dir)
    labels = ds.categories()[AnnotationType.label]
    arrays = {}
    for item in ds:
        for ann in item.annotations:
            name = f"{item.id}|{labels[ann.label].name}|{ann.attributes.get('track')}"
            if ann.type == AnnotationType.mask:
                arrays[name] = ann.image.astype(bool)
            elif ann.type == AnnotationType.polygon:
                n = sum(k.startswith(f"poly|{name}") for k in arrays)
                arrays[f"poly|{name}|{n}"] = np.asarray(ann.points, float).reshape(-1, 2)
            else:
                raise SystemExit(f"unexpected {ann.type.name} on {item.id}")
    np.savez(out, **arrays)


def edit(task_dir: str, edits: str, out_dir: str) -> None:
    ds = _load(task_dir)
    labels = ds.categories()[AnnotationType.label]
    todo = dict(np.load(edits))
    for item in list(ds):
        anns = []
        for ann in item.annotations:
            track = ann.attributes.get("track")
            if f"delete|{item.id}|{track}" in todo:
                continue
            new = todo.get(f"change|{item.id}|{track}")
            if new is not None:
                ann = ann.wrap(image=new.astype(np.uint8))
            anns.append(ann)
        for key, mask in todo.items():
            kind, *rest = key.split("|")
            if kind == "add" and rest[0] == item.id:
                label, track = rest[1], rest[2]
                anns.append(Mask(image=mask.astype(np.uint8), label=labels.find(label)[0],
                                 attributes={"track": track, "occluded": False}))  # fmt: skip
        ds.put(item.wrap(annotations=anns))
    ds.export(out_dir, "cvat", save_media=False)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"read": read, "edit": edit}[cmd](*args)
