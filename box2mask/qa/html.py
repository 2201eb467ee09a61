"""``box2mask qa --html DIR``: a static review page, no server needed.

``DIR/index.html`` holds the objects' data (a JSON block) and the page's
script; ``DIR/thumbs/<rank>.png`` are the crops, each the prompt box with a
margin, the mask filled and outlined, the prompt box drawn. Most suspicious
first; filters by flag, category and sequence; per object accept / reject /
box / ellipse; the "Export decisions" link downloads ``decisions.json``
(built in the page, the file ``box2mask qa apply`` reads). The page's
``box2maskDecisions()`` returns the same text the link downloads.
"""

from __future__ import annotations

import html as html_lib
import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from box2mask.io import atomic_open, atomic_write_bytes, imread
from box2mask.masks import decode
from box2mask.qa.apply import FORMAT_KEY
from box2mask.qa.report import Output, QAReport
from box2mask.qa.score import FLAGS

THUMB = 160  # thumbnail long side, px
_MASK_RGB = (0, 200, 255)
_BOX_RGB = (255, 220, 0)


def thumbnail(image: np.ndarray, seg: dict, box_xywh: list[float]) -> np.ndarray:
    """An RGB crop around the box: the mask filled (40%) and outlined, the prompt box drawn."""
    h, w = image.shape[:2]
    x, y, bw, bh = box_xywh
    side = max(bw, bh, 16.0) * 1.6
    cx, cy = x + bw / 2, y + bh / 2
    x0, y0 = max(0, math.floor(cx - side / 2)), max(0, math.floor(cy - side / 2))
    x1, y1 = min(w, math.ceil(cx + side / 2)), min(h, math.ceil(cy + side / 2))
    if x1 <= x0 or y1 <= y0:
        return np.zeros((THUMB, THUMB, 3), np.uint8)
    crop = image[y0:y1, x0:x1].copy()
    blk = decode(seg, (h, w)).clip(y0, x0, y1, x1)  # the part of the mask in the crop
    m = np.zeros(crop.shape[:2], dtype=bool)
    if blk.height:
        m[blk.top - y0 : blk.bottom - y0, blk.left - x0 : blk.right - x0] = blk.pixels()
    scale = THUMB / max(crop.shape[:2])
    size = (max(1, round(crop.shape[1] * scale)), max(1, round(crop.shape[0] * scale)))
    interp = cv2.INTER_NEAREST if scale > 1 else cv2.INTER_AREA
    big = cv2.resize(crop, size, interpolation=interp)
    mb = cv2.resize(m.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST).astype(bool)
    tint = np.array(_MASK_RGB, np.float32)
    big[mb] = (0.6 * big[mb] + 0.4 * tint).astype(np.uint8)
    contours, _ = cv2.findContours(mb.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    cv2.drawContours(big, contours, -1, _MASK_RGB, 1)
    p0 = (round((x - x0) * scale), round((y - y0) * scale))
    p1 = (round((x + bw - x0) * scale) - 1, round((y + bh - y0) * scale) - 1)
    cv2.rectangle(big, p0, p1, _BOX_RGB, 1)
    return big


def write_page(
    report: QAReport, output: Output, dest: Path, top: int = 1000, plots: list[str] = ()
) -> Path:
    """Write ``dest/index.html`` and ``dest/thumbs/`` for the ``top`` most suspicious objects;
    ``plots``: PNGs (paths relative to ``dest``, :mod:`box2mask.plots`) shown above them."""
    dest = Path(dest)
    (dest / "thumbs").mkdir(parents=True, exist_ok=True)
    anns = {a["id"]: a for a in output.coco["annotations"]}
    chosen = report.objects[:top]
    by_file: dict[str, list] = {}
    for o in chosen:
        by_file.setdefault(o.signals.file_name, []).append(o)
    items = []
    root = report.image_root
    for fname, objs in by_file.items():
        bgr = imread(Path(root) / fname) if root is not None else None
        rgb = None if bgr is None else cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)
        for o in objs:
            rel = None
            if rgb is not None:
                th = thumbnail(rgb, anns[o.signals.id]["segmentation"], o.signals.prompt_box)
                ok, buf = cv2.imencode(".png", cv2.cvtColor(th, cv2.COLOR_RGB2BGR))
                if ok:
                    rel = f"thumbs/{o.rank:06d}.png"
                    atomic_write_bytes(dest / rel, buf.tobytes())
            d = o.as_dict()
            d["thumb"] = rel
            items.append(d)
    items.sort(key=lambda d: d["rank"])
    data = {
        "source": str(output.coco_path),
        "objects_total": len(report.objects),
        "format_key": FORMAT_KEY,
        "flags": FLAGS,
        "objects": items,
        "plots": list(plots),
    }
    page = dest / "index.html"
    title = html_text(f"box2mask qa: {output.coco_path}")
    with atomic_open(page) as fh:
        fh.write(_PAGE.replace("__TITLE__", title).replace("__DATA__", script_json(data)))
    return page


