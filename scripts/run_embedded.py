"""`make run`: every embedded benchmark on this machine, then the leaderboard.

Each task runs as its own `bench experiment=<task>/embedded` process (a crash in one does not
lose the others' records); the script stops at the first failure with its exit code.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

EXPERIMENTS = ["whitening/embedded", "modality_gap/embedded", "shift/embedded"]
ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    bindir = Path(sys.executable).parent
    t0 = time.monotonic()
    for exp in EXPERIMENTS:
        t = time.monotonic()
        print(f"==> bench experiment={exp}", flush=True)
        rc = subprocess.call([str(bindir / "bench"), f"experiment={exp}"], cwd=ROOT)
        if rc:
            print(f"bench experiment={exp} failed with exit code {rc}", file=sys.stderr)
            return rc
        print(f"    done in {time.monotonic() - t:.0f} s", flush=True)
    rc = subprocess.call([str(bindir / "bench-report")], cwd=ROOT)
    results = ROOT / "results"
    print(f"\nAll done in {time.monotonic() - t0:.0f} s.\n"
          f"  run records + plots: {results / 'runs'}/<task>/<run_id>/ (run.json, metrics.jsonl, artifacts/)\n"
          f"  leaderboard:         {results / 'leaderboard.md'}, {results / 'leaderboard.html'}\n"
          f"  W&B offline runs:    {ROOT / 'outputs' / 'wandb'} (push with `wandb sync`)")
    return rc


if __name__ == "__main__":
    sys.exit(main())
