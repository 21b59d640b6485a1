"""Streaming patch PCA against what a competent user writes, side by side, at several sizes.

Methods, each in its own subprocess on the same images (smooth random RGB fields from a fixed
seed, 32x32, so the spectrum is natural-image-like), one thread each:
  streaming     bench's PatchMoments: per-batch GEMM over the unfolded columns, float64 sums
  materialised  every patch in one (P, D) matrix, then torch.cov + torch.linalg.eigh
  sklearn       every patch materialised (float32), sklearn.decomposition.PCA() with its defaults
  matmul        the roofline: one plain GEMM (P x D)^T (P x D) on the materialised patches — the
                same 2 P D^2 flops as the Gram matrix — timed alone in the same run
streaming and materialised run at both float32 and float64, so every ratio is at equal dtype.
Peak memory is the kernel's peak RSS during the method (reset just before) minus the RSS then.
Methods whose patch matrix would not fit comfortably in the free memory are skipped and say so.

    python benchmarks/patch_pca.py [--sizes 2500 10000 40000] [--out results/benchmarks/patch_pca.json]

The machine may be shared: the script prints and records the load average at the start and end.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch

KERNEL = 3
DTYPES = {"float32": torch.float32, "float64": torch.float64}


def make_images(n: int, seed: int = 0) -> torch.Tensor:
    """Smooth random RGB fields (blurred noise with correlated channels), uint8."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, 36, 36, generator=g)
    x = torch.nn.functional.avg_pool2d(x, 5, stride=1, padding=0)
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


def _materialise(images: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    x = images.to(dtype) / 255
    return torch.nn.functional.unfold(x, KERNEL).transpose(1, 2).reshape(-1, 3 * KERNEL * KERNEL)


def _worker(method: str, dtype_name: str, n: int) -> None:
    from bench.whitening.patch_pca import patch_pca

    torch.set_num_threads(1)
    dtype = DTYPES[dtype_name]
    images = make_images(n)
    prepared = _materialise(images, dtype) if method == "matmul" else None  # the roofline times the GEMM only
    if prepared is not None:
        prepared -= prepared.mean(0)
    base = _status_mb("VmRSS")
    _reset_peak()
    t0 = time.perf_counter()
    if method == "streaming":
        batches = (images[i:i + 256].to(dtype) / 255 for i in range(0, n, 256))
        eigvals = patch_pca(batches, KERNEL, progress=False, dtype=dtype).eigvals
    elif method == "materialised":
        vals = torch.linalg.eigvalsh(torch.cov(_materialise(images, dtype).T))
        eigvals = vals.flip(0)
    elif method == "sklearn":
        from sklearn.decomposition import PCA

        eigvals = torch.from_numpy(PCA().fit(_materialise(images, dtype).numpy()).explained_variance_.copy())
    else:  # matmul
        gram = prepared.T @ prepared
        eigvals = torch.linalg.eigvalsh(gram / (len(prepared) - 1)).flip(0)
    elapsed = time.perf_counter() - t0
    peak = _status_mb("VmHWM")
    print(json.dumps({"time_s": elapsed, "peak_extra_mb": peak - base, "eigvals": eigvals.double().tolist()}))


def _mem_available_mb() -> float:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("inf")


def _run(method: str, dtype: str, n: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, __file__, "--worker", method, "--dtype", dtype, "--n", str(n)],
                         capture_output=True, text=True, env=env)
    if out.returncode != 0:
        return {"skipped": f"failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}"}
    return json.loads(out.stdout.strip().splitlines()[-1])


