"""Render the leaderboards as one static, offline ``results/leaderboard.html``.

Everything is inline (CSS, a small sorting script, plots as base64 PNG data URIs), so the page
works from ``file://`` with no network. Clicking a header sorts its table; ``?sort=<key>&dir=desc``
applies the same sort on load (a bookmarkable view, and how the browser test drives it).
"""
from __future__ import annotations

import base64
import html
import json
import re
from pathlib import Path

from bench.report.aggregate import Column, Leaderboard, Row
from bench.report.claims import ClaimLine
from bench.report.collect import Collection
from bench.report.metrics import format_mean_std, spec_for
from bench.report.render_md import (
    CLAIMS_HEADER, IDENTITY_HEADER, arrow, cell_text, error_summary, relative, row_identity)
from bench.schema import SCHEMA_VERSION
from bench.tasks import card_for

# Plots larger than this are linked instead of embedded, so the page stays quick to open.
MAX_EMBEDDED_PNG_BYTES = 4 * 2**20

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1500px;padding:0 1em;color:#1b1b1b}
table{border-collapse:collapse;margin:.6em 0 1em;font-variant-numeric:tabular-nums}
th,td{border:1px solid #ccd;padding:.25em .55em;text-align:left;vertical-align:top}
th{background:#eef1f7;cursor:pointer;user-select:none;min-width:4em}
.scroll{overflow-x:auto}
th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right;white-space:nowrap} td.prov{font-size:12px;color:#555}
tr:nth-child(even) td{background:#fafbfd}
figure{display:inline-block;margin:.5em;vertical-align:top;max-width:560px}
figure img{max-width:100%;border:1px solid #ddd} figcaption{font-size:12px;color:#444}
.note{color:#555;font-style:italic}
td.verdict{font-weight:600;white-space:nowrap} td.reproduced{color:#11632a;background:#e8f6ec}
td.not-reproduced{color:#8a1c1c;background:#fbeaea} td.not-measured{color:#666}
"""

SCRIPT = """
function sortValue(td){const v=td.dataset.sort;return v===undefined?td.textContent.trim():v;}
function sortTable(th,dir){
  const table=th.closest('table'),tbody=table.tBodies[0];
  const idx=Array.prototype.indexOf.call(th.parentNode.children,th);
  const asc=dir?dir==='asc':th.getAttribute('aria-sort')!=='ascending';
  const rows=Array.from(tbody.rows);
  rows.sort(function(a,b){
    const x=sortValue(a.cells[idx]),y=sortValue(b.cells[idx]);
    if(x===''||y===''){return (x==='')-(y==='');}  // missing values always last
    const nx=Number(x),ny=Number(y);
    const c=(!isNaN(nx)&&!isNaN(ny))?nx-ny:String(x).localeCompare(String(y));
    return asc?c:-c;});
  rows.forEach(function(r){tbody.appendChild(r);});
  table.querySelectorAll('th').forEach(function(h){h.removeAttribute('aria-sort');});
  th.setAttribute('aria-sort',asc?'ascending':'descending');
}
document.querySelectorAll('table.sortable th').forEach(function(th){
  th.addEventListener('click',function(){sortTable(th);});});
(function(){
  const q=new URLSearchParams(window.location.search),key=q.get('sort');
  if(!key){return;}
  const dir=q.get('dir')==='desc'?'desc':'asc';
  let n=0;
  document.querySelectorAll('table.sortable th').forEach(function(th){
    if(th.dataset.key===key){sortTable(th,dir);n++;}});
  document.body.setAttribute('data-sorted',key+':'+dir+':'+n);
})();
"""


def column_slug(column: Column) -> str:
    """A URL-friendly key for a headline column, e.g. ``acc1.alpha=0.mode=paper``."""
    parts = [column.metric] + [f"{k}={v}" for k, v in sorted(column.params.items())]
    return re.sub(r"[^A-Za-z0-9_.=@-]+", "_", ".".join(parts))


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _th(label: str, key: str, title: str = "") -> str:
    return f'<th data-key="{_e(key)}" title="{_e(title or "click to sort")}">{_e(label)}</th>'


def _td(text: object, sort: object = None, cls: str = "") -> str:
    sort_attr = "" if sort is None else f' data-sort="{_e(sort)}"'
    cls_attr = f' class="{cls}"' if cls else ""
    return f"<td{cls_attr}{sort_attr}>{_e(text)}</td>"


def _table(table_id: str, head: list[str], body: list[str]) -> str:
    return (f'<div class="scroll"><table class="sortable" id="{_e(table_id)}"><thead><tr>{"".join(head)}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table></div>')


def _board_row(row: Row, columns: list[Column]) -> str:
    identity = row_identity(row)
    cells = [_td(identity[0], "" if row.rank is None else row.rank, "num")]
    cells += [_td(text) for text in identity[1:4]] + [_td(identity[4], row.n_seeds, "num")]
    for c in columns:
        cell = row.cells.get(c.key)
        mean = "" if cell is None or cell.mean is None else repr(cell.mean)
        cells.append(_td(cell_text(cell, c, row.n_seeds), mean, "num"))
    cells.append(_td(row.provenance(), cls="prov"))
    return f"<tr>{''.join(cells)}</tr>"


def _conditions(board: Leaderboard) -> str:
    """The per-condition aggregate (every metric and params combination) in a collapsed block."""
    rows = {r.group: r for r in board.rows}
    body = []
    for c in board.conditions.itertuples():
        row, spec = rows[c.group], spec_for(board.task, c.metric)
        fmt = spec.fmt if spec else ".4g"
        params = ", ".join(f"{k}={v}" for k, v in sorted(json.loads(c.params).items()))
        mean = "" if c.mean != c.mean else repr(float(c.mean))  # NaN != NaN
        std = None if c.std != c.std else float(c.std)
        body.append("<tr>" + _td(row.model) + _td(row.dataset) + _td(" ".join(row.overrides) or "—")
                    + _td(spec.display if spec else c.metric) + _td(params)
                    + _td(format_mean_std(None if mean == "" else float(c.mean), std, fmt), mean, "num")
                    + _td(int(c.n_seeds), int(c.n_seeds), "num") + "</tr>")
    head = [_th(h, h) for h in ("model", "dataset", "overrides", "metric", "params", "mean ± std", "seeds")]
    return (f"<details><summary>Every metric and condition ({len(body)} lines)</summary>"
            f"{_table(f'conditions-{board.task}', head, body)}</details>")


def _figure(path: Path, caption: str, results_dir: Path) -> str:
    size = path.stat().st_size
    if size > MAX_EMBEDDED_PNG_BYTES:
        return (f'<p class="note">{_e(caption)}: {size / 2**20:.1f} MiB, not embedded — '
                f'<a href="{_e(relative(path, results_dir))}">open it</a></p>')
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{_e(caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{_e(caption)}</figcaption></figure>")


def _claims(task: str, lines: list[ClaimLine]) -> str:
    """The "Paper claims" table of one task; the verdict cell carries its status as a class."""
    if not lines:
        return ""
    card = card_for(task)
    head = [_th(h, h.split(" ")[0]) for h in CLAIMS_HEADER]
    body = []
    for line in lines:
        status = line.verdict.status.replace(" ", "-")
        body.append("<tr>" + _td(f"{line.claim.text} ({line.claim.id})") + _td(line.claim.paper)
                    + _td(line.row.label) + _td(line.suite_text, cls="num")
                    + _td(line.verdict_text, status, f"verdict {status}")
                    + _td(f"yes ({line.preset})" if line.targeted else "") + _td(line.evidence, cls="prov") + "</tr>")
    return (f'<h3>Paper claims</h3><p class="note">{_e(card.paper.title)} — {_e(card.paper.cite)}. '
            "Verdict on the seed group's metrics pooled over seeds (stderr = std/√n); "
            "this suite = the claim's value per seed, mean ± std.</p>"
            + _table(f"claims-{task}", head, body))


def _board(board: Leaderboard, claims: list[ClaimLine], results_dir: Path) -> str:
    head = [_th(h, h) for h in IDENTITY_HEADER]
    head += [_th(f"{c.label} {arrow(c)}", column_slug(c),
                 f"{'higher' if c.higher_is_better else 'lower'} is better; click to sort") for c in board.columns]
    head.append(_th("provenance", "provenance"))
    body = [_board_row(r, board.columns) for r in board.rows]
    parts = [f'<section id="task-{_e(board.task)}"><h2>{_e(board.task)}</h2>']
    if board.fallback:
        parts.append('<p class="note">No headline metric declared for this task: showing every metric '
                     "(declare metrics in the task's card.py).</p>")
    parts.append(_table(f"board-{board.task}", head, body))
    if board.columns:
        c = board.columns[0]
        parts.append(f'<p class="note">Ranked by {_e(c.label)} ({"higher" if c.higher_is_better else "lower"} '
                     "is better); mean ± std over seeds.</p>")
    parts.append(_claims(board.task, claims))
    parts.append(_conditions(board))
    figures = [_figure(p, f"{r.label} — {p.stem} (run {r.representative.record['run_id']})", results_dir)
               for r in board.rows for p in r.representative.plots]
    if figures:
        parts.append(f'<h3>Plots</h3><div class="plots">{"".join(figures)}</div>')
    parts.append("</section>")
    return "".join(parts)


def _unfinished(collection: Collection, results_dir: Path) -> str:
    if not collection.unfinished:
        return ""
    head = [_th(h, h) for h in ("task", "run", "status", "started", "error")]
    body = ["<tr>" + _td(r.record["task"]) + _td(relative(r.dir, results_dir)) + _td(r.status)
            + _td(r.record["started_at"]) + _td(error_summary(r.record.get("error"))) + "</tr>"
            for r in collection.unfinished]
    return ('<section id="unfinished"><h2>Not ranked: failed or still running</h2>'
            f'{_table("unfinished-runs", head, body)}</section>')


def _problems(collection: Collection, results_dir: Path) -> str:
    if not collection.problems:
        return ""
    head = [_th("path", "path"), _th("reason", "reason")]
    body = ["<tr>" + _td(relative(p.path, results_dir)) + _td(p.reason) + "</tr>" for p in collection.problems]
    return f'<section id="problems"><h2>Skipped files</h2>{_table("skipped-files", head, body)}</section>'


def render_html(boards: list[Leaderboard], claims: dict[str, list[ClaimLine]], collection: Collection,
                results_dir: Path, generated_at: str) -> str:
    """The whole leaderboard as one self-contained HTML page."""
    nav = " · ".join(f'<a href="#task-{_e(b.task)}">{_e(b.task)}</a>' for b in boards)
    sections = "".join(_board(b, claims.get(b.task, []), results_dir) for b in boards) or \
        '<p class="note">No completed runs yet: run bench experiment=&lt;task&gt;/embedded first.</p>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>bench leaderboard</title><style>{STYLE}</style></head><body>"
        f"<h1>bench leaderboard</h1><p>Generated {_e(generated_at)} from {len(collection.completed)} completed "
        f"run(s) (results schema v{SCHEMA_VERSION}). Runs that differ only by seed are one row: "
        "mean ± std over seeds. "
        f"Click a column header to sort.</p><nav>{nav}</nav>"
        f"{sections}{_unfinished(collection, results_dir)}{_problems(collection, results_dir)}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
