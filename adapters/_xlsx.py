"""A minimal reader of ``.xlsx`` cell text (zipfile + xml.etree, no openpyxl).

It reads what a split table needs — every sheet's cell values as strings,
placed at their columns — and nothing else (no styles, formulas, dates).
"""

from __future__ import annotations

import posixpath
import re
import zipfile
from pathlib import Path
from xml.etree import ElementTree as ET

from box2mask.adapters.base import number_text

_NS = "{http://schemas.openxmlformats.org/spreadsheetml/2006/main}"
_REL_ID = "{http://schemas.openxmlformats.org/officeDocument/2006/relationships}id"
_PKG = "{http://schemas.openxmlformats.org/package/2006/relationships}"
_CELL_REF = re.compile(r"([A-Z]+)(\d+)")


def _col_index(letters: str) -> int:
    n = 0
    for ch in letters:
        n = n * 26 + (ord(ch) - 64)
    return n - 1


def _text(el: ET.Element | None) -> str:
    # rich text splits a string into runs <r><t>..</t></r>; phonetic runs <rPh> are not content
    if el is None:
        return ""
    return "".join(t.text or "" for t in el.iter(f"{_NS}t") if t is not None)


def read_xlsx(path: Path) -> dict[str, list[list[str]]]:
    """Every sheet of an ``.xlsx`` file as rows of cell strings.

    Args:
        path: the workbook.

    Returns:
        ``{sheet name: rows}``, each row a list of strings indexed by column
        (``""`` for empty cells); numbers that are whole come as ``"3"``.

    Raises:
        ValueError: the file is not a readable xlsx workbook.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
            shared: list[str] = []
            if "xl/sharedStrings.xml" in names:
                root = ET.fromstring(zf.read("xl/sharedStrings.xml"))
                for si in root.iter(f"{_NS}si"):
                    shared.append(
                        "".join(t.text or "" for t in si.iter(f"{_NS}t") if _not_phonetic(si, t))
                    )
            wb = ET.fromstring(zf.read("xl/workbook.xml"))
            rels = ET.fromstring(zf.read("xl/_rels/workbook.xml.rels"))
            targets = {r.get("Id"): r.get("Target", "") for r in rels.iter(f"{_PKG}Relationship")}
            out: dict[str, list[list[str]]] = {}
            for sheet in wb.iter(f"{_NS}sheet"):
                target = targets.get(sheet.get(_REL_ID), "")
                member = (
                    target.lstrip("/")
                    if target.startswith("/")
                    else posixpath.normpath(posixpath.join("xl", target))
                )
                if member not in names:
                    raise ValueError(f"sheet {sheet.get('name')!r} points to missing part {member}")
                out[sheet.get("name", "")] = _read_sheet(ET.fromstring(zf.read(member)), shared)
            return out
    except (zipfile.BadZipFile, KeyError, ET.ParseError, OSError) as exc:
        raise ValueError(f"not a readable xlsx workbook: {exc}") from exc


def _not_phonetic(si: ET.Element, t: ET.Element) -> bool:
    return all(t not in list(ph.iter()) for ph in si.iter(f"{_NS}rPh"))


def _read_sheet(root: ET.Element, shared: list[str]) -> list[list[str]]:
    rows: dict[int, dict[int, str]] = {}
    for r_pos, row in enumerate(root.iter(f"{_NS}row")):
        r_idx = int(row.get("r", r_pos + 1)) - 1
        cells = rows.setdefault(r_idx, {})
        for c_pos, c in enumerate(row.iter(f"{_NS}c")):
            m = _CELL_REF.fullmatch(c.get("r", ""))
            col = _col_index(m.group(1)) if m else c_pos
            kind = c.get("t", "n")
            v = c.find(f"{_NS}v")
            if kind == "s" and v is not None and v.text is not None:
                value = shared[int(v.text)] if int(v.text) < len(shared) else ""
            elif kind == "inlineStr":
                value = _text(c.find(f"{_NS}is"))
            elif v is not None and v.text is not None:
                value = v.text if kind in ("str", "e") else number_text(v.text)
            else:
                value = ""
            cells[col] = value.strip()
    if not rows:
        return []
    out: list[list[str]] = []
    for r in range(max(rows) + 1):
        cells = rows.get(r, {})
        width = max(cells) + 1 if cells else 0
        out.append([cells.get(c, "") for c in range(width)])
    return out
