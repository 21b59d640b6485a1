"""The robustness sweep against the honest baseline and the GEMM roofline, side by side in one run.

The task's sweep (alpha x Gaussian level x trials, paper mode or ``--mode``) on n x 512 synthetic unit-norm
embeddings with a modality gap and 100 classes, in the task's dtype (float32 by default):

- **fused**: ``bench.modality_gap.robustness.robustness_sweep``: Gaussian noise is additive and the
  paper shift moves only the queries along one line, so ONE ``mm`` of the queries against the clean
  set and every trial of every level stacked serves all alphas; per alpha only a per-item bias
  (-alpha v.x) is added before the argmax, over query chunks; on GPU when present (``--mode
  symmetric`` moves X too: the GEMM is then against the noise, plus y.r_alpha per alpha, and each
  alpha also adds y.r_alpha and a per-query scale);
- **cdist** / **matmul**: what a competent user writes: per (alpha, level, trial) config
  ``torch.cdist(q, x_t).argmin`` or ``(q @ x_t.T * 2 - ||x_t||^2).argmax``, same dtype, the clean
  search also once per alpha;
- **roofline**: a plain ``torch.mm`` doing the nominal per-config work (every alpha's query chunks
  against all the sweep's columns), measured in the same run. The fused sweep skips most of that
  work, so two readings are printed: GFLOP/s on the GEMM work it actually does (its fraction of the
  roofline rate shows how much time the element-wise assembly and argmax take), and the effective
  rate on the nominal work (above 100% of the roofline when skipping work pays).

Every method gets the same noise draws; predictions are compared element by element (a differing
prediction is reported, never averaged away). Peak memory is the rise of the process RSS (CPU,
sampled every ms) or of ``torch.cuda.max_memory_allocated`` (GPU) during each call. Results go to
``results/benchmarks/robustness_sweep.json``.

    python benchmarks/robustness_sweep.py [--sizes 500 2500 10000] [--trials 5] [--dtype float32] [--mode paper]
"""
from __future__ import annotations

import argparse
import os
import platform
import threading
import time
from pathlib import Path

import torch

from bench.atomic import atomic_write_json
from bench.modality_gap.gap import GapShift
from bench.modality_gap.perturbation import Perturbation
from bench.modality_gap.robustness import robustness_sweep, sweep_predictions
from bench.seeding import torch_generator

ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5]
LEVELS = [0.005, 0.022, 0.04]  # sigma^2, norm convention (the task's default)


