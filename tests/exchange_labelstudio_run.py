"""Run by Label Studio's own environment (.ci/venvs/labelstudio): its SDK's brush codec
(label_studio_sdk.converter.brush), for tests/test_exchange_labelstudio.py.

    python exchange_labelstudio_run.py encode MASKS.npz OUT.json
        each mask (H, W) bool as the SDK's mask2rle writes it (mask × 255, RGBA repeated):
        {name: rle}
    python exchange_labelstudio_run.py decode RLES.json OUT.npz
        RLES.json {name: [rle, height, width]}: each as the SDK's decode_rle reads it, the
        alpha channel of (height, width, 4): {name: alpha}
"""

from __future__ import annotations

import json
import sys

import numpy as np
from label_studio_sdk.converter import brush


def encode(masks: str, out: str) -> None:
    rles = {
        k: [int(v) for v in brush.mask2rle(m.astype(np.uint8) * 255)]
        for k, m in np.load(masks).items()
    }
    with open(out, "w") as fh:
        json.dump(rles, fh)


def decode(rles: str, out: str) -> None:
    with open(rles) as fh:
        todo = json.load(fh)
    alphas = {k: brush.decode_rle(rle).reshape(h, w, 4)[:, :, 3] for k, (rle, h, w) in todo.items()}
    np.savez(out, **alphas)


if __name__ == "__main__":
    cmd, *args = sys.argv[1:]
    {"encode": encode, "decode": decode}[cmd](*args)
