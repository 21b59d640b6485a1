"""Render the leaderboards as ``results/leaderboard.md``."""
from __future__ import annotations

from pathlib import Path

from bench.report.aggregate import Cell, Column, Leaderboard, Row
from bench.report.claims import ClaimLine
from bench.report.collect import Collection
from bench.schema import SCHEMA_VERSION
from bench.tasks import card_for
from bench.report.metrics import format_mean_std


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
    """Rank, model, dataset, distinguishing overrides, seeds: what a row is (seeds that all evaluated
    the same weights are marked, and their cells carry no ± std)."""
    seeds = str(row.n_seeds) + (f" (identical weights {row.shared_weights})" if row.shared_weights else "")
    return ["—" if row.rank is None else str(row.rank), row.model, row.dataset,
            " ".join(row.overrides) or "—", seeds]


IDENTITY_HEADER = ["rank", "model", "dataset", "overrides", "seeds"]


CLAIMS_HEADER = ["claim", "paper", "config", "this suite (mean ± std over seeds)", "verdict", "targeted", "evidence"]


def claims_section(task: str, lines: list[ClaimLine]) -> list[str]:
    """The "Paper claims" table of one task (empty when its card has no claims)."""
    if not lines:
        return []
    card = card_for(task)
    out = [f"### Paper claims: {task}", "", f"{card.paper.title} — {card.paper.cite}.", ""]
    rows = [[f"{line.claim.text} (`{line.claim.id}`)", line.claim.paper, line.row.label, line.suite_text,
             line.verdict_text, f"yes ({line.preset})" if line.targeted else "", line.evidence] for line in lines]
    return out + _table(CLAIMS_HEADER, rows) + [""]


def _board(board: Leaderboard, claims: list[ClaimLine], results_dir: Path) -> list[str]:
    out = [f"## {board.task}", ""]
    if board.fallback:
        out += ["_No headline metric declared for this task: showing every metric "
                "(declare `metrics` in the task's card.py)._", ""]
    header = IDENTITY_HEADER + [f"{c.label} {arrow(c)}" for c in board.columns] + ["provenance"]
    lines = [row_identity(r) + [cell_text(r.cells.get(c.key), c, r.n_seeds) for c in board.columns]
             + [r.provenance()] for r in board.rows]
    out += _table(header, lines) + [""]
    if board.columns:
        out += [f"Ranked by {board.columns[0].label} ({'higher' if board.columns[0].higher_is_better else 'lower'}"
                " is better); mean ± std over seeds.", ""]
    out += claims_section(board.task, claims)
    plots = [(r, p) for r in board.rows for p in r.representative.plots]
    if plots:
        out += ["Plots (one run per row):", ""]
        out += [f"- {r.label}: [{p.stem}]({relative(p, results_dir)})" for r, p in plots]
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


def render_markdown(boards: list[Leaderboard], claims: dict[str, list[ClaimLine]], collection: Collection,
                    results_dir: Path, generated_at: str) -> str:
    """The whole leaderboard page as markdown."""
    out = ["# bench leaderboard", "",
           f"Generated {generated_at} from {len(collection.completed)} completed run(s) under `runs/` "
           f"(results schema v{SCHEMA_VERSION}). Runs that differ only by seed are one row: "
           "mean ± std over seeds.", ""]
    if not boards:
        out += ["_No completed runs yet: run `bench experiment=<task>/embedded` first._", ""]
    for board in boards:
        out += _board(board, claims.get(board.task, []), results_dir)
    out += _unfinished(collection, results_dir) + _problems(collection, results_dir)
    return "\n".join(out)
