"""Render the leaderboards as one static, offline ``results/leaderboard.html``.

The page leads with the answer: the scorecard (per paper, per preset and seed group, its claims'
verdicts, each linked to its line in the claims table), then per task the forest plot of its
claims, its leaderboard (one row per model under test) and its claims table. It fits a 1,400 px
screen: tables take the page's width and wrap (long evidence and paper figures fold into a
``<details>`` cell), and plots are PNG files beside the page, linked and lazy-loaded, so the page
stays small. Everything else is inline (CSS, a small sorting script): it works from ``file://``
with no network. Clicking a header sorts its table; ``?sort=<key>&dir=desc`` applies the same
sort on load (a bookmarkable view, and how the browser test drives it).
"""
from __future__ import annotations

import html
import json
import re
from pathlib import Path

from bench.report.aggregate import Column, Leaderboard
from bench.report.rows import Row
from bench.report.claims import ClaimLine
from bench.report.collect import Collection
from bench.report.forest import CAPTION
from bench.report.metrics import format_mean_std, spec_for
from bench.report.render_md import (
    CLAIMS_HEADER, CONFIG_HEADER, CONFIG_NOTE, IDENTITY_HEADER, arrow, cell_text, config_identity, error_summary,
    relative, row_identity)
from bench.report.scorecard import SYMBOLS, VERDICTS, Block, PaperScore, claim_anchor, slug
from bench.schema import SCHEMA_VERSION
from bench.tasks import card_for

# Longer cell texts (evidence, the paper's figures) fold into a <details> showing their start.
FOLD_CHARS = 90

