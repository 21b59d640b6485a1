"""``bench-report``: write results/leaderboard.{md,csv,html} (with each task's paper claims) from every
validated run. ``--claims`` prints the claims tables; ``--check-claims`` exits 1 when a claim that a
run's preset targets is not reproduced (for CI or a cluster job to gate on)."""
from __future__ import annotations

import argparse
import os
import sys
from collections import Counter
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
    parser.add_argument("--claims", action="store_true", help="print every task's paper-claims table")
    parser.add_argument("--check-claims", action="store_true",
                        help="exit 1 when a claim targeted by a run's preset (its card's targets) is not reproduced")
    args = parser.parse_args(argv)
    results_dir = args.results_dir or default_results_dir()
    if not (results_dir / "runs").is_dir():
        print(f"bench-report: no runs under {results_dir / 'runs'}; run `bench ...` first or pass "
              "--results-dir pointing at the folder that holds runs/", file=sys.stderr)
    from bench.errors import BenchError
    from bench.report import write_report

    try:
        report = write_report(results_dir)
    except BenchError as e:  # e.g. a task package on $BENCH_TASKS without a card
        print(f"bench-report: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a read-only or full results folder
        print(f"bench-report: error: {e.filename or results_dir}: {e.strerror or e}; the leaderboard is written "
              "into the results folder: make it writable or pass --results-dir", file=sys.stderr)
        return 2
    c = report.collection
    for problem in c.problems:
        print(f"bench-report: skipped {problem.path}: {problem.reason}", file=sys.stderr)
    print(f"{len(c.completed)} completed run(s) ranked, {len(c.unfinished)} failed/running listed, "
          f"{len(c.problems)} file(s) skipped")
    if args.screenshot:
        from bench.report.browser import page_url, screenshot

        try:
            report.outputs["screenshot"] = screenshot(page_url(report.outputs["html"]),
                                                      results_dir / "screenshots" / "leaderboard.png")
        except BenchError as e:
            print(f"bench-report: error: {e}", file=sys.stderr)
            return 2
    if args.claims:
        from bench.report.render_md import claims_section

        for task, lines in report.claims.items():
            print("\n".join(claims_section(task, lines)))
    for kind, path in report.outputs.items():
        print(f"{kind:>10}: {path}")
    if args.check_claims:
        return _check_claims(report.claims)
    return 0


def _check_claims(claims: dict) -> int:
    """1 (and one line per claim) when a targeted claim is not reproduced, else 0.

    Every other verdict of a target fails the check too, each named as what it is: inconclusive (the
    interval straddles the threshold), invalid (a gate failed), not measured, not applicable."""
    targeted = [line for lines in claims.values() for line in lines if line.targeted]
    failed = [line for line in targeted if line.failed_target]
    for line in failed:
        print(f"bench-report: claim {line.task}/{line.claim.id} targeted by {line.preset} is "
              f"{line.verdict.status} for {line.row.label}: {line.evidence}", file=sys.stderr)
    counts = Counter(line.verdict.status for line in failed)
    others = "".join(f", {n} {status}" for status, n in sorted(counts.items()))
    print(f"check-claims: {len(targeted) - len(failed)} of {len(targeted)} targeted claim(s) reproduced{others}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
