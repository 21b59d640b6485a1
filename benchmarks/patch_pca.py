"""Streaming patch PCA vs the common approach (materialise every patch, torch.pca_lowrank).

Each method runs in its own subprocess on the same 10,000 32x32 RGB images (generated from a
fixed seed as smooth random fields, so the spectrum is natural-image-like); peak memory is the
kernel's peak RSS (reset just before the method) minus the RSS at that moment. Prints time and memory
ratios and the max relative eigenvalue difference.

    .venv/bin/python benchmarks/patch_pca.py [--n 10000] [--kernel 3]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import torch


def make_images(n: int, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB fields (blurred noise with correlated channels), uint8."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 40, 40, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=0)[..., :32, :32]
    mix = torch.tensor([[1.0, 0.6, 0.4], [0.6, 1.0, 0.6], [0.4, 0.6, 1.0]])
    x = torch.einsum("oc,nchw->nohw", mix, x)
    return ((x - x.min()) / (x.max() - x.min()) * 255).to(torch.uint8)


def _status_mb(field: str) -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def _reset_peak() -> None:
    """Reset the kernel's peak-RSS counter (VmHWM), so the peak covers the method alone."""
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")


def _worker(method: str, n: int, k: int) -> None:
    from bench.whitening.patch_pca import patch_pca

    images = make_images(n)
    torch.set_num_threads(1)
    base = _status_mb("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    if method == "streaming":
        batches = (images[i:i + 256].float() / 255 for i in range(0, n, 256))
        eigvals = patch_pca(batches, k, progress=False).eigvals
    else:  # the common approach: every patch in one matrix, then a (randomised) low-rank PCA.
        # float64, like the streaming side, so both are accurate and the comparison is like for like.
        x = images.double() / 255
        patches = torch.nn.functional.unfold(x, k).transpose(1, 2).reshape(-1, 3 * k * k)
        d = patches.shape[1]
        _, s, _ = torch.pca_lowrank(patches, q=d, center=True, niter=4)
        eigvals = (s.double() ** 2 / (patches.shape[0] - 1))
    elapsed = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    print(json.dumps({"time_s": elapsed, "peak_extra_mb": peak - base, "eigvals": eigvals.tolist()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--kernel", type=int, default=3)
    ap.add_argument("--worker", choices=["streaming", "materialise"])
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.n, args.kernel)
        return
    res = {}
    for method in ("materialise", "streaming"):
        out = subprocess.run([sys.executable, __file__, "--worker", method, "--n", str(args.n),
                              "--kernel", str(args.kernel)], capture_output=True, text=True, check=True)
        res[method] = json.loads(out.stdout.strip().splitlines()[-1])
    a, b = torch.tensor(res["streaming"]["eigvals"]), torch.tensor(res["materialise"]["eigvals"])
    rel = ((a - b).abs() / b.abs()).max().item()
    n_patches = args.n * (32 - args.kernel + 1) ** 2
    print(f"{args.n} images, {n_patches:,} patches of {3 * args.kernel ** 2} dims")
    for m in ("materialise", "streaming"):
        print(f"  {m:12s} {res[m]['time_s']:7.2f} s   peak +{res[m]['peak_extra_mb']:8.1f} MiB")
    print(f"  time ratio   {res['materialise']['time_s'] / res['streaming']['time_s']:.1f}x faster")
    print(f"  memory ratio {res['materialise']['peak_extra_mb'] / max(res['streaming']['peak_extra_mb'], 1e-3):.1f}x less")
    print(f"  max relative eigenvalue difference {rel:.2e}")


if __name__ == "__main__":
    main()