def synthetic_embeddings(n: int, d: int, m: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Unit-norm queries and class prototypes separated by a gap along one direction (float64)."""
    gen = torch.Generator().manual_seed(seed)
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    centre = unit(torch.randn(d, generator=gen, dtype=torch.float64))
    protos = unit(torch.randn(m, d, generator=gen, dtype=torch.float64) * 0.05 - 0.4 * centre)
    labels = torch.randint(m, (n,), generator=gen)
    images = unit(protos[labels] + 0.05 * torch.randn(n, d, generator=gen, dtype=torch.float64) + 0.8 * centre)
    return images, protos, labels


class PeakMemory:
    """Peak memory rise (bytes) during a block: CUDA allocator peak, or sampled process RSS on CPU."""

    def __init__(self, device: str) -> None:
        self.device, self.peak = device, 0

    def _rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _sample(self) -> None:
        while not self._stop.is_set():
            self._max = max(self._max, self._rss())
            time.sleep(0.001)

    def __enter__(self) -> "PeakMemory":
        if self.device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self._base = torch.cuda.memory_allocated()
        else:
            self._base = self._max = self._rss()
            self._stop = threading.Event()
            self._thread = threading.Thread(target=self._sample, daemon=True)
            self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.device == "cuda":
            torch.cuda.synchronize()
            self.peak = torch.cuda.max_memory_allocated() - self._base
        else:
            self._stop.set()
            self._thread.join()
            self.peak = max(self._max, self._rss()) - self._base


def _draws(x: torch.Tensor, trials: int, seed: int) -> list[dict]:
    """The sweep's noise, exactly as ``robustness_sweep`` draws it (same generator per level)."""
    return [Perturbation("gaussian", level).draw(trials, tuple(x.shape), torch_generator(seed, "level", i))
            for i, level in enumerate(LEVELS)]


def per_config(y, x, shift, direction, trials, seed, device, dtype, method: str) -> dict:
    """The honest baseline: one search per (alpha, level, trial) config, the clean search once per
    alpha, the noise drawn as the task draws it (timed too: the fused sweep draws its own)."""
    q0, x0 = y.to(device, dtype), x.to(device, dtype)
    v = direction.to(device, dtype)
    noise = [draw["noise"].to(device, dtype) for draw in _draws(x, trials, seed)]

    def search(q: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        if method == "cdist":
            return torch.cdist(q, r).argmin(-1)
        return (2 * q @ r.T - r.square().sum(-1)).argmax(-1)

    out = {}
    for alpha in ALPHAS:
        q, r = shift.apply(q0, x0, alpha, v)
        out[("clean", alpha)] = search(q, r)
        for level, eps in zip(LEVELS, noise):
            out[(level, alpha)] = torch.stack([search(q, r + eps[t]) for t in range(len(eps))])
    return out


def fused_predictions(y, x, shift, direction, args, device, dtype) -> dict:
    """The fused sweep's own predictions per config (the ones ``robustness_sweep`` reduces to rows)."""
    per_alpha = sweep_predictions(y, x, alphas=ALPHAS, shift=shift, perturbation="gaussian", levels=LEVELS,
                                  trials=args.trials, seed=args.seed, direction=direction, device=device, dtype=dtype)
    out = {}
    for alpha, (clean, preds, _) in zip(ALPHAS, per_alpha):
        out[("clean", alpha)] = clean
        out.update({(level, alpha): pred for level, pred in zip(LEVELS, preds)})
    return out


def roofline(q: torch.Tensor, w: torch.Tensor, buf: torch.Tensor) -> None:
    """A plain ``torch.mm`` of the same total work: every query chunk (``len(buf)`` rows) against all
    columns of ``w``."""
    for i in range(0, len(q), len(buf)):
        c = q[i:i + len(buf)]
        torch.mm(c, w, out=buf[:len(c)])


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fns: dict, device: str, repeats: int) -> tuple[dict, dict, dict]:
    """Per method: the best wall time over ``repeats`` rounds, the peak memory rise of its first
    (untimed) call, and that call's result. The rounds interleave the methods, so a burst of load
    from other jobs on a shared machine hits every method alike rather than one."""
    peak, result, best = {}, {}, {name: float("inf") for name in fns}
    for name, fn in fns.items():
        with PeakMemory(device) as mem:
            result[name] = fn()
        peak[name] = mem.peak
    for _ in range(repeats):
        for name, fn in fns.items():
            _sync(device)
            t0 = time.perf_counter()
            fn()
            _sync(device)
            best[name] = min(best[name], time.perf_counter() - t0)
    return best, peak, result


def run_size(n: int, args: argparse.Namespace, device: str, dtype: torch.dtype) -> dict:
    y, x, labels = synthetic_embeddings(n, args.d, args.classes, args.seed)
    shift = GapShift(args.mode)
    direction = shift.direction(y, x)  # float64, as the task computes it
    m = args.classes
    columns = m * (1 + len(LEVELS) * args.trials)  # the clean set and every trial of every level
    nominal = 2 * n * args.d * columns * len(ALPHAS)  # the per-config work: every alpha searches every column
    # the fused sweep's GEMM work: one search serves every alpha (plus the clean-sized y.r_alpha per
    # alpha when the retrieval set moves: symmetric mode)
    done = 2 * n * args.d * (columns + (m * len(ALPHAS) if shift.moves_retrieval else 0))

    def fused() -> list[dict]:
        return robustness_sweep(y, x, labels, alphas=ALPHAS, shift=shift, perturbation="gaussian", levels=LEVELS,
                                trials=args.trials, seed=args.seed, direction=direction, device=device, dtype=dtype)

    chunk_rows = max(1, (1 << 24) // columns)
    w = torch.randn(args.d, columns * len(ALPHAS), device=device, dtype=dtype)
    buf = torch.empty(min(chunk_rows, n), columns * len(ALPHAS), device=device, dtype=dtype)
    q = y.to(device, dtype)
    methods = {"fused": fused,
               "cdist": lambda: per_config(y, x, shift, direction, args.trials, args.seed, device, dtype, "cdist"),
               "matmul": lambda: per_config(y, x, shift, direction, args.trials, args.seed, device, dtype, "matmul"),
               "roofline_mm": lambda: roofline(q, w, buf)}
    best, peak, result = _timed(methods, device, args.repeats)
    t_fused, t_cdist, t_mm, t_roof = best["fused"], best["cdist"], best["matmul"], best["roofline_mm"]
    mem_fused, mem_cdist, mem_mm = peak["fused"], peak["cdist"], peak["matmul"]
    ref_cdist = result["cdist"]
    mine = fused_predictions(y, x, shift, direction, args, device, dtype)
    differing = sum(int((mine[k] != ref_cdist[k]).sum()) for k in mine)
    total = sum(v.numel() for v in mine.values())
    roof = nominal / t_roof
    row = {"n": n, "d": args.d, "classes": m, "trials": args.trials, "configs": len(ALPHAS) * len(LEVELS),
           "gflop": {"nominal": nominal / 1e9, "done": done / 1e9},
           "seconds": {"fused": t_fused, "cdist": t_cdist, "matmul": t_mm, "roofline_mm": t_roof},
           "peak_mib": {"fused": mem_fused / 2**20, "cdist": mem_cdist / 2**20, "matmul": mem_mm / 2**20},
           "gflops": {"fused_on_work_done": done / t_fused / 1e9, "fused_effective": nominal / t_fused / 1e9,
                      "roofline_mm": roof / 1e9},
           "fraction_of_roofline": {"on_work_done": done / t_fused / roof, "effective": nominal / t_fused / roof},
           "speedup_vs_cdist": t_cdist / t_fused, "speedup_vs_matmul": t_mm / t_fused,
           "predictions_compared": total, "predictions_differing_from_cdist": differing}
    frac, rate = row["fraction_of_roofline"], row["gflops"]
    print(f"n={n:>6}: fused {t_fused:7.3f} s (roofline {rate['roofline_mm']:.1f} GFLOP/s; on work done "
          f"{rate['fused_on_work_done']:.1f} = {frac['on_work_done']:.0%}; effective on nominal work "
          f"{rate['fused_effective']:.1f} = {frac['effective']:.0%}) | cdist {t_cdist:7.3f} s "
          f"({row['speedup_vs_cdist']:.2f}x) | matmul {t_mm:7.3f} s ({row['speedup_vs_matmul']:.2f}x) | peak MiB fused "
          f"{row['peak_mib']['fused']:.0f} cdist {row['peak_mib']['cdist']:.0f} matmul {row['peak_mib']['matmul']:.0f} | "
          f"{differing} of {total} predictions differ from cdist")
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[500, 2500, 10_000])
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--mode", choices=["paper", "symmetric", "image_only"], default="paper",
                    help="the gap shift (paper: the task's first mode; symmetric also moves the retrieval set)")
    ap.add_argument("--out", default="results/benchmarks/robustness_sweep.json")
    args = ap.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    dtype = getattr(torch, args.dtype)
    print(f"robustness sweep ({args.mode} shift): {len(ALPHAS)} alphas x {len(LEVELS)} Gaussian levels "
          f"x {args.trials} trials, "
          f"d={args.d}, {args.classes} classes, {args.dtype} on {device} ({torch.get_num_threads()} threads)")
    rows = [run_size(n, args, device, dtype) for n in args.sizes]
    result = {"benchmark": "robustness_sweep", "device": device, "dtype": args.dtype,
              "threads": torch.get_num_threads(), "machine": platform.processor() or platform.machine(),
              "torch": torch.__version__, "mode": args.mode, "alphas": ALPHAS, "levels": LEVELS, "sizes": rows}
    atomic_write_json(Path(args.out), result)
    print(f"written to {args.out}")
    if any(r["predictions_differing_from_cdist"] for r in rows):
        print("note: differing predictions are float ties broken differently by cdist and the fused GEMM")


if __name__ == "__main__":
    main()
