"""``box2mask qa --html DIR``: a static review page, no server needed.

``DIR/index.html`` holds every ranked object's data (a JSON block of columns:
ids, frame, track, suspicion, flags as bits, names and review marks as indices
into tables) and the page's script; ``DIR/thumbs/<rank>.png`` are the crops of
the ``--html-top`` most suspicious objects, each the prompt box with a margin,
the mask filled and outlined, the prompt box drawn; ``DIR/frames/`` and
``DIR/track/`` their full frames and their tracks' neighbouring frames
(:mod:`box2mask.qa.views`), shown when a card's "frame and track" is opened.
The page shows the ranked list most suspicious first, :data:`PAGE_SIZE` cards
at a time with paging, and filters by flag, category and sequence over every
object: a million rows filter in a fraction of a second, because the filters
scan the columns, not the cards. Per object accept / reject / box / ellipse;
the "Export decisions" link downloads ``decisions.json`` (built in the page,
the file ``box2mask qa apply`` reads). The page's ``box2maskDecisions()``
returns the same text the link downloads.

The decisions are kept in the browser's ``localStorage`` under a key made from
the page's source (the COCO file's absolute path and the job's identity), so a
reload or a page written again for the same job finds them and another job's
page does not. "Load decisions" reads a ``decisions.json`` back; a file naming
another source is refused with a message on the page. Decisions are matched to
objects as ``qa apply`` matches them (sequence, frame, track id; the annotation
id without a track id), so they survive the ids an earlier apply renumbered.

The page's data is written while qa's ranked rows are merged
(:class:`PageWriter`): column files on disk, never the list in memory.
"""

from __future__ import annotations

import hashlib
import html as html_lib
import json
import math
import os
from pathlib import Path
from typing import Any

from box2mask.io import atomic_open
from box2mask.qa.apply import FORMAT_KEY
from box2mask.qa.score import FLAGS

#: cards per page of the review page
PAGE_SIZE = 200
#: the page's columns, in order (numbers; ``null`` for a missing track id)
COLUMNS = ("id", "image_id", "sequence", "frame_index", "track_id", "category", "mask_source",
           "suspicion", "flags", "review")  # fmt: skip


