"""Writes a tiny SAT-MTB fixture in the real layout and returns the truth it encodes.

- ``airplane/01``: 3 PNG frames; ``mot/01`` (no extension, 11 columns, cls 1);
  ``det/HBB`` and ``det/OBB`` XML per frame (object 2's ``<name>`` holds its
  fine class; object 3 is static: det only); ``seg`` JSON per frame without
  track ids (matched to boxes by IoU), object 2 in two parts.
- ``ship/01``: 3 frames; ``mot/01.txt`` (cls 2); ``seg`` JSON for frames 1-2
  only, carrying ``track_id`` (matched by id), listed in reverse order; no det.
- ``car/01``: 3 frames; ``mot/01.txt`` (cls 0); no det, no seg (as in SAT-MTB).
- ``data_split.xlsx``: sheets det_HBB, det_OBB, seg, mot with a ``train`` and a
  ``test`` column (shared strings); airplane/01 and car_01 train, ``ship-1`` test.

Every polygon has integer vertices, so its box is the MOT box exactly. The
masks in the truth come from :func:`centre_rule_mask`, a brute-force pixel-
centre test written independently of the adapter's scanline rasteriser.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
from PIL import Image

HW = (32, 48)  # (H, W) of every fixture image
FRAMES = (1, 2, 3)


@dataclass
class Obj:
    track_id: int
    category: str
    fine: str
    parts: list[np.ndarray]  # polygons, (K, 2) integer vertices
    obb: np.ndarray  # (4, 2)
    moving: bool = True

    @property
    def xyxy(self) -> tuple[float, float, float, float]:
        pts = np.concatenate(self.parts)
        return (
            float(pts[:, 0].min()),
            float(pts[:, 1].min()),
            float(pts[:, 0].max()),
            float(pts[:, 1].max()),
        )


def centre_rule_mask(parts: list[np.ndarray], hw: tuple[int, int] = HW) -> np.ndarray:
    """Pixels whose centre is inside a part (even-odd, half-open edges), union over parts."""
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    px, py = xx + 0.5, yy + 0.5
    out = np.zeros(hw, dtype=bool)
    for p in parts:
        p = np.asarray(p, dtype=float)
        inside = np.zeros(hw, dtype=bool)
        for i in range(len(p)):
            (x0, y0), (x1, y1) = p[i], p[(i + 1) % len(p)]
            if y0 == y1:
                continue
            spans = ((y0 <= py) & (py < y1)) | ((y1 <= py) & (py < y0))
            inside ^= spans & (px < x0 + (py - y0) * (x1 - x0) / (y1 - y0))
        out |= inside
    return out


def _objects(seq: str, k: int) -> list[Obj]:
    """The objects of frame ``k``; they move 2 px right per frame."""
    dx = 2 * (k - 1)
    if seq == "airplane/01":
        tri = np.array([[4 + dx, 3], [14 + dx, 3], [9 + dx, 12]])
        part_a = np.array([[20 + dx, 14], [26 + dx, 14], [26 + dx, 20], [20 + dx, 20]])
        part_b = np.array([[27 + dx, 21], [31 + dx, 19], [30 + dx, 25]])
        static = np.array([[38, 24], [45, 24], [45, 30], [38, 30]])
        return [
            Obj(1, "airplane", "wide_bodied_aircraft", [tri], _rect_obb(tri)),
            Obj(
                2,
                "airplane",
                "narrow_bodied_aircraft",
                [part_a, part_b],
                _rect_obb(np.concatenate([part_a, part_b])),
            ),
            Obj(3, "airplane", "corporate_aircraft", [static], _rect_obb(static), moving=False),
        ]
    if seq == "ship/01":
        a = np.array([[2 + dx, 2], [9 + dx, 4], [7 + dx, 10], [1 + dx, 8]])
        b = np.array([[15 + dx, 15], [24 + dx, 15], [24 + dx, 22], [15 + dx, 22]])
        return [
            Obj(7, "ship", "yacht", [a], _rect_obb(a)),
            Obj(8, "ship", "freighter", [b], _rect_obb(b)),
        ]
    a = np.array([[30 - dx, 5], [36 - dx, 5], [36 - dx, 9], [30 - dx, 9]])
    return [Obj(4, "car", "car", [a], _rect_obb(a))]


def _rect_obb(pts: np.ndarray) -> np.ndarray:
    """A slightly rotated rectangle around ``pts`` (corners in order, 0.5-px offsets)."""
    x1, y1 = pts.min(0)
    x2, y2 = pts.max(0)
    return np.array([[x1 + 0.5, y1], [x2, y1 + 0.5], [x2 - 0.5, y2], [x1, y2 - 0.5]], dtype=float)


def _png(path: Path, seed: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (*HW, 3), dtype=np.uint8)).save(path)


def _xml(objs: list[Obj], oriented: bool) -> str:
    items = []
    for n, o in enumerate(objs):
        # object 2 carries its fine class in <name> (seen in real files)
        name = o.fine if o.track_id == 2 else o.category
        if oriented:
            geom = (
                "<robndbox>"
                + "".join(
                    f"<x{i}>{o.obb[i, 0]:g}</x{i}><y{i}>{o.obb[i, 1]:g}</y{i}>" for i in range(4)
                )
                + "</robndbox>"
            )
        else:
            x1, y1, x2, y2 = o.xyxy
            geom = f"<bndbox><xmin>{x1:g}</xmin><ymin>{y1:g}</ymin><xmax>{x2:g}</xmax><ymax>{y2:g}</ymax></bndbox>"
        items.append(
            f"<object><name>{name}</name><subname>{o.fine}</subname>"
            f"<objectID>{o.track_id:04d}</objectID><difficult>0</difficult>{geom}</object>"
        )
        del n
    return (
        f"<annotation><size><width>{HW[1]}</width><height>{HW[0]}</height><depth>3</depth></size>"
        + "".join(items)
        + "</annotation>"
    )


def _seg(objs: list[Obj], with_ids: bool) -> dict:
    fines = sorted({o.fine for o in objs})
    cats = [
        {"id": i + 1, "name": f, "supercategory": objs[0].category} for i, f in enumerate(fines)
    ]
    anns = []
    for n, o in enumerate(objs):
        ann = {
            "id": 100 + n,
            "image_id": 1,
            "category_id": fines.index(o.fine) + 1,
            "segmentation": [p.astype(float).ravel().tolist() for p in o.parts],
            "bbox": list(o.xyxy),  # xyxy, as SAT-MTB reportedly writes it
            "iscrowd": 0,
        }
        if with_ids:
            ann["track_id"] = o.track_id
        anns.append(ann)
    return {
        "images": [{"id": 1, "height": HW[0], "width": HW[1]}],
        "categories": cats,
        "annotations": anns,
    }


def write_xlsx(path: Path, sheets: dict[str, list[list[str]]]) -> None:
    """A minimal valid SpreadsheetML workbook; every cell a shared string."""
    strings: list[str] = []
    sheet_xml = []
    for rows in sheets.values():
        cells_xml = []
        for r, row in enumerate(rows, start=1):
            cells = []
            for c, value in enumerate(row):
                if value == "":
                    continue
                if value not in strings:
                    strings.append(value)
                cells.append(f'<c r="{chr(65 + c)}{r}" t="s"><v>{strings.index(value)}</v></c>')
            cells_xml.append(f'<row r="{r}">{"".join(cells)}</row>')
        sheet_xml.append(
            '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
            '<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
            f"<sheetData>{''.join(cells_xml)}</sheetData></worksheet>"
        )
    main = "http://schemas.openxmlformats.org/spreadsheetml/2006/main"
    rel = "http://schemas.openxmlformats.org/officeDocument/2006/relationships"
    pkg = "http://schemas.openxmlformats.org/package/2006/relationships"
    names = list(sheets)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(
            "[Content_Types].xml",
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
            '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
            '<Default Extension="xml" ContentType="application/xml"/>'
            '<Override PartName="/xl/workbook.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
            + "".join(
                f'<Override PartName="/xl/worksheets/sheet{i + 1}.xml" '
                'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
                for i in range(len(names))
            )
            + '<Override PartName="/xl/sharedStrings.xml" ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sharedStrings+xml"/>'
            "</Types>",
        )
        zf.writestr(
            "_rels/.rels",
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            f'<Relationship Id="rId1" Type="{rel}/officeDocument" Target="xl/workbook.xml"/></Relationships>',
        )
        zf.writestr(
            "xl/workbook.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><workbook xmlns="{main}" xmlns:r="{rel}"><sheets>'
            + "".join(
                f'<sheet name="{escape(n)}" sheetId="{i + 1}" r:id="rId{i + 1}"/>'
                for i, n in enumerate(names)
            )
            + "</sheets></workbook>",
        )
        zf.writestr(
            "xl/_rels/workbook.xml.rels",
            f'<?xml version="1.0" encoding="UTF-8"?><Relationships xmlns="{pkg}">'
            + "".join(
                f'<Relationship Id="rId{i + 1}" Type="{rel}/worksheet" Target="worksheets/sheet{i + 1}.xml"/>'
                for i in range(len(names))
            )
            + f'<Relationship Id="rId{len(names) + 1}" Type="{rel}/sharedStrings" Target="sharedStrings.xml"/>'
            "</Relationships>",
        )
        for i, xml in enumerate(sheet_xml):
            zf.writestr(f"xl/worksheets/sheet{i + 1}.xml", xml)
        zf.writestr(
            "xl/sharedStrings.xml",
            f'<?xml version="1.0" encoding="UTF-8"?><sst xmlns="{main}" count="{len(strings)}" uniqueCount="{len(strings)}">'
            + "".join(f"<si><t>{escape(s)}</t></si>" for s in strings)
            + "</sst>",
        )


SPLIT_ROWS = [["train", "test"], ["airplane/01", "ship-1"], ["car_01", ""]]


def make_satmtb(root: Path) -> dict[str, dict[int, list[Obj]]]:
    """Write the fixture under ``root`` (the SAT-MTB folder).

    Returns:
        ``{sequence: {frame: [Obj, ...]}}``: every object of every frame, in
        the order the det XML lists them (moving ones also in the MOT file,
        static ones only in the XML).
    """
    truth: dict[str, dict[int, list[Obj]]] = {}
    cls_col = {"car": 0, "airplane": 1, "ship": 2}
    for s, seq in enumerate(("airplane/01", "car/01", "ship/01")):
        cls, nn = seq.split("/")
        d = root / cls / nn
        mot_lines = []
        truth[seq] = {}
        for k in FRAMES:
            _png(d / "img" / f"{k:06d}.png", seed=10 * s + k)
            objs = _objects(seq, k)
            truth[seq][k] = objs
            for o in objs:
                if o.moving:
                    x1, y1, x2, y2 = o.xyxy
                    mot_lines.append(
                        f"{k},{o.track_id},{x1:g},{y1:g},{x2 - x1:g},{y2 - y1:g},1,{cls_col[cls]},1,-1,-1"
                    )
            if cls == "airplane":
                for kind, oriented in (("HBB", False), ("OBB", True)):
                    p = d / "det" / kind / f"{k:06d}.xml"
                    p.parent.mkdir(parents=True, exist_ok=True)
                    p.write_text(_xml(objs, oriented))
            if cls == "airplane" or (cls == "ship" and k <= 2):
                p = d / "seg" / f"{k:06d}.json"
                p.parent.mkdir(parents=True, exist_ok=True)
                seg_objs = [o for o in objs if o.moving]
                if cls == "ship":
                    seg_objs = seg_objs[::-1]
                p.write_text(json.dumps(_seg(seg_objs, with_ids=cls == "ship")))
        mot = d / "mot" / (nn if cls == "airplane" else nn + ".txt")
        mot.parent.mkdir(parents=True, exist_ok=True)
        mot.write_text("\n".join(mot_lines) + "\n")
    write_xlsx(
        root / "data_split.xlsx", {n: SPLIT_ROWS for n in ("det_HBB", "det_OBB", "seg", "mot")}
    )
    return truth