# -- escaping by context: every dataset-derived string reaches the page through one of these.
# The page's script builds everything else with DOM properties (textContent, value, src,
# dataset), which never parse markup, so attributes need no escaping of their own.


def html_text(text: str) -> str:
    """``text`` for HTML text content (``<title>``): ``& < > " '`` as character references.

    Lone surrogates (a file name's undecodable bytes) cannot be written as UTF-8: they show
    as ``\\udcff``.

    >>> html_text('a</title><img src=x onerror="y">')
    'a&lt;/title&gt;&lt;img src=x onerror=&quot;y&quot;&gt;'
    """
    return html_lib.escape(text.encode("utf-8", "backslashreplace").decode("utf-8"), quote=True)


def _finite(obj: Any) -> Any:
    """``obj`` with NaN and infinite floats as ``None``: ``JSON.parse`` rejects ``NaN``."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def script_json(obj: Any) -> str:
    """``obj`` as JSON to put inside ``<script type="application/json">``, read by ``JSON.parse``.

    The HTML parser ends a script element at ``</script`` and enters an "escaped" state at
    ``<!--`` (after which ``<script>`` makes it skip the real end tag, so a category named
    ``<!--<script>`` swallowed the page's own script). So no ``<``, ``>`` or ``&`` is written
    as itself (``\\u003c`` ...: the same string to ``JSON.parse``); the text is ASCII, so
    U+2028/U+2029 (line terminators in old JavaScript) and lone surrogates are ``\\u``
    escapes too.

    >>> script_json({"c": "<!--<script>", "s": "</script>&\u2028"})
    '{"c": "\\\\u003c!--\\\\u003cscript\\\\u003e", "s": "\\\\u003c/script\\\\u003e\\\\u0026\\\\u2028"}'
    """
    text = json.dumps(_finite(obj), ensure_ascii=True, allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>__TITLE__</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 12px; background: #fafafa; }
#bar { position: sticky; top: 0; background: #fafafa; padding: 6px 0; border-bottom: 1px solid #ccc; }
#bar label { margin-right: 12px; }
#list { display: flex; flex-wrap: wrap; gap: 10px; margin-top: 10px; }
.card { width: 190px; background: #fff; border: 1px solid #ddd; padding: 6px; border-radius: 4px; }
.card img { width: 160px; height: auto; image-rendering: pixelated; display: block; margin: auto; }
.card .meta { font-size: 12px; color: #333; word-break: break-all; }
.card .flags { font-size: 11px; color: #a40; }
.card.reject { border-color: #d00; } .card.box, .card.ellipse { border-color: #d80; }
.card.accept { border-color: #090; }
#plots img { width: 480px; height: auto; margin: 6px 6px 0 0; border: 1px solid #ddd; }
</style></head>
<body>
<div id="bar">
<strong>box2mask qa</strong> <span id="count"></span><br>
<label>flag <select id="f-flag"><option value="">any</option></select></label>
<label>category <select id="f-category"><option value="">any</option></select></label>
<label>sequence <select id="f-sequence"><option value="">any</option></select></label>
<a id="export" href="#" download="decisions.json">Export decisions</a>
<span id="decided"></span>
</div>
<div id="plots"></div>
<div id="list"></div>
<script id="qa-data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("qa-data").textContent);
const decisions = {};
const ACTIONS = ["accept", "reject", "box", "ellipse"];
function fill(id, values) {
  const sel = document.getElementById(id);
  for (const v of values) { const o = document.createElement("option"); o.value = v; o.textContent = v; sel.appendChild(o); }
  sel.addEventListener("change", render);
}
for (const p of DATA.plots || []) {
  const img = document.createElement("img"); img.src = p; img.alt = p;
  document.getElementById("plots").appendChild(img);
}
fill("f-flag", Object.keys(DATA.flags));
fill("f-category", [...new Set(DATA.objects.map(o => o.category))].sort());
fill("f-sequence", [...new Set(DATA.objects.map(o => o.sequence))].sort());
function box2maskDecisions() {
  const list = DATA.objects.filter(o => decisions[o.id]).map(o => ({
    id: o.id, image_id: o.image_id, sequence: o.sequence, frame_index: o.frame_index,
    track_id: o.track_id, category: o.category, action: decisions[o.id] }));
  const out = { source: DATA.source, decisions: list };
  out[DATA.format_key] = 1;
  return JSON.stringify(out, null, 1);
}
window.box2maskDecisions = box2maskDecisions;
function updateExport() {
  const a = document.getElementById("export");
  a.href = "data:application/json;charset=utf-8," + encodeURIComponent(box2maskDecisions());
  document.getElementById("decided").textContent = Object.keys(decisions).length + " decided";
}
function card(o) {
  const d = document.createElement("div");
  d.className = "card" + (decisions[o.id] ? " " + decisions[o.id] : "");
  d.dataset.id = o.id;
  if (o.thumb) { const img = document.createElement("img"); img.src = o.thumb; img.alt = "object " + o.id; d.appendChild(img); }
  const m = document.createElement("div"); m.className = "meta";
  m.textContent = "#" + o.rank + " id " + o.id + " · " + o.category + " · " + o.sequence +
    " f" + o.frame_index + " t" + o.track_id + " · " + o.mask_source + " · " + o.suspicion.toFixed(3);
  d.appendChild(m);
  const f = document.createElement("div"); f.className = "flags"; f.textContent = o.flags.join(" "); d.appendChild(f);
  for (const act of ACTIONS) {
    const l = document.createElement("label"); const r = document.createElement("input");
    r.type = "radio"; r.name = "d-" + o.id; r.value = act; r.checked = decisions[o.id] === act;
    r.addEventListener("change", () => { decisions[o.id] = act; d.className = "card " + act; updateExport(); });
    l.appendChild(r); l.appendChild(document.createTextNode(act + " ")); d.appendChild(l);
  }
  return d;
}
function render() {
  const flag = document.getElementById("f-flag").value;
  const cat = document.getElementById("f-category").value;
  const seq = document.getElementById("f-sequence").value;
  const list = document.getElementById("list");
  list.replaceChildren();
  let n = 0;
  for (const o of DATA.objects) {
    if (flag && !o.flags.includes(flag)) continue;
    if (cat && o.category !== cat) continue;
    if (seq && o.sequence !== seq) continue;
    list.appendChild(card(o)); n++;
  }
  document.getElementById("count").textContent = n + " shown of " + DATA.objects.length +
    " (" + DATA.objects_total + " objects in the output, most suspicious first)";
}
render();
updateExport();
</script>
</body></html>
"""
