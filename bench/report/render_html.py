"""Render the leaderboards as one static, offline ``results/leaderboard.html``.

The page leads with the answer: the scorecard (per paper, per preset and seed group, its claims'
verdicts, each linked to its line in the claims table: :mod:`bench.report.render_scorecard`), then
per task the forest plot of its claims, its leaderboard (one row per model under test) and its
claims table. It fits a 1,400 px screen: tables take the page's width and wrap (long evidence and
paper figures fold into a ``<details>`` cell), and plots are PNG files beside the page, linked and
lazy-loaded, so the page stays small. Everything else is inline (CSS, a small sorting script:
:mod:`bench.report.page`): it works from ``file://`` with no network. Clicking a header sorts its
table; ``?sort=<key>&dir=desc`` applies the same sort on load (a bookmarkable view, and how the
browser test drives it).
"""
from __future__ import annotations

import json
import re
from pathlib import Path

from bench.report.aggregate import Column, Leaderboard
from bench.report.claims import ClaimLine
from bench.report.collect import Collection
from bench.report.forest import CAPTION
from bench.report.metrics import format_mean_std, spec_for
from bench.report.page import SCRIPT, STYLE, escape, figure, table, td, th
from bench.report.render_md import (
    CLAIMS_HEADER, CONFIG_HEADER, CONFIG_NOTE, IDENTITY_HEADER, arrow, cell_text, config_identity, error_summary,
    relative, row_identity)
from bench.report.render_scorecard import render_scorecard
from bench.report.rows import Row
from bench.report.scorecard import PaperScore, claim_anchor, slug
from bench.schema import SCHEMA_VERSION
from bench.tasks import card_for


def column_slug(column: Column) -> str:
    """A URL-friendly key for a headline column, e.g. ``acc1.alpha=0.mode=paper``."""
    parts = [column.metric] + [f"{k}={v}" for k, v in sorted(column.params.items())]
    return re.sub(r"[^A-Za-z0-9_.=@-]+", "_", ".".join(parts))


def _board_row(row: Row, columns: list[Column]) -> str:
    identity = row_identity(row)
    cells = [td(identity[0], "" if row.rank is None else row.rank, "num")]
    cells += [td(text, cls="id") for text in identity[1:5]] + [td(identity[5], row.n_seeds, "num")]
    cells += [_cell(row, c) for c in columns]
    cells.append(td(row.seed_group.provenance(), cls="prov"))
    return f"<tr>{''.join(cells)}</tr>"


def _cell(row: Row, column: Column) -> str:
    """A headline cell: ``mean ± std`` shown, the mean to sort by."""
    cell = row.cells.get(column.key)
    mean = "" if cell is None or cell.mean is None else repr(cell.mean)
    return td(cell_text(cell, column, row.n_seeds), mean, "num")


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
        body.append("<tr>" + td(group.model) + td(group.dataset) + td(" ".join(group.overrides) or "—")
                    + td(spec.display if spec else c.metric) + td(params, fold=True)
                    + td(format_mean_std(None if mean == "" else float(c.mean), std, fmt), mean, "num")
                    + td(int(c.n_seeds), int(c.n_seeds), "num") + "</tr>")
    head = [th(h, h) for h in ("model", "dataset", "overrides", "metric", "params", "mean ± std", "seeds")]
    return (f"<details><summary>Every metric and condition ({len(body)} lines)</summary>"
            f"{table(f'conditions-{board.task}', head, body)}</details>")


def _claims(task: str, lines: list[ClaimLine]) -> str:
    """The "Paper claims" table of one task; each line has the id the scorecard links to."""
    if not lines:
        return ""
    card = card_for(task)
    head = [th(h, h.split(" ")[0]) for h in CLAIMS_HEADER]
    body = []
    for line in lines:
        status = slug(line.verdict.status)
        body.append(f'<tr id="{claim_anchor(line)}">' + td(f"{line.claim.text} ({line.claim.id})")
                    + td(line.claim.paper, fold=True) + td(line.row.label, cls="id") + td(line.suite_text, cls="num")
                    + td(line.verdict_text, status, f"verdict v-{status}")
                    + td("yes" if line.targeted else "")
                    + td(line.evidence, cls="prov", fold=True) + "</tr>")
    return (f'<h3>Paper claims</h3><p class="note">{escape(card.paper.title)} — {escape(card.paper.cite)}. '
            "Verdict: the claim's 95% interval, a bootstrap over the seed group's seeds and their items; "
            "this suite = the claim's value per seed, mean ± std.</p>"
            + table(f"claims-{task}", head, body))


