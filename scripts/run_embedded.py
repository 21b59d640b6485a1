"""`make run`: every task's embedded preset on this machine, then the leaderboard and its claims.

The tasks are the ones bench finds (:func:`bench.tasks.tasks`), each run with its card's
``preset`` as its own process (a crash in one does not lose the others' records): one
`bench -m experiment=<preset> seed=<s1>,<s2>,...` sweep over the seeds the card declares for the
preset (``TaskCard.seeds``), or `bench experiment=<preset>` (the config's seed) when it declares none.

The tasks run at the same time, each with an equal share of the cores as its ``threads`` (at least
one): on a 2-core machine three single-threaded sweeps keep both cores busy, where one sweep after
another would leave a core idle through every serial step. ``threads`` is config, recorded in each
run's provenance, so the figures depend on that share, never on the load. Each task's output goes to
``results/logs/<task>.log``. When every sweep has ended the script prints each task's Paper claims
table (`bench-report --claims`); it exits with the first failing sweep's code.
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
    from bench.config import default_threads
    from bench.tasks import tasks

    found = list(tasks().values())
    threads = max(1, default_threads() // len(found))
    bindir = Path(sys.executable).parent
    root = ROOT / os.environ.get("BENCH_ROOT", ".")
    results = root / "results"
    logs = results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    t0 = time.monotonic()
    running = {}
    for task in found:
        preset = task.card.preset
        seeds = task.card.seeds_for(preset)
        args = ["-m", f"experiment={preset}", "seed=" + ",".join(map(str, seeds))] if seeds else [f"experiment={preset}"]
        args.append(f"threads={threads}")
        log = logs / f"{task.name}.log"
        print(f"==> bench {' '.join(args)}   (output: {log})", flush=True)
        with open(log, "w") as out:
            running[task.name] = (args, log, subprocess.Popen([str(bindir / "bench"), *args], cwd=ROOT,
                                                              stdout=out, stderr=subprocess.STDOUT))
    failed = 0
    for name, (args, log, proc) in running.items():
        rc = proc.wait()
        if rc:
            tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
            print(f"bench {' '.join(args)} failed with exit code {rc}; the end of {log}:\n{tail}", file=sys.stderr)
            failed = failed or rc
        else:
            print(f"    {name} done at {time.monotonic() - t0:.0f} s", flush=True)
    if failed:
        return failed
    report = subprocess.run([str(bindir / "bench-report"), "--claims"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    print(f"\nAll done in {time.monotonic() - t0:.0f} s.\n"
          f"  run records + plots: {results / 'runs'}/<task>/<run_id>/ (run.json, metrics.jsonl, artifacts/)\n"
          f"  leaderboard:         {results / 'leaderboard.md'}, {results / 'leaderboard.html'}\n"
          f"  logs:                {logs}/<task>.log\n"
          f"  W&B offline runs:    {root / 'outputs' / 'wandb'} (push with `wandb sync`)\n", flush=True)
    print(report.stdout, flush=True)
    return report.returncode


if __name__ == "__main__":
    sys.exit(main())