class PageWriter:
    """The review page, written while qa's ranked rows are merged (see the module docstring).

    Args:
        dest: the page's folder (``index.html``, ``thumbs/``).
        output: the qa output (:class:`box2mask.qa.report.Output`): its source, for the page.
        report: the qa report being written (its object count).
        scratch: a folder for the column files (the caller deletes it).
        top: thumbnails for this many of the most suspicious objects.
        plots: PNGs shown above the cards (paths relative to ``dest``; :mod:`box2mask.plots`).
    """

    def __init__(
        self, dest: Path, output: Any, report: Any, scratch: str, top: int, plots: Any = ()
    ) -> None:
        self.dest = Path(dest)
        self.plots = list(plots)
        self.output = output
        self.report = report
        self.top = top
        self.files = {c: open(os.path.join(scratch, f"page-{c}.txt"), "w", encoding="utf-8")  # noqa: SIM115
                      for c in COLUMNS}  # fmt: skip
        self.tables: dict[str, dict[str, int]] = {
            "sequence": {}, "category": {}, "mask_source": {}, "review": {"": 0}
        }  # fmt: skip
        self.n = 0
        #: the pictured objects (the ``top`` first ranks)
        self.thumbs: list[Any] = []

    def __enter__(self) -> PageWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        for fh in self.files.values():
            fh.close()

    def _index(self, table: str, name: str) -> int:
        t = self.tables[table]
        k = t.get(name)
        if k is None:
            k = t[name] = len(t)
        return k

    def add(self, rank: int, aid: int, iid: int, page: str, rest: str) -> None:
        """One ranked row (in rank order): its ids, its page fields (JSON), its qa.json text."""
        seq, fi, tid, cat, src, susp, bits, where, review = json.loads(page)
        cells = (aid, iid, self._index("sequence", seq), fi,
                 "null" if tid is None else tid, self._index("category", cat),
                 self._index("mask_source", src), repr(float(susp)), bits,
                 self._index("review", review or ""))  # fmt: skip
        sep = "," if self.n else ""
        for c, v in zip(COLUMNS, cells, strict=True):
            self.files[c].write(f"{sep}{v}")
        self.n += 1
        if rank <= self.top:
            from box2mask.qa.views import TopObject

            rec = json.loads("{" + rest)
            self.thumbs.append(TopObject(rank, seq, int(fi), None if tid is None else int(tid),
                                         int(where), rec["file_name"], rec["prompt_box"]))  # fmt: skip

    def finish(self, spec: Any, root: Path | None, offsets: Any) -> Path:
        """The pictures (:mod:`box2mask.qa.views`), then ``index.html``; returns its path."""
        made: set[int] = set()
        views: list[Any] = []
        if root is not None and self.thumbs:
            from box2mask.qa.views import write_pictures

            made, views = write_pictures(self.dest, spec, Path(root), self.thumbs)
        else:
            (self.dest / "thumbs").mkdir(parents=True, exist_ok=True)
        for fh in self.files.values():
            fh.close()
        tables = {
            "sequences": list(self.tables["sequence"]),
            "categories": list(self.tables["category"]),
            "mask_sources": list(self.tables["mask_source"]),
            "reviews": list(self.tables["review"]),
        }
        source = os.path.abspath(self.output.coco_path)
        identity = getattr(self.output, "identity", {})
        key = json.dumps([source, identity], sort_keys=True, default=str)
        head = {
            "source": source,
            # the browser storage's key: one job's pages share their decisions, no other's do
            "page_key": hashlib.sha256(key.encode("utf-8", "backslashreplace")).hexdigest()[:20],
            "objects_total": self.report.objects + getattr(self.report, "reviewed", 0),
            "reviewed": getattr(self.report, "reviewed", 0),
            "format_key": FORMAT_KEY,
            "flags": FLAGS,
            "page_size": PAGE_SIZE,
            "plots": self.plots,
            "thumbs": [1 if t.rank in made else 0 for t in self.thumbs],
            "views": views,
            **tables,
        }
        page = self.dest / "index.html"
        title = html_text(f"box2mask qa: {self.output.coco_path}")
        before, after = _PAGE.replace("__TITLE__", title).split("__DATA__")
        with atomic_open(page) as fh:
            fh.write(before)
            fh.write(script_json(head)[:-1] + ', "columns": {')
            for k, c in enumerate(COLUMNS):
                fh.write(("" if k == 0 else ", ") + json.dumps(c) + ": [")
                with open(self.files[c].name, encoding="utf-8") as col:
                    while chunk := col.read(1 << 20):
                        fh.write(chunk)
                fh.write("]")
            fh.write("}}")
            fh.write(after)
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
.card .nothumb { font-size: 11px; color: #888; text-align: center; padding: 8px 0; }
.card .meta { font-size: 12px; color: #333; word-break: break-all; }
.card .flags { font-size: 11px; color: #a40; }
.card.reject { border-color: #d00; } .card.box, .card.ellipse { border-color: #d80; }
.card.accept { border-color: #090; }
#plots img { width: 480px; height: auto; margin: 6px 6px 0 0; border: 1px solid #ddd; }
.pager button { margin: 0 4px; }
.card .review { font-size: 11px; color: #060; }
.card button.view { font-size: 11px; margin-top: 4px; }
#msg { margin-left: 8px; color: #036; } #msg.bad { color: #b00; font-weight: bold; }
#viewer { position: fixed; inset: 0; background: rgba(0, 0, 0, 0.75); display: none; overflow: auto; padding: 16px; z-index: 10; }
#viewer.open { display: block; }
#viewer .panel { background: #fff; padding: 10px; border-radius: 4px; max-width: 1100px; margin: auto; }
#v-strip { display: flex; gap: 8px; flex-wrap: wrap; margin-top: 8px; }
#v-strip figure { margin: 0; width: 160px; text-align: center; font-size: 12px; }
#v-strip img { width: 160px; height: auto; image-rendering: pixelated; display: block; }
#v-strip figure.self img { outline: 3px solid #0a0; }
#v-strip .nothumb { font-size: 11px; color: #888; padding: 40px 0; border: 1px dashed #ccc; }
.frame-wrap { position: relative; display: inline-block; margin-top: 8px; }
.frame-wrap img { max-width: 100%; height: auto; display: block; }
.frame-wrap .box { position: absolute; border: 2px solid #ff0; outline: 1px solid #000; box-sizing: border-box; }
</style></head>
<body>
<div id="bar">
<strong>box2mask qa</strong> <span id="count"></span><br>
<label>flag <select id="f-flag"><option value="">any</option></select></label>
<label>category <select id="f-category"><option value="">any</option></select></label>
<label>sequence <select id="f-sequence"><option value="">any</option></select></label>
<a id="export" href="#" download="decisions.json">Export decisions</a>
<span id="decided"></span>
<label>Load decisions <input id="load" type="file" accept=".json,application/json"></label>
<button id="clear">Clear decisions</button>
<span id="msg" role="status"></span><br>
<span class="pager"><button id="first">&laquo;</button><button id="prev">&lsaquo; previous</button>
page <input id="page" type="number" min="1" value="1" style="width: 6em"> of <span id="pages"></span>
<button id="next">next &rsaquo;</button><button id="last">&raquo;</button></span>
</div>
<div id="plots"></div>
<div id="list"></div>
<div id="viewer"></div>
<script id="qa-data" type="application/json">__DATA__</script>
<script>
"use strict";
const DATA = JSON.parse(document.getElementById("qa-data").textContent);
const C = DATA.columns;
const N = C.id.length;
const FLAGS = Object.keys(DATA.flags);
const decisions = new Map();  // row (rank - 1) -> action
const ACTIONS = ["accept", "reject", "box", "ellipse"];
// the decisions are kept in the browser (localStorage) under the page's key: the pages of
// one job share them (matched by object, below), another job's page never sees them
const STORE = "box2mask-qa:" + DATA.page_key;
function pad(n) { return String(n).padStart(6, "0"); }
function message(text, bad) {
  const m = document.getElementById("msg"); m.textContent = text; m.className = bad ? "bad" : "";
}
let view = null;  // the rows the filters keep (Int32Array), in rank order
let page = 0;
function fill(id, values, labels) {
  const sel = document.getElementById(id);
  values.forEach((v, k) => { const o = document.createElement("option"); o.value = v; o.textContent = labels ? labels[k] : v; sel.appendChild(o); });
  sel.addEventListener("change", () => { applyFilters(); render(); });
}
function sortedIndices(names) { return names.map((n, k) => k).sort((a, b) => names[a] < names[b] ? -1 : names[a] > names[b] ? 1 : 0); }
fill("f-flag", FLAGS);
const catOrder = sortedIndices(DATA.categories);
fill("f-category", catOrder.map(k => DATA.categories[k]));
const seqOrder = sortedIndices(DATA.sequences);
fill("f-sequence", seqOrder.map(k => DATA.sequences[k]));
function row(i) {
  return { rank: i + 1, id: C.id[i], image_id: C.image_id[i], sequence: DATA.sequences[C.sequence[i]],
    frame_index: C.frame_index[i], track_id: C.track_id[i], category: DATA.categories[C.category[i]],
    mask_source: DATA.mask_sources[C.mask_source[i]], suspicion: C.suspicion[i],
    flags: FLAGS.filter((f, k) => C.flags[i] & (1 << k)), review: DATA.reviews[C.review[i]] };
}
// an object's key, as `qa apply` finds it: sequence, frame and track id (the annotation id
// when there is no track id), so that decisions survive ids renumbered by an earlier apply
function objectKey(seq, fi, tid, id) {
  return JSON.stringify(tid === null || tid === undefined ? [seq, fi, "id", id] : [seq, fi, "t", tid]);
}
function rowKey(i) { return objectKey(DATA.sequences[C.sequence[i]], C.frame_index[i], C.track_id[i], C.id[i]); }
let keyIndex = null;  // object key -> row, built the first time a decision is not at its rank
function findRow(d) {
  const key = objectKey(d.sequence, d.frame_index, d.track_id, d.id);
  const r = Number.isInteger(d.rank) ? d.rank - 1 : -1;
  if (r >= 0 && r < N && rowKey(r) === key) return r;
  if (keyIndex === null) {
    keyIndex = new Map();
    for (let i = 0; i < N; i++) { const k = rowKey(i); if (!keyIndex.has(k)) keyIndex.set(k, i); }
  }
  const i = keyIndex.get(key);
  return i === undefined ? -1 : i;
}
// decisions (the export's entries) onto the rows: how many matched, were not on this page,
// or were not decisions
function applyList(list) {
  const got = { matched: 0, missing: 0, bad: 0 };
  for (const d of list) {
    if (!d || typeof d !== "object" || !ACTIONS.includes(d.action) || typeof d.sequence !== "string" ||
        typeof d.frame_index !== "number") { got.bad++; continue; }
    const i = findRow(d);
    if (i < 0) { got.missing++; continue; }
    decisions.set(i, d.action);
    got.matched++;
  }
  return got;
}
function decisionsText(space) {
  const rows = [...decisions.keys()].sort((a, b) => a - b);
  const list = rows.map(i => { const o = row(i); return {
    rank: o.rank, id: o.id, image_id: o.image_id, sequence: o.sequence, frame_index: o.frame_index,
    track_id: o.track_id, category: o.category, action: decisions.get(i) }; });
  const out = { source: DATA.source, decisions: list };
  out[DATA.format_key] = 1;
  return JSON.stringify(out, null, space);
}
function save() {
  try {
    if (decisions.size) localStorage.setItem(STORE, decisionsText(0));
    else localStorage.removeItem(STORE);
  } catch (e) {
    message("the decisions could not be kept in this browser (" + e.name + "): use Export decisions", true);
  }
}
for (const p of DATA.plots || []) {
  const img = document.createElement("img"); img.src = p; img.alt = p;
  document.getElementById("plots").appendChild(img);
}
function box2maskDecisions() { return decisionsText(1); }
window.box2maskDecisions = box2maskDecisions;
function updateExport() {
  const a = document.getElementById("export");
  a.href = "data:application/json;charset=utf-8," + encodeURIComponent(box2maskDecisions());
  document.getElementById("decided").textContent = decisions.size + " decided";
}
function card(i) {
  const o = row(i);
  const d = document.createElement("div");
  d.className = "card" + (decisions.has(i) ? " " + decisions.get(i) : "");
  d.dataset.id = o.id;
  d.dataset.rank = o.rank;
  if (i < DATA.thumbs.length && DATA.thumbs[i]) {
    const img = document.createElement("img"); img.src = "thumbs/" + String(o.rank).padStart(6, "0") + ".png";
    img.alt = "object " + o.id; d.appendChild(img);
  } else {
    const t = document.createElement("div"); t.className = "nothumb";
    t.textContent = i < DATA.thumbs.length ? "no picture (image unreadable)" : "no picture (past --html-top)";
    d.appendChild(t);
  }
  const m = document.createElement("div"); m.className = "meta";
  m.textContent = "#" + o.rank + " id " + o.id + " · " + o.category + " · " + o.sequence +
    " f" + o.frame_index + " t" + o.track_id + " · " + o.mask_source + " · " + o.suspicion.toFixed(3);
  d.appendChild(m);
  const f = document.createElement("div"); f.className = "flags"; f.textContent = o.flags.join(" "); d.appendChild(f);
  if (o.review) {
    const rv = document.createElement("div"); rv.className = "review"; rv.textContent = "reviewed: " + o.review;
    d.appendChild(rv);
  }
  for (const act of ACTIONS) {
    const l = document.createElement("label"); const r = document.createElement("input");
    r.type = "radio"; r.name = "d-" + o.rank; r.value = act; r.checked = decisions.get(i) === act;
    r.addEventListener("change", () => { decisions.set(i, act); d.className = "card " + act; save(); updateExport(); });
    l.appendChild(r); l.appendChild(document.createTextNode(act + " ")); d.appendChild(l);
  }
  if (i < DATA.views.length && DATA.views[i]) {
    const b = document.createElement("button"); b.className = "view"; b.textContent = "frame and track";
    b.addEventListener("click", () => openView(i)); d.appendChild(b);
  }
  return d;
}
// the full frame (the object's box drawn over it) and the track's neighbouring frames: the
// pictures of the --html-top objects, loaded only when opened
function figure(src, label, cls, none) {
  const f = document.createElement("figure"); if (cls) f.className = cls;
  if (src) { const img = document.createElement("img"); img.src = src; img.alt = label; f.appendChild(img); }
  else { const t = document.createElement("div"); t.className = "nothumb"; t.textContent = none; f.appendChild(t); }
  const c = document.createElement("figcaption"); c.textContent = label; f.appendChild(c);
  return f;
}
function openView(i) {
  const v = DATA.views[i], o = row(i);
  const panel = document.createElement("div"); panel.className = "panel";
  const close = document.createElement("button"); close.id = "v-close"; close.textContent = "close";
  close.addEventListener("click", closeView);
  const title = document.createElement("span");
  title.textContent = " #" + o.rank + " id " + o.id + " · " + o.category + " · " + o.sequence +
    " frame " + o.frame_index + " track " + o.track_id;
  panel.append(close, title);
  const strip = document.createElement("div"); strip.id = "v-strip";
  const none = o.track_id === null ? "no track id" : "the track is not in this frame";
  const near = side => { for (const [fi, k, s] of v.near) if (s === side)
    strip.appendChild(figure(k >= 0 ? "track/" + pad(k) + ".jpg" : null, "frame " + fi, "",
      k === -2 ? "image unreadable" : none)); };
  near(-1);
  strip.appendChild(figure(DATA.thumbs[i] ? "thumbs/" + pad(o.rank) + ".png" : null,
    "frame " + o.frame_index + " (this object)", "self", "no picture"));
  near(1);
  const wrap = document.createElement("div"); wrap.className = "frame-wrap";
  const img = document.createElement("img"); img.id = "v-frame"; img.alt = "frame " + o.frame_index;
  img.src = "frames/" + pad(v.frame) + ".jpg";
  const box = document.createElement("div"); box.className = "box";
  const [x, y, w, h] = v.box;
  box.style.left = 100 * x + "%"; box.style.top = 100 * y + "%";
  box.style.width = 100 * w + "%"; box.style.height = 100 * h + "%";
  wrap.append(img, box);
  panel.append(strip, wrap);
  const viewer = document.getElementById("viewer");
  viewer.replaceChildren(panel); viewer.className = "open";
}
function closeView() { const viewer = document.getElementById("viewer"); viewer.className = ""; viewer.replaceChildren(); }
document.getElementById("viewer").addEventListener("click", e => { if (e.target.id === "viewer") closeView(); });
document.addEventListener("keydown", e => { if (e.key === "Escape") closeView(); });
function applyFilters() {
  const flag = document.getElementById("f-flag").value;
  const cat = document.getElementById("f-category").value;
  const seq = document.getElementById("f-sequence").value;
  const bit = flag ? 1 << FLAGS.indexOf(flag) : 0;
  const ci = cat ? DATA.categories.indexOf(cat) : -1;
  const si = seq ? DATA.sequences.indexOf(seq) : -1;
  page = 0;
  if (!bit && ci < 0 && si < 0) { view = null; return; }
  const keep = new Int32Array(N);
  let n = 0;
  const F = C.flags, K = C.category, S = C.sequence;
  for (let i = 0; i < N; i++) {
    if (bit && !(F[i] & bit)) continue;
    if (ci >= 0 && K[i] !== ci) continue;
    if (si >= 0 && S[i] !== si) continue;
    keep[n++] = i;
  }
  view = keep.subarray(0, n);
}
function shown() { return view === null ? N : view.length; }
function pages() { return Math.max(1, Math.ceil(shown() / DATA.page_size)); }
function render() {
  const list = document.getElementById("list");
  const total = shown();
  page = Math.min(Math.max(page, 0), pages() - 1);
  const start = page * DATA.page_size, end = Math.min(total, start + DATA.page_size);
  const cards = document.createDocumentFragment();
  for (let k = start; k < end; k++) cards.appendChild(card(view === null ? k : view[k]));
  list.replaceChildren(cards);
  document.getElementById("page").value = page + 1;
  document.getElementById("pages").textContent = pages();
  document.getElementById("count").textContent = (total ? (start + 1) + "-" + end : "0") + " of " +
    total + " shown (" + N + " ranked of " + DATA.objects_total + " objects in the output, most suspicious first" +
    (DATA.reviewed ? "; " + DATA.reviewed + " reviewed objects not ranked" : "") + ")";
}
// a decisions.json (Export's format) read back: matched by object, refused whole when it
// names another source, merged with the decisions already made (the file's win)
function loadDecisions(text, name) {
  let data;
  try { data = JSON.parse(text); } catch (e) { message(name + ": not JSON (" + e.message + "): nothing loaded", true); return; }
  if (!data || typeof data !== "object" || data[DATA.format_key] !== 1 || !Array.isArray(data.decisions)) {
    message(name + ": not a box2mask qa decisions file: nothing loaded", true); return;
  }
  if (typeof data.source === "string" && data.source !== DATA.source) {
    message(name + " holds decisions for " + data.source + ", not for this page's " + DATA.source +
      ": nothing loaded", true);
    return;
  }
  const got = applyList(data.decisions);
  save(); render(); updateExport();
  message("loaded " + got.matched + " decisions from " + name +
    (got.missing ? "; " + got.missing + " name objects not on this page" : "") +
    (got.bad ? "; " + got.bad + " entries are not decisions" : ""), got.missing + got.bad > 0);
}
document.getElementById("load").addEventListener("change", e => {
  const input = e.target, file = input.files[0];
  if (!file) return;
  file.text().then(text => loadDecisions(text, file.name),
                   err => message(file.name + ": not readable (" + err + ")", true))
    .finally(() => { input.value = ""; });
});
document.getElementById("clear").addEventListener("click", () => {
  if (!decisions.size) { message("no decisions to clear"); return; }
  if (!window.confirm("Clear the " + decisions.size + " decisions of this page (and the browser's copy)?")) return;
  decisions.clear(); save(); render(); updateExport(); message("decisions cleared");
});
function restore() {
  let text = null;
  try { text = localStorage.getItem(STORE); } catch (e) {
    message("this browser keeps no decisions here (" + e.name + "): use Export decisions", true); return;
  }
  if (!text) return;
  let list = null;
  try { list = JSON.parse(text).decisions; } catch (e) { list = null; }
  if (!Array.isArray(list)) return;
  const got = applyList(list);
  message("restored " + got.matched + " decisions kept in this browser" +
    (got.missing ? "; " + got.missing + " name objects no longer on this page" : ""));
}
function go(p) { page = p; render(); window.scrollTo(0, 0); }
document.getElementById("first").addEventListener("click", () => go(0));
document.getElementById("prev").addEventListener("click", () => go(page - 1));
document.getElementById("next").addEventListener("click", () => go(page + 1));
document.getElementById("last").addEventListener("click", () => go(pages() - 1));
document.getElementById("page").addEventListener("change", e => go((parseInt(e.target.value, 10) || 1) - 1));
window.box2maskPage = go;
restore();
render();
updateExport();
</script>
</body></html>
"""