def _board(board: Leaderboard, claims: list[ClaimLine], forest: Path | None, results_dir: Path) -> str:
    parts = [f'<section id="task-{escape(board.task)}"><h2>{escape(board.task)}</h2>']
    if forest is not None:
        parts.append(figure(relative(forest, results_dir), CAPTION,
                             f"claims of {board.task}: effect, 95% interval and threshold per claim"))
    head = [th(h, h) for h in IDENTITY_HEADER]
    head += [th(f"{c.label} {arrow(c)}", column_slug(c),
                 f"{'higher' if c.higher_is_better else 'lower'} is better; click to sort") for c in board.columns]
    head.append(th("provenance", "provenance"))
    body = [_board_row(r, board.columns) for r in board.rows]
    if board.fallback:
        parts.append('<p class="note">No headline metric declared for this task: showing every metric '
                     "(declare metrics in the task's card.py).</p>")
    parts.append(table(f"board-{board.task}", head, body))
    if board.columns:
        c = board.columns[0]
        unit = f"one row per model under test ({', '.join(board.ranking_unit)}) per config; " \
            if board.ranking_unit else ""
        parts.append(f'<p class="note">{escape(unit)}ranked by {escape(c.label)} '
                     f'({"higher" if c.higher_is_better else "lower"} is better); mean ± std over seeds.</p>')
    if board.config_rows:
        head = [th(h, h) for h in CONFIG_HEADER] + [th(f"{c.label} {arrow(c)}", column_slug(c))
                                                     for c in board.config_columns]
        body = ["<tr>" + "".join(td(text, cls="id") for text in config_identity(r, board))
                + "".join(_cell(r, c) for c in board.config_columns) + "</tr>" for r in board.config_rows]
        parts.append(f'<p class="note">{escape(CONFIG_NOTE)}</p>' + table(f"configs-{board.task}", head, body))
    parts.append(_claims(board.task, claims))
    parts.append(_conditions(board))
    figures = [figure(relative(p, results_dir), f"{g.label} — {p.stem} (run {g.representative.record['run_id']})",
                       f"{g.label} — {p.stem}")
               for g in board.groups for p in g.representative.plots]
    if figures:
        parts.append(f'<h3>Plots</h3><div class="plots">{"".join(figures)}</div>')
    parts.append("</section>")
    return "".join(parts)


def _unfinished(collection: Collection, results_dir: Path) -> str:
    if not collection.unfinished:
        return ""
    head = [th(h, h) for h in ("task", "run", "status", "started", "error")]
    body = ["<tr>" + td(r.record["task"]) + td(relative(r.dir, results_dir)) + td(r.status)
            + td(r.record["started_at"]) + td(error_summary(r.record.get("error")), fold=True) + "</tr>"
            for r in collection.unfinished]
    return ('<section id="unfinished"><h2>Not ranked: failed or still running</h2>'
            f'{table("unfinished-runs", head, body)}</section>')


def _problems(collection: Collection, results_dir: Path) -> str:
    if not collection.problems:
        return ""
    head = [th("path", "path"), th("reason", "reason")]
    body = ["<tr>" + td(relative(p.path, results_dir)) + td(p.reason, fold=True) + "</tr>"
            for p in collection.problems]
    return f'<section id="problems"><h2>Skipped files</h2>{table("skipped-files", head, body)}</section>'


def render_html(boards: list[Leaderboard], claims: dict[str, list[ClaimLine]], papers: list[PaperScore],
                forests: dict[str, Path], collection: Collection, results_dir: Path, generated_at: str) -> str:
    """The whole leaderboard as one HTML page (plots linked beside it)."""
    nav = " · ".join(f'<a href="#task-{escape(b.task)}">{escape(b.task)}</a>' for b in boards)
    sections = "".join(_board(b, claims.get(b.task, []), forests.get(b.task), results_dir) for b in boards) or \
        '<p class="note">No completed runs yet: run bench experiment=&lt;task&gt;/embedded first.</p>'
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>bench leaderboard</title><style>{STYLE}</style></head><body>"
        f'<h1>bench leaderboard</h1><p class="meta">Generated {escape(generated_at)} from '
        f"{len(collection.completed)} completed run(s) (results schema v{SCHEMA_VERSION}). A row is one model "
        "under test in one config; runs that differ only by seed are pooled (mean ± std over seeds). "
        f"Tasks: {nav}</p>"
        f"{render_scorecard(papers)}{sections}{_unfinished(collection, results_dir)}{_problems(collection, results_dir)}"
        f"<script>{SCRIPT}</script></body></html>\n"
    )
