"""`make run` on a quiet machine vs with one competing CPU-bound process, measured side by side.

For each thread policy and each condition, every embedded preset runs as its own `bench` process
(as `make run` runs them) in a fresh BENCH_ROOT, so nothing is reused from a cache:

- policy ``bench``: bench's own thread policy (:func:`bench.cli.main`: OMP_WAIT_POLICY=PASSIVE; the
  ``threads`` config, default the cores this process may use, whatever the load);
- policy ``torch``: torch's defaults (one thread per core, OpenMP's spin-then-sleep waits), i.e. what
  `make run` did before; the baseline a user gets without bench's policy;
- condition ``busy``: one ``python -c "while True: pass"`` runs for the whole measurement.

Prints the seconds per preset and the busy/quiet ratio per policy (acceptance: bench's <= 2x), and
writes results/benchmarks/make_run_load.json. The full run takes ~4x `make run`; ``--presets``
measures fewer presets (the reduced form in docs/performance.md), ``--override`` shrinks them.

    python benchmarks/make_run_load.py
    python benchmarks/make_run_load.py --presets modality_gap/embedded
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PRESETS = ["whitening/embedded", "modality_gap/embedded", "shift/embedded"]
# torch's defaults: bench's entry point without its thread policy (the Hydra app itself).
RUN_WITHOUT_POLICY = ("import sys; from bench import cli; sys.argv[0] = 'bench'; cli.register_config_schemas(); "
                      "cli._app()")


def _bench(preset: str, policy: str, overrides: list[str]) -> float:
    """Seconds for one `bench experiment=<preset>` in a fresh root (raises if it fails)."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "BENCH_RUN_ID")}
    with tempfile.TemporaryDirectory(prefix="make-run-load-") as root:
        env |= {"BENCH_ROOT": root, "HF_HUB_OFFLINE": "1", "WANDB_MODE": "offline"}
        args = [f"experiment={preset}", "logger=none", "trainer.enable_progress_bar=false", *overrides]
        cmd = ([sys.executable, "-m", "bench.cli", *args] if policy == "bench"
               else [sys.executable, "-c", RUN_WITHOUT_POLICY, *args])
        t0 = time.monotonic()
        res = subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        seconds = time.monotonic() - t0
    if res.returncode:
        raise SystemExit(f"{' '.join(cmd)} failed ({res.returncode}):\n{res.stdout[-3000:]}")
    return seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=PRESETS)
    parser.add_argument("--policies", nargs="+", default=["bench", "torch"], choices=["bench", "torch"])
    parser.add_argument("--override", action="append", default=[], help="a bench override for every run")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "benchmarks" / "make_run_load.json")
    args = parser.parse_args()

    rows = []
    for condition in ("quiet", "busy"):
        hog = subprocess.Popen([sys.executable, "-c", "while True: pass"]) if condition == "busy" else None
        try:
            for policy in args.policies:
                for preset in args.presets:
                    load = os.getloadavg()[0]
                    seconds = _bench(preset, policy, args.override)
                    rows.append({"condition": condition, "policy": policy, "preset": preset,
                                 "seconds": round(seconds, 1), "load_before": round(load, 2)})
                    print(f"{condition:>5} {policy:>5} {preset:<24} {seconds:7.1f} s  (1-min load before: {load:.2f})",
                          flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()

    summary = {}
    for policy in args.policies:
        quiet = sum(r["seconds"] for r in rows if r["policy"] == policy and r["condition"] == "quiet")
        busy = sum(r["seconds"] for r in rows if r["policy"] == policy and r["condition"] == "busy")
        summary[policy] = {"quiet_s": round(quiet, 1), "busy_s": round(busy, 1), "busy_over_quiet": round(busy / quiet, 2)}
        print(f"policy {policy:>5}: quiet {quiet:.0f} s, busy {busy:.0f} s -> busy/quiet {busy / quiet:.2f}x"
              f" (acceptance for bench's policy: <= 2x)")
    if "bench" in summary and "torch" in summary:
        speedup = summary["torch"]["busy_s"] / summary["bench"]["busy_s"]
        print(f"busy machine: bench's policy is {speedup:.2f}x torch's defaults")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "benchmark": "make_run_load", "measured_at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "cores": len(os.sched_getaffinity(0)), "presets": args.presets, "overrides": args.override,
        "rows": rows, "summary": summary}, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