PLAN = [("streaming", "float64"), ("materialised", "float64"), ("matmul", "float64"),
        ("streaming", "float32"), ("materialised", "float32"), ("matmul", "float32"), ("sklearn", "float32")]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[2500, 10_000, 40_000])
    ap.add_argument("--out", default="results/benchmarks/patch_pca.json")
    ap.add_argument("--worker", choices=["streaming", "materialised", "sklearn", "matmul"])
    ap.add_argument("--dtype", choices=list(DTYPES), default="float64")
    ap.add_argument("--n", type=int)
    args = ap.parse_args()
    if args.worker:
        _worker(args.worker, args.dtype, args.n)
        return
    d = 3 * KERNEL * KERNEL
    load_start = os.getloadavg()
    rows = []
    for n in args.sizes:
        patches = n * (32 - KERNEL + 1) ** 2
        flops = 2 * patches * d * d
        results, row_of = {}, {}
        for method, dtype in PLAN:
            # a materialised method holds the patch matrix plus about two copies (unfold, centring)
            need_mb = 3 * patches * d * DTYPES[dtype].itemsize / 2**20
            if method != "streaming" and need_mb > 0.6 * _mem_available_mb():
                res = {"skipped": f"needs ~{need_mb:,.0f} MiB, {_mem_available_mb():,.0f} MiB available"}
            else:
                res = _run(method, dtype, n)
            results[(method, dtype)] = res
            row = {"n_images": n, "n_patches": patches, "method": method, "dtype": dtype, **res}
            if "time_s" in res:
                row["gflops"] = flops / res["time_s"] / 1e9
            rows.append(row)
            row_of[(method, dtype)] = row
        print(f"\n{n:,} images, {patches:,} patches of {d} dims ({flops / 1e9:.1f} GFLOP for the Gram matrix)")
        for (method, dtype), res in results.items():
            if "time_s" not in res:
                print(f"  {method:12s} {dtype:7s} skipped: {res['skipped']}")
                continue
            print(f"  {method:12s} {dtype:7s} {res['time_s']:8.2f} s  peak +{res['peak_extra_mb']:8.1f} MiB  "
                  f"{flops / res['time_s'] / 1e9:6.2f} GFLOP/s")
        for dtype in DTYPES:
            s, m, mm = (results[(k, dtype)] for k in ("streaming", "materialised", "matmul"))
            if "time_s" in m:
                print(f"  {dtype}: streaming is {m['time_s'] / s['time_s']:.2f}x the speed of materialised "
                      f"torch.cov+eigh, with {m['peak_extra_mb'] / max(s['peak_extra_mb'], 1e-3):.1f}x less memory")
            if "time_s" in mm:
                print(f"  {dtype}: streaming reaches {mm['time_s'] / s['time_s']:.0%} of the same-run GEMM roofline "
                      f"({flops / mm['time_s'] / 1e9:.2f} GFLOP/s)")
            ref = results[("materialised", "float64")]
            if "eigvals" in ref:
                a, b = (torch.tensor(v["eigvals"], dtype=torch.float64) for v in (s, ref))
                diff = ((a - b).abs() / b.abs()).max().item()
                row_of[("streaming", dtype)]["eig_rel_diff_vs_f64"] = diff
                print(f"  {dtype}: streaming eigenvalues vs float64 materialised: max relative difference {diff:.1e}")
        sk = results[("sklearn", "float32")]
        if "time_s" in sk:
            print(f"  float32: streaming is {sk['time_s'] / results[('streaming', 'float32')]['time_s']:.2f}x the "
                  f"speed of sklearn PCA()")
    growth = []  # streaming peak memory from each size to the next (flat: about 1x)
    for dtype in DTYPES:
        peaks = {r["n_images"]: r["peak_extra_mb"] for r in rows if r["method"] == "streaming" and r["dtype"] == dtype}
        sizes = sorted(peaks)
        for a, b in zip(sizes, sizes[1:]):
            growth.append({"dtype": dtype, "from": a, "to": b, "ratio": peaks[b] / max(peaks[a], 1e-3)})
            print(f"streaming {dtype} peak memory: {peaks[a]:.0f} -> {peaks[b]:.0f} MiB from {a:,} to {b:,} images "
                  f"({growth[-1]['ratio']:.2f}x for {b / a:.0f}x the images)")
    load_end = os.getloadavg()
    print(f"load average {load_start[0]:.1f} at the start, {load_end[0]:.1f} at the end "
          f"({os.cpu_count()} CPUs; a load above that means the machine was shared)")
    for r in rows:
        r.pop("eigvals", None)
    report = {"benchmark": "patch_pca", "kernel_size": KERNEL, "image_size": 32, "threads": 1,
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__,
                          "loadavg_start": load_start[0], "loadavg_end": load_end[0]},
              "memory_growth_streaming": growth,
              "rows": rows}
    from bench.atomic import atomic_write_json

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out, report)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
