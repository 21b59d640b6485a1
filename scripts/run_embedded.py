"""`make run`: every task's embedded preset on this machine, then the leaderboard and its claims.

The tasks are the ones bench finds (:func:`bench.tasks.tasks`), each run with its card's
``preset`` as its own process (a crash in one does not lose the others' records): one
`bench -m experiment=<preset> seed=<s1>,<s2>,...` sweep over the seeds the card declares for the
preset (``TaskCard.seeds``), or `bench experiment=<preset>` (the config's seed) when it declares none.
The script stops at the first failure with its exit code. It ends by printing each task's Paper
claims table (`bench-report --claims`).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    sys.path.insert(0, str(ROOT))
    from bench.tasks import tasks

    # Threads: each task's `threads` config (default: the cores this process may use), never the load.

    bindir = Path(sys.executable).parent
    t0 = time.monotonic()
    for task in tasks().values():
        preset = task.card.preset
        seeds = task.card.seeds_for(preset)
        args = ["-m", f"experiment={preset}", "seed=" + ",".join(map(str, seeds))] if seeds else [f"experiment={preset}"]
        t = time.monotonic()
        print(f"==> bench {' '.join(args)}", flush=True)
        rc = subprocess.call([str(bindir / "bench"), *args], cwd=ROOT)
        if rc:
            print(f"bench {' '.join(args)} failed with exit code {rc}", file=sys.stderr)
            return rc
        print(f"    done in {time.monotonic() - t:.0f} s", flush=True)
    report = subprocess.run([str(bindir / "bench-report"), "--claims"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    root = ROOT / os.environ.get("BENCH_ROOT", ".")
    results = root / "results"
    print(f"\nAll done in {time.monotonic() - t0:.0f} s.\n"
          f"  run records + plots: {results / 'runs'}/<task>/<run_id>/ (run.json, metrics.jsonl, artifacts/)\n"
          f"  leaderboard:         {results / 'leaderboard.md'}, {results / 'leaderboard.html'}\n"
          f"  W&B offline runs:    {root / 'outputs' / 'wandb'} (push with `wandb sync`)\n", flush=True)
    print(report.stdout, flush=True)
    return report.returncode


if __name__ == "__main__":
    sys.exit(main())
