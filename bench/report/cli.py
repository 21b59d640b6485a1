"""``bench-report``: write results/leaderboard.{md,csv,html} from every validated run."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def default_results_dir() -> Path:
    """``$BENCH_ROOT/results`` when BENCH_ROOT is set (as for ``bench``), else ``results``."""
    root = os.environ.get("BENCH_ROOT")
    return Path(root) / "results" if root else Path("results")


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; prints where the outputs are and every skipped file."""
    parser = argparse.ArgumentParser(prog="bench-report", description=__doc__)
    parser.add_argument("--results-dir", type=Path, default=None,
                        help="folder holding runs/ (default: $BENCH_ROOT/results or ./results)")
    parser.add_argument("--screenshot", action="store_true",
                        help="also save results/screenshots/leaderboard.png with headless chromium")
    args = parser.parse_args(argv)
    results_dir = args.results_dir or default_results_dir()
    if not (results_dir / "runs").is_dir():
        print(f"bench-report: no runs under {results_dir / 'runs'}; run `bench ...` first or pass "
              "--results-dir pointing at the folder that holds runs/", file=sys.stderr)
    from bench.report import write_report

    report = write_report(results_dir)
    c = report.collection
    for problem in c.problems:
        print(f"bench-report: skipped {problem.path}: {problem.reason}", file=sys.stderr)
    print(f"{len(c.completed)} completed run(s) ranked, {len(c.unfinished)} failed/running listed, "
          f"{len(c.problems)} file(s) skipped")
    if args.screenshot:
        from bench.errors import BenchError
        from bench.report.browser import page_url, screenshot

        try:
            report.outputs["screenshot"] = screenshot(page_url(report.outputs["html"]),
                                                      results_dir / "screenshots" / "leaderboard.png")
        except BenchError as e:
            print(f"bench-report: error: {e}", file=sys.stderr)
            return 2
    for kind, path in report.outputs.items():
        print(f"{kind:>10}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
