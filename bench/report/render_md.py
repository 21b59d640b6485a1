"""Render the leaderboards as ``results/leaderboard.md``: the scorecard, then per task its forest
plot, leaderboard and claims tables (the same order as the html page, so a README can embed it)."""
from __future__ import annotations

import re
from pathlib import Path

from bench.report.aggregate import Column, Leaderboard
from bench.report.rows import Cell, Row
from bench.report.claims import ClaimLine
from bench.report.collect import Collection
from bench.report.forest import CAPTION
from bench.report.metrics import format_mean_std
from bench.report.scorecard import VERDICTS, PaperScore
from bench.schema import SCHEMA_VERSION
from bench.tasks import card_for

BADGES = {"reproduced": "🟢", "not reproduced": "🔴", "inconclusive": "🟡", "invalid": "🟣",
          "not measured": "⚪", "not applicable": "⚫"}


def cell_text(cell: Cell | None, column: Column, n_seeds: int) -> str:
    """``mean ± std``, with the seed count when fewer seeds than the row has logged this metric."""
    if cell is None:
        return "—"
    text = format_mean_std(cell.mean, cell.std, column.fmt)
    return text if cell.n == n_seeds else f"{text} (n={cell.n})"


def arrow(column: Column) -> str:
    return "↑" if column.higher_is_better else "↓"


def error_summary(error: str | None) -> str:
    """The last line of a run's error (the exception and its message), or an empty string."""
    lines = (error or "").strip().splitlines()
    return lines[-1] if lines else ""


def relative(path: Path, start: Path) -> str:
    """``path`` relative to ``start`` with forward slashes (links that survive moving the folder)."""
    return Path(path).resolve().relative_to(Path(start).resolve()).as_posix()


def _md(text: object) -> str:
    """A markdown table cell: no pipes or newlines."""
    return str(text).replace("|", "\\|").replace("\n", " ").strip()


def _table(header: list[str], lines: list[list[object]]) -> list[str]:
    out = ["| " + " | ".join(map(_md, header)) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(map(_md, line)) + " |" for line in lines]
    return out


def row_identity(row: Row) -> list[str]:
    """Rank, model under test, preset, dataset, distinguishing overrides, seeds: what a row is (seeds
    that all evaluated the same weights are marked, and their cells carry no ± std)."""
    group = row.seed_group
    seeds = str(row.n_seeds) + (f" (identical weights {row.shared_weights})" if row.shared_weights else "")
    return ["—" if row.rank is None else str(row.rank), row.model, group.preset or "—", group.dataset,
            " ".join(group.overrides) or "—", seeds]


IDENTITY_HEADER = ["rank", "model", "preset", "dataset", "overrides", "seeds"]
CONFIG_HEADER = ["config", "models under test", "seeds"]
CONFIG_NOTE = ("Figures of each config as a whole: they name none of the models its runs train (a comparison "
               "between them, a property of the data), so they rank none.")


def config_identity(row: Row, board: Leaderboard) -> list[str]:
    """A whole config's row: its preset and overrides, the models its runs hold, its seeds."""
    group = row.seed_group
    models = [r.model for r in board.rows if r.seed_group is group]
    return [" ".join([group.preset or group.label, *group.overrides]), "; ".join(models), str(row.n_seeds)]


def claims_heading(task: str) -> str:
    return f"Paper claims: {task}"


def heading_anchor(heading: str) -> str:
    """The anchor GitHub and most renderers give a heading (lower case, punctuation dropped, spaces → -)."""
    return re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")


def badge(status: str) -> str:
    """A verdict as a coloured mark and its word."""
    return f"{BADGES.get(status, '▪')} {status}"


def scorecard_section(papers: list[PaperScore]) -> list[str]:
    """The scorecard: per paper a table with a column per preset and seed group (its models under test
    and verdict counts) and a line per claim with its verdict in each group."""
    if not papers:
        return []
    out = ["## Scorecard", "", " · ".join(badge(v) for v in VERDICTS) + "; a claim the preset targets is in bold.", ""]
    for paper in papers:
        arxiv = f" — arXiv:{paper.paper.arxiv}" if paper.paper.arxiv else ""
        detail = heading_anchor(claims_heading(paper.task))
        out += [f"### {paper.paper.title}{arxiv}", "", f"{paper.paper.authors}, {paper.paper.venue} · task "
                f"`{paper.task}` · {', '.join(paper.presets)} · [every claim's evidence](#{detail})", ""]
        header = ["claim"] + [f"{paper.column_title(b)} ({'; '.join(b.models)})" for b in paper.blocks]
        counts = ["**verdicts**"] + [
            ", ".join(f"{n} {BADGES.get(status, '▪')}" for status, n in b.counts)
            + (" · targeted: {} of {} reproduced".format(*b.targeted) if b.targeted[1] else "") for b in paper.blocks]
        lines = [counts]
        for claim_lines in paper.matrix:
            first = next(line for line in claim_lines if line is not None)
            text = f"{first.claim.text} ([`{first.claim.id}`](#{detail}))"
            targeted = any(line is not None and line.targeted for line in claim_lines)
            lines.append([f"**{text}**" if targeted else text]
                         + ["" if line is None else badge(line.verdict.status) for line in claim_lines])
        out += _table(header, lines) + [""]
    return out


