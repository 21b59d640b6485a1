"""Vectorised robustness sweep vs a per-sample Python loop, side by side.

The full alpha x perturbation x trials sweep on 10,000 x 512 cached embeddings (synthetic, with a
modality gap, written once to the safetensors embedding cache and read back like the task does):
the vectorised ``robustness_sweep`` (trials batched, on GPU when present) against a loop that takes
one query at a time. Both draw the same noise from the same seed; the script checks the results are
identical and prints the speed ratio (target >= 20x).

    python benchmarks/robustness_sweep.py [--n 10000] [--d 512] [--trials 5]
"""
from __future__ import annotations

import argparse
import tempfile
import time

import torch

from bench.modality_gap.embeddings import cached
from bench.modality_gap.gap import GapShift
from bench.modality_gap.robustness import Perturbation, robustness_sweep
from bench.seeding import torch_generator

ALPHAS = [0.0, 0.25, 0.5, 0.75, 1.0, 1.5]
SWEEP = {"gaussian": [0.005, 0.022, 0.04], "quantize": [32, 256]}


def synthetic_embeddings(n: int, d: int, m: int, seed: int = 0) -> dict[str, torch.Tensor]:
    """Unit-norm queries and class prototypes separated by a gap along one direction."""
    gen = torch.Generator().manual_seed(seed)
    unit = lambda x: x / x.norm(dim=-1, keepdim=True)  # noqa: E731
    centre = unit(torch.randn(d, generator=gen))
    protos = unit(torch.randn(m, d, generator=gen) * 0.05 - 0.4 * centre)
    labels = torch.randint(m, (n,), generator=gen)
    images = unit(protos[labels] + 0.05 * torch.randn(n, d, generator=gen) + 0.8 * centre)
    return {"images": images, "prototypes": protos, "labels": labels}


def loop_sweep(y, x, labels, shift, trials, seed):
    """Reference: the same sweep, one query at a time."""
    out = []
    direction = shift.direction(y, x)
    for kind, levels in SWEEP.items():
        for i, level in enumerate(levels):
            pert = Perturbation(kind, level)
            t = pert.trials(trials)
            draws = pert.draw(t, tuple(x.shape), torch_generator(seed, "level", i))
            for alpha in ALPHAS:
                q, r = shift.apply(y, x, alpha, direction)
                perturbed = pert.apply(r, draws)
                same = correct = 0
                for trial in range(t):
                    xp = perturbed[trial]
                    for n in range(len(q)):
                        clean = int(((r - q[n]) ** 2).sum(-1).argmin())
                        pred = int(((xp - q[n]) ** 2).sum(-1).argmin())
                        same += pred == clean
                        correct += pred == int(labels[n])
                out.append((kind, level, alpha, same / (t * len(q)), correct / (t * len(q))))
    return out


def vectorised_sweep(y, x, labels, shift, trials, seed, device):
    out = []
    for kind, levels in SWEEP.items():
        rows = robustness_sweep(y, x, labels, alphas=ALPHAS, shift=shift, perturbation=kind, levels=levels,
                                trials=trials, seed=seed, device=device, dtype=torch.float64)
        out += [(kind, r["level"], r["alpha"], r["robustness"], r["accuracy"]) for r in rows]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--d", type=int, default=512)
    ap.add_argument("--classes", type=int, default=100)
    ap.add_argument("--trials", type=int, default=5)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--cache-dir", default=tempfile.gettempdir())
    args = ap.parse_args()
    torch.set_num_threads(max(1, torch.get_num_threads()))
    key = {"benchmark": "robustness_sweep", "n": args.n, "d": args.d, "classes": args.classes}
    emb = cached(args.cache_dir, key, lambda: synthetic_embeddings(args.n, args.d, args.classes))
    y, x, labels = emb["images"].double(), emb["prototypes"].double(), emb["labels"]
    shift = GapShift("paper")
    device = "cuda" if torch.cuda.is_available() else "cpu"
    n_configs = sum(len(v) for v in SWEEP.values()) * len(ALPHAS)
    print(f"{args.n} x {args.d} embeddings, {args.classes} classes, {n_configs} (perturbation, level, alpha) "
          f"configs, {args.trials} trials (quantize: 1), vectorised on {device}")

    vectorised_sweep(y[:100], x, labels[:100], shift, args.trials, args.seed, device)  # warm-up (CUDA init)
    if device == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    fast = vectorised_sweep(y, x, labels, shift, args.trials, args.seed, device)
    if device == "cuda":
        torch.cuda.synchronize()
    t_fast = time.perf_counter() - t0
    t0 = time.perf_counter()
    slow = loop_sweep(y, x, labels, shift, args.trials, args.seed)
    t_slow = time.perf_counter() - t0

    # One flipped prediction moves a value by >= 1/(n*trials); averaging order only moves the last ulp.
    worst = max(abs(a[3] - b[3]) + abs(a[4] - b[4]) for a, b in zip(fast, slow))
    identical = [a[:3] for a in fast] == [b[:3] for b in slow] and worst < 1e-12
    print(f"per-sample loop: {t_slow:.2f} s   vectorised: {t_fast:.3f} s   ratio: {t_slow / t_fast:.1f}x (target >= 20x)")
    print(f"identical results for seed {args.seed}: {identical} (max |difference| {worst:.1e}; one flipped prediction would be >= {1 / (args.n * args.trials):.1e})")
    for kind, level, alpha, rob, acc in fast:
        if alpha in (0.0, 1.0):
            print(f"  {kind:9s} level={level:<6g} alpha={alpha:<4g} robustness={rob:.4f} accuracy={acc:.4f}")
    if not identical:
        raise SystemExit("vectorised and loop sweeps disagree")


if __name__ == "__main__":
    main()