STYLE = """
body{font:14px/1.45 system-ui,sans-serif;margin:1em auto;max-width:1360px;padding:0 1em;color:#1b1b1b}
h1{font-size:1.5em;margin:.2em 0} h2{margin:1.2em 0 .4em} p.meta{margin:.2em 0 .6em;color:#444}
table{border-collapse:collapse;margin:.6em 0 1em;font-variant-numeric:tabular-nums;width:100%}
th,td{border:1px solid #ccd;padding:.25em .45em;text-align:left;vertical-align:top;overflow-wrap:anywhere}
th{background:#eef1f7;cursor:pointer;user-select:none;font-size:13px}
th[aria-sort=ascending]::after{content:" ▲"} th[aria-sort=descending]::after{content:" ▼"}
td.num{text-align:right} td.prov{font-size:12px;color:#555} td.id{min-width:6.5em} td.verdict{min-width:7em}
tr:nth-child(even) td{background:#fafbfd} tr:target td{background:#fff6d6}
details summary{cursor:pointer} td details summary{color:#333}
figure{margin:.5em 0} figure img{max-width:100%;height:auto;border:1px solid #ddd}
figcaption{font-size:12px;color:#444;max-width:1000px}
.plots figure{display:inline-block;vertical-align:top;max-width:440px;margin:.4em}
.note{color:#555;font-style:italic}
.badge{display:inline-block;border-radius:3px;padding:0 .4em;font-size:12px;font-weight:600;white-space:nowrap}
.v-reproduced{color:#11632a;background:#dcf3e3} .v-not-reproduced{color:#8a1c1c;background:#fbe0e0}
.v-inconclusive{color:#7a5200;background:#fdf0cf} .v-invalid{color:#5b1a77;background:#efe0f7}
.v-not-measured,.v-not-applicable{color:#555;background:#ececec}
td.verdict{font-weight:600}
#scorecard .papers{display:grid;grid-template-columns:repeat(auto-fit,minmax(400px,1fr));gap:.8em}
.paper{border:1px solid #ccd;border-radius:6px;padding:.5em .7em;min-width:0;background:#fcfdff}
.paper h3{font-size:15px;margin:0 0 .1em} .paper .cite{font-size:12px;color:#555;margin:0 0 .3em}
.score{margin:.2em 0 0;font-size:12.5px} .score th,.score td{border:none;border-top:1px solid #e3e6ee;
 padding:.1em .3em;background:none;cursor:default;vertical-align:middle}
.score th{font-weight:normal;text-align:left;vertical-align:bottom} .score th.g{width:1%;min-width:7em}
.score th.g div{max-width:12em} .score th.g .m{font-size:11px;color:#555} .score .counts{margin-top:.15em}
.score td.c{max-width:0;width:100%} .score td.c a{display:block;overflow:hidden;text-overflow:ellipsis;
 white-space:nowrap;color:inherit;text-decoration:none} .score td.c a:hover{text-decoration:underline}
.score td.targeted{font-weight:600} .score td a{text-decoration:none}
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


def _td(text: object, sort: object = None, cls: str = "", fold: bool = False) -> str:
    """A cell; with ``fold``, a text longer than FOLD_CHARS shows its start and opens to the rest."""
    sort_attr = "" if sort is None else f' data-sort="{_e(sort)}"'
    cls_attr = f' class="{cls}"' if cls else ""
    text = str(text)
    if fold and len(text) > FOLD_CHARS:
        cut = text.rfind(" ", 0, FOLD_CHARS)
        body = (f"<details><summary>{_e(text[:cut if cut > 20 else FOLD_CHARS])} …</summary>"
                f"{_e(text)}</details>")
    else:
        body = _e(text)
    return f"<td{cls_attr}{sort_attr}>{body}</td>"


def _table(table_id: str, head: list[str], body: list[str]) -> str:
    return (f'<table class="sortable" id="{_e(table_id)}"><thead><tr>{"".join(head)}</tr>'
            f'</thead><tbody>{"".join(body)}</tbody></table>')


def _badge(status: str) -> str:
    return f'<span class="badge v-{slug(status)}">{_e(status)}</span>'


def _group_head(paper: PaperScore, block: Block) -> str:
    hit, targeted = block.targeted
    target = f"targeted: {hit} of {targeted} reproduced" if targeted else "no targeted claim"
    counts = " ".join(f'<span class="badge v-{slug(status)}" title="{_e(status)}">{n} {SYMBOLS.get(status, "")}'
                      "</span>" for status, n in block.counts)
    return (f'<th class="g" title="{_e(block.title)}: {_e("; ".join(block.models))}; {target}">'
            f'<div>{_e(paper.column_title(block))}</div><div class="m">{_e("; ".join(block.models))}</div>'
            f'<div class="counts">{counts}</div></th>')


def _claim_row(lines: list[ClaimLine | None]) -> str:
    first = next(line for line in lines if line is not None)
    targeted = any(line is not None and line.targeted for line in lines)
    text = (f'<td class="c{" targeted" if targeted else ""}"><a href="#{claim_anchor(first)}" '
            f'title="{_e(first.claim.text)} ({_e(first.claim.id)})">{_e(first.claim.text)}</a></td>')
    cells = "".join(
        "<td></td>" if line is None else
        f'<td><a href="#{claim_anchor(line)}" title="{_e(line.verdict_text)}{" · targeted" if line.targeted else ""}">'
        f'<span class="badge v-{slug(line.verdict.status)}">{SYMBOLS.get(line.verdict.status, "•")}</span></a></td>'
        for line in lines)
    return f"<tr>{text}{cells}</tr>"


def _scorecard(papers: list[PaperScore]) -> str:
    """The scorecard: one card per paper; a column per seed group (its models, its verdict counts), a
    line per claim with its verdict in each group, linked to its evidence."""
    if not papers:
        return ""
    cards = []
    for paper in papers:
        arxiv = f" · arXiv:{_e(paper.paper.arxiv)}" if paper.paper.arxiv else ""
        head = "<th>claim</th>" + "".join(_group_head(paper, b) for b in paper.blocks)
        body = "".join(_claim_row(lines) for lines in paper.matrix)
        cards.append(f'<article class="paper" id="paper-{slug(paper.task)}"><h3>{_e(paper.paper.title)}</h3>'
                     f'<p class="cite">{_e(paper.paper.authors)}, {_e(paper.paper.venue)}{arxiv} · task '
                     f'<a href="#task-{_e(paper.task)}">{_e(paper.task)}</a> · {_e(", ".join(paper.presets))}</p>'
                     f'<table class="score"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></article>')
    legend = " · ".join(f'<span class="badge v-{slug(v)}">{SYMBOLS[v]}</span> {_e(v)}' for v in VERDICTS)
    return ('<section id="scorecard"><h2>Scorecard</h2><div class="papers">' + "".join(cards) + "</div>"
            f'<p class="note">{legend}. A column per preset and config (its models under test and how many claims '
            "got each verdict), a line per claim (bold: a claim the preset targets); click a verdict for its "
            "evidence.</p></section>")


def _board_row(row: Row, columns: list[Column]) -> str:
    identity = row_identity(row)
    cells = [_td(identity[0], "" if row.rank is None else row.rank, "num")]
    cells += [_td(text, cls="id") for text in identity[1:5]] + [_td(identity[5], row.n_seeds, "num")]
    cells += [_cell(row, c) for c in columns]
    cells.append(_td(row.seed_group.provenance(), cls="prov"))
    return f"<tr>{''.join(cells)}</tr>"


def _cell(row: Row, column: Column) -> str:
    """A headline cell: ``mean ± std`` shown, the mean to sort by."""
    cell = row.cells.get(column.key)
    mean = "" if cell is None or cell.mean is None else repr(cell.mean)
    return _td(cell_text(cell, column, row.n_seeds), mean, "num")


def _conditions(board: Leaderboard) -> str:
    """The per-condition aggregate (every metric and params combination) in a collapsed block."""
    groups = {g.group: g for g in board.groups}
    body = []
    for c in board.conditions.itertuples():
        group, spec = groups[c.group], spec_for(board.task, c.metric)
        fmt = spec.fmt if spec else ".4g"
        params = ", ".join(f"{k}={v}" for k, v in sorted(json.loads(c.params).items()))
        mean = "" if c.mean != c.mean else repr(float(c.mean))  # NaN != NaN
        std = None if c.std != c.std else float(c.std)
        body.append("<tr>" + _td(group.model) + _td(group.dataset) + _td(" ".join(group.overrides) or "—")
                    + _td(spec.display if spec else c.metric) + _td(params, fold=True)
                    + _td(format_mean_std(None if mean == "" else float(c.mean), std, fmt), mean, "num")
                    + _td(int(c.n_seeds), int(c.n_seeds), "num") + "</tr>")
    head = [_th(h, h) for h in ("model", "dataset", "overrides", "metric", "params", "mean ± std", "seeds")]
    return (f"<details><summary>Every metric and condition ({len(body)} lines)</summary>"
            f"{_table(f'conditions-{board.task}', head, body)}</details>")


def _figure(src: str, caption_text: str, alt: str) -> str:
    return (f'<figure><a href="{_e(src)}"><img loading="lazy" alt="{_e(alt)}" src="{_e(src)}"></a>'
            f"<figcaption>{_e(caption_text)}</figcaption></figure>")


def _claims(task: str, lines: list[ClaimLine]) -> str:
    """The "Paper claims" table of one task; each line has the id the scorecard links to."""
    if not lines:
        return ""
    card = card_for(task)
    head = [_th(h, h.split(" ")[0]) for h in CLAIMS_HEADER]
    body = []
    for line in lines:
        status = slug(line.verdict.status)
        body.append(f'<tr id="{claim_anchor(line)}">' + _td(f"{line.claim.text} ({line.claim.id})")
                    + _td(line.claim.paper, fold=True) + _td(line.row.label, cls="id") + _td(line.suite_text, cls="num")
                    + _td(line.verdict_text, status, f"verdict v-{status}")
                    + _td("yes" if line.targeted else "")
                    + _td(line.evidence, cls="prov", fold=True) + "</tr>")
    return (f'<h3>Paper claims</h3><p class="note">{_e(card.paper.title)} — {_e(card.paper.cite)}. '
            "Verdict on the seed group's metrics pooled over seeds; "
            "this suite = the claim's value per seed, mean ± std.</p>"
            + _table(f"claims-{task}", head, body))


def _board(board: Leaderboard, claims: list[ClaimLine], forest: Path | None, results_dir: Path) -> str:
    parts = [f'<section id="task-{_e(board.task)}"><h2>{_e(board.task)}</h2>']
    if forest is not None:
        parts.append(_figure(relative(forest, results_dir), CAPTION,
                             f"claims of {board.task}: effect, 95% interval and threshold per claim"))
    head = [_th(h, h) for h in IDENTITY_HEADER]
    head += [_th(f"{c.label} {arrow(c)}", column_slug(c),
                 f"{'higher' if c.higher_is_better else 'lower'} is better; click to sort") for c in board.columns]
    head.append(_th("provenance", "provenance"))
    body = [_board_row(r, board.columns) for r in board.rows]
    if board.fallback:
        parts.append('<p class="note">No headline metric declared for this task: showing every metric '
                     "(declare metrics in the task's card.py).</p>")
    parts.append(_table(f"board-{board.task}", head, body))
    if board.columns:
        c = board.columns[0]
        unit = f"one row per model under test ({', '.join(board.ranking_unit)}) per config; " \
            if board.ranking_unit else ""
        parts.append(f'<p class="note">{_e(unit)}ranked by {_e(c.label)} '
                     f'({"higher" if c.higher_is_better else "lower"} is better); mean ± std over seeds.</p>')
    if board.config_rows:
        head = [_th(h, h) for h in CONFIG_HEADER] + [_th(f"{c.label} {arrow(c)}", column_slug(c))
                                                     for c in board.config_columns]
        body = ["<tr>" + "".join(_td(text, cls="id") for text in config_identity(r, board))
                + "".join(_cell(r, c) for c in board.config_columns) + "</tr>" for r in board.config_rows]
        parts.append(f'<p class="note">{_e(CONFIG_NOTE)}</p>' + _table(f"configs-{board.task}", head, body))
    parts.append(_claims(board.task, claims))
    parts.append(_conditions(board))
    figures = [_figure(relative(p, results_dir), f"{g.label} — {p.stem} (run {g.representative.record['run_id']})",
                       f"{g.label} — {p.stem}")
               for g in board.groups for p in g.representative.plots]
    if figures:
        parts.append(f'<h3>Plots</h3><div class="plots">{"".join(figures)}</div>')
    parts.append("</section>")
    return "".join(parts)


def _unfinished(collection: Collection, results_dir: Path) -> str:
    if not collection.unfinished:
        return ""
    head = [_th(h, h) for h in ("task", "run", "status", "started", "error")]
    body = ["<tr>" + _td(r.record["task"]) + _td(relative(r.dir, results_dir)) + _td(r.status)
            + _td(r.record["started_at"]) + _td(error_summary(r.record.get("error")), fold=True) + "</tr>"
            for r in collection.unfinished]
    return ('<section id="unfinished"><h2>Not ranked: failed or still running</h2>'
            f'{_table("unfinished-runs", head, body)}</section>')


def _problems(collection: Collection, results_dir: Path) -> str:
    if not collection.problems:
        return ""
    head = [_th("path", "path"), _th("reason", "reason")]
    body = ["<tr>" + _td(relative(p.path, results_dir)) + _td(p.reason, fold=True) + "</tr>"
            for p in collection.problems]
    return f'<section id="problems"><h2>Skipped files</h2>{_table("skipped-files", head, body)}</section>'


def render_html(boards: list[Leaderboard], claims: dict[str, list[ClaimLine]], papers: list[PaperScore],
                forests: dict[str, Path], collection: Collection, results_dir: Path, generated_at: str) -> str:
    """The whole leaderboard as one HTML page (plots linked beside it)."""
    nav = " · ".join(f'<a href="#task-{_e(b.task)}">{_e(b.task)}</a>' for b in boards)
    sections = "".join(_board(b, claims.get(b.task, []), forests.get(b.task), results_dir) for b in boards) or \
        '<p class="note">No completed runs yet: run bench experiment=&lt;task&gt;/embedded first.</p>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>bench leaderboard</title><style>{STYLE}</style></head><body>"
        f'<h1>bench leaderboard</h1><p class="meta">Generated {_e(generated_at)} from '
        f"{len(collection.completed)} completed run(s) (results schema v{SCHEMA_VERSION}). A row is one model "
        "under test in one config; runs that differ only by seed are pooled (mean ± std over seeds). "
        f"Tasks: {nav}</p>"
        f"{_scorecard(papers)}{sections}{_unfinished(collection, results_dir)}{_problems(collection, results_dir)}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