CLAIMS_HEADER = ["claim", "paper", "config", "this suite (mean ± std over seeds)", "verdict", "targeted", "evidence"]


def claims_section(task: str, lines: list[ClaimLine]) -> list[str]:
    """The "Paper claims" table of one task (empty when its card has no claims)."""
    if not lines:
        return []
    card = card_for(task)
    out = [f"### {claims_heading(task)}", "", f"{card.paper.title} — {card.paper.cite}.", ""]
    rows = [[f"{line.claim.text} (`{line.claim.id}`)", line.claim.paper, line.row.label, line.suite_text,
             line.verdict_text, f"yes ({line.preset})" if line.targeted else "", line.evidence] for line in lines]
    return out + _table(CLAIMS_HEADER, rows) + [""]


def _board(board: Leaderboard, claims: list[ClaimLine], forest: Path | None, results_dir: Path) -> list[str]:
    out = [f"## {board.task}", ""]
    if forest is not None:
        out += [f"![claims of {board.task}: effect, 95% interval and threshold per claim]"
                f"({relative(forest, results_dir)})", "", f"_{CAPTION}_", ""]
    if board.fallback:
        out += ["_No headline metric declared for this task: showing every metric "
                "(declare `metrics` in the task's card.py)._", ""]
    header = IDENTITY_HEADER + [f"{c.label} {arrow(c)}" for c in board.columns] + ["provenance"]
    lines = [row_identity(r) + [cell_text(r.cells.get(c.key), c, r.n_seeds) for c in board.columns]
             + [r.seed_group.provenance()] for r in board.rows]
    out += _table(header, lines) + [""]
    if board.columns:
        out += [f"Ranked by {board.columns[0].label} ({'higher' if board.columns[0].higher_is_better else 'lower'}"
                " is better); mean ± std over seeds.", ""]
    if board.config_rows:
        header = CONFIG_HEADER + [f"{c.label} {arrow(c)}" for c in board.config_columns]
        lines = [config_identity(r, board) + [cell_text(r.cells.get(c.key), c, r.n_seeds) for c in board.config_columns]
                 for r in board.config_rows]
        out += [CONFIG_NOTE, ""] + _table(header, lines) + [""]
    out += claims_section(board.task, claims)
    plots = [(g, p) for g in board.groups for p in g.representative.plots]
    if plots:
        out += ["Plots (the latest run of each seed group):", ""]
        out += [f"- {g.label}: [{p.stem}]({relative(p, results_dir)})" for g, p in plots]
        out.append("")
    return out


def _unfinished(collection: Collection, results_dir: Path) -> list[str]:
    if not collection.unfinished:
        return []
    lines = [[r.record["task"], relative(r.dir, results_dir), r.status, r.record["started_at"],
              error_summary(r.record.get("error"))] for r in collection.unfinished]
    return ["## Not ranked: failed or still running", ""] + _table(
        ["task", "run", "status", "started", "error"], lines) + [""]


def _problems(collection: Collection, results_dir: Path) -> list[str]:
    if not collection.problems:
        return []
    lines = [[relative(p.path, results_dir), p.reason] for p in collection.problems]
    return ["## Skipped files", ""] + _table(["path", "reason"], lines) + [""]


def render_markdown(boards: list[Leaderboard], claims: dict[str, list[ClaimLine]], papers: list[PaperScore],
                    forests: dict[str, Path], collection: Collection, results_dir: Path, generated_at: str) -> str:
    """The whole leaderboard page as markdown."""
    out = ["# bench leaderboard", "",
           f"Generated {generated_at} from {len(collection.completed)} completed run(s) under `runs/` "
           f"(results schema v{SCHEMA_VERSION}). A row is one model under test in one config; the runs that "
           "differ only by seed are pooled: mean ± std over seeds.", ""]
    if not boards:
        out += ["_No completed runs yet: run `bench experiment=<task>/embedded` first._", ""]
    out += scorecard_section(papers)
    for board in boards:
        out += _board(board, claims.get(board.task, []), forests.get(board.task), results_dir)
    out += _unfinished(collection, results_dir) + _problems(collection, results_dir)
    return "\n".join(out)
