"""`make run`: every task's embedded preset on this machine, then the leaderboard and its claims.

The tasks are the ones bench finds (:func:`bench.tasks.tasks`), each run with its card's
``preset`` as its own process (a crash in one does not lose the others' records): one
`bench -m experiment=<preset> seed=<s1>,<s2>,...` sweep over the seeds the card declares for the
preset (``TaskCard.seeds``), or `bench experiment=<preset>` (the config's seed) when it declares none.

The tasks run at the same time, each with the threads its card declares for the preset
(``TaskCard.threads``, default 1): on a 2-core machine the sweeps side by side keep both cores busy
where one after another would leave a core idle through every serial step. (A second thread does
not pay for small models: the longest preset at 2 threads had trained 6 of its 8 models at 744 s
where at 1 thread all 8 were done at 702 s.) The thread count is declared, not a share of this
machine's cores or of the number of tasks installed, because it changes the bits of every result (it
is recorded in each run's provenance): make run's figures are the same on any machine with the same
CPU kernels. Each
task's output goes to ``results/logs/<task>-<time>.log``; a failure is reported when it happens,
the other sweeps go on, and the leaderboard is built from every record there is. Ctrl-C stops
every sweep (their records so far stay). The exit code is the first failure's, else the report's.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _exit_code(rc: int) -> int:
    """A child killed by signal N (Popen's -N) as a shell reports it: 128 + N."""
    return 128 - rc if rc < 0 else rc


def main() -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("WANDB_MODE", "offline")
    sys.path.insert(0, str(ROOT))
    from bench.tasks import tasks

    bindir = Path(sys.executable).parent
    root = ROOT / os.environ.get("BENCH_ROOT", ".")
    results = root / "results"
    logs = results / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    t0 = time.monotonic()
    running: dict[str, tuple[list[str], Path, subprocess.Popen]] = {}
    failed = 0
    try:
        for task in tasks().values():
            preset = task.card.preset
            seeds = task.card.seeds_for(preset)
            args = ["-m", f"experiment={preset}", "seed=" + ",".join(map(str, seeds))] if seeds else \
                [f"experiment={preset}"]
            args.append(f"threads={task.card.threads_for(preset)}")
            log = logs / f"{task.name}-{stamp}.log"
            print(f"==> bench {' '.join(args)}   (output: {log})", flush=True)
            with open(log, "w") as out:
                proc = subprocess.Popen([str(bindir / "bench"), *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
            running[task.name] = (args, log, proc)
        pending = dict(running)
        while pending:  # report each sweep as it ends, a failure as soon as it happens
            for name, (args, log, proc) in list(pending.items()):
                rc = proc.poll()
                if rc is None:
                    continue
                del pending[name]
                if rc:
                    tail = "".join(log.read_text(errors="replace").splitlines(keepends=True)[-20:])
                    print(f"bench {' '.join(args)} failed with exit code {rc}; the end of {log}:\n{tail}",
                          file=sys.stderr, flush=True)
                    failed = failed or _exit_code(rc)
                else:
                    print(f"    {name} done at {time.monotonic() - t0:.0f} s", flush=True)
            time.sleep(0.5 if pending else 0)
    finally:  # Ctrl-C or an error here: stop every sweep still running (what they recorded stays)
        for _, _, proc in running.values():
            if proc.poll() is None:
                proc.terminate()
        for _, _, proc in running.values():
            proc.wait()
    report = subprocess.run([str(bindir / "bench-report"), "--claims"], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    print(f"\nAll done in {time.monotonic() - t0:.0f} s.\n"
          f"  run records + plots: {results / 'runs'}/<task>/<run_id>/ (run.json, metrics.jsonl, artifacts/)\n"
          f"  leaderboard:         {results / 'leaderboard.md'}, {results / 'leaderboard.html'}\n"
          f"  logs:                {logs}/<task>-{stamp}.log\n"
          f"  W&B offline runs:    {root / 'outputs' / 'wandb'} (push with `wandb sync`)\n", flush=True)
    print(report.stdout, flush=True)
    return failed or report.returncode


if __name__ == "__main__":
    sys.exit(main())
