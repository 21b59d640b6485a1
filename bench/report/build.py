"""Build every leaderboard output from a results folder, atomically."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

from bench.atomic import atomic_write_text
from bench.report.aggregate import build_leaderboards, conditions_table
from bench.report.claims import ClaimLine, claim_lines, claims_table
from bench.report.collect import Collection, collect
from bench.report.forest import forest_plot
from bench.report.render_html import render_html
from bench.report.render_md import render_markdown
from bench.report.scorecard import PaperScore, scorecard
from bench.schema import export_schemas


@dataclass
class Report:
    """What was read and where the outputs went."""
    collection: Collection
    outputs: dict[str, Path]
    claims: dict[str, list[ClaimLine]]  # task -> its card's claims on each seed group
    scorecard: list[PaperScore]


def write_report(results_dir: Path) -> Report:
    """Read ``results_dir/runs``; write leaderboard.md/.csv/.html, leaderboard_claims.csv, one forest
    plot per task with claims (``forest/<task>.png``), and export the JSON Schemas."""
    results_dir = Path(results_dir)
    collection = collect(results_dir)
    boards = build_leaderboards(collection.completed)
    claims = {board.task: claim_lines(board) for board in boards}
    papers = scorecard(boards, claims)
    forests = {task: forest_plot(lines, results_dir / "forest" / f"{task}.png")
               for task, lines in claims.items() if lines}
    generated_at = dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")
    outputs = {
        "markdown": results_dir / "leaderboard.md",
        "csv": results_dir / "leaderboard.csv",
        "html": results_dir / "leaderboard.html",
        "claims csv": results_dir / "leaderboard_claims.csv",
    }
    atomic_write_text(outputs["markdown"],
                      render_markdown(boards, claims, papers, forests, collection, results_dir, generated_at))
    atomic_write_text(outputs["csv"], conditions_table(boards).to_csv(index=False))
    atomic_write_text(outputs["claims csv"],
                      claims_table([line for lines in claims.values() for line in lines]).to_csv(index=False))
    atomic_write_text(outputs["html"],
                      render_html(boards, claims, papers, forests, collection, results_dir, generated_at))
    outputs.update({f"forest {task}": path for task, path in forests.items()})
    schemas = export_schemas(results_dir / "schema")
    outputs["schema"] = schemas[0].parent
    return Report(collection, outputs, claims, papers)
