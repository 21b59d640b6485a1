"""PCA of every stride-1 k x k image patch, computed by streaming.

Patches are flattened in (C, kh, kw) order — the order of ``conv.weight.flatten(1)`` — so an
eigenvector is directly comparable with a filter. Only the running sum and the D x D sum of
outer products (float64) are kept, so memory does not grow with the number of patches
(benchmarks/patch_pca.py measures it against materialising every patch).
Results are cached (:mod:`bench.cache`, sha256-checked) keyed by the dataset's pixels +
normalisation and the kernel size, so every model compared on a dataset uses the same basis (the
paper's pitfall: near-degenerate eigenvalues make a per-model PCA unstable).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.nn import functional as F
from tqdm.auto import tqdm

from bench.cache import Cache, as_cache


@dataclass
class PatchPCA:
    """Eigen-decomposition of the patch covariance; ``eigvals[i]`` is lambda_i^2 (descending)."""
    eigvals: torch.Tensor  # (D,) covariance eigenvalues, descending
    eigvecs: torch.Tensor  # (D, D) columns u_i, matching eigvals
    mean: torch.Tensor  # (D,) mean patch
    n_patches: int
    kernel_size: int
    n_images: int  # the paper's lambda convention divides S^2 by 2 n_images (profile.paper_lambda2)


class PatchMoments:
    """Running first and second moments of patches, fed batch by batch.

    Each batch's Gram matrix is one batched GEMM straight over the unfolded (N, D, L) columns (no
    transposed copy of the patch matrix) in ``dtype``, and is reduced into float64 running sums, so
    memory stays flat in the number of images. Patches are shifted by the first batch's channel
    means before the products, which keeps the uncentred sums well conditioned (float32 included)."""

    def __init__(self, kernel_size: int, dtype: torch.dtype = torch.float64) -> None:
        self.k, self.dtype = kernel_size, dtype
        self.n = 0
        self.n_images = 0
        self.shift: torch.Tensor | None = None  # (C,) channel means of the first batch
        self.sum: torch.Tensor | None = None
        self.outer: torch.Tensor | None = None

    def update(self, images: torch.Tensor) -> None:
        """Add every stride-1 patch of a (N, C, H, W) batch."""
        x = images.to(self.dtype)
        if self.shift is None:
            self.shift = x.mean(dim=(0, 2, 3))
        cols = F.unfold(x - self.shift.view(1, -1, 1, 1), self.k)  # (N, D, L), shifted patches
        if self.sum is None:
            d = cols.shape[1]
            # on the batches' device (a GPU when the caller feeds GPU tensors); finalize returns CPU tensors
            self.sum = torch.zeros(d, dtype=torch.float64, device=cols.device)
            self.outer = torch.zeros(d, d, dtype=torch.float64, device=cols.device)
        self.sum += cols.sum(dim=(0, 2)).double()
        self.outer += torch.bmm(cols, cols.transpose(1, 2)).sum(0).double()
        self.n += cols.shape[0] * cols.shape[2]
        self.n_images += images.shape[0]

    def finalize(self) -> PatchPCA:
        """Centre, eigendecompose, sort descending."""
        if self.n < 2:
            raise ValueError("patch PCA needs at least two patches")
        shifted_mean = self.sum / self.n
        cov = (self.outer - self.n * torch.outer(shifted_mean, shifted_mean)) / (self.n - 1)
        vals, vecs = torch.linalg.eigh(cov.cpu())
        order = torch.argsort(vals, descending=True)
        mean = (shifted_mean + self.shift.double().repeat_interleave(self.k * self.k)).cpu()
        return PatchPCA(vals[order], vecs[:, order], mean, self.n, self.k, self.n_images)


def patch_pca(batches: Iterable[torch.Tensor], kernel_size: int, progress: bool = True,
              dtype: torch.dtype = torch.float64) -> PatchPCA:
    """Streaming PCA over every patch of every image in ``batches`` (each (N, C, H, W)); ``dtype`` is
    the per-batch GEMM's (the running sums are float64 either way)."""
    moments = PatchMoments(kernel_size, dtype)
    for images in tqdm(batches, desc=f"patch PCA ({kernel_size}x{kernel_size})", disable=not progress,
                       leave=False):
        moments.update(images)
    return moments.finalize()


def leave_one_out(images: torch.Tensor, kernel_size: int) -> list[PatchPCA]:
    """The patch PCA of ``images`` without image i, for each i (a jackknife over the images: the units a
    PCA of a few images samples). Each image's moments are taken once, about one shift, and the others'
    are summed for each i (n passes over the pixels, not n^2; sums, not a subtraction from the total,
    which would cancel)."""
    shift = images.double().mean(dim=(0, 2, 3))
    per_image = []
    for x in images:
        m = PatchMoments(kernel_size)
        m.shift = shift
        m.update(x[None])
        per_image.append(m)
    out = []
    for i in range(len(per_image)):
        rest = PatchMoments(kernel_size)
        rest.shift = shift
        others = [m for j, m in enumerate(per_image) if j != i]
        rest.sum, rest.outer = sum(m.sum for m in others), sum(m.outer for m in others)
        rest.n, rest.n_images = sum(m.n for m in others), len(others)
        out.append(rest.finalize())
    return out


def _key(data_key: str, kernel_size: int) -> dict:
    # the code's version is the task's (its card's), part of every cache key (bench.cache)
    return {"data": data_key, "kernel_size": kernel_size}


def cache_path(cache: Cache | str | Path, data_key: str, kernel_size: int) -> Path:
    """Where the PCA of this dataset and kernel size is cached."""
    return as_cache(cache).path("patch_pca", _key(data_key, kernel_size))


def load_or_compute(cache: Cache | str | Path, data_key: str, kernel_size: int,
                    batches: Iterable[torch.Tensor], write: bool = True) -> PatchPCA:
    """The cached PCA for this dataset and kernel size, recomputed if missing or corrupt (sha256-checked).

    ``write=False`` (DDP ranks > 0) computes without touching the cache."""
    def build() -> dict[str, torch.Tensor]:
        pca = patch_pca(batches, kernel_size)
        return {"eigvals": pca.eigvals, "eigvecs": pca.eigvecs, "mean": pca.mean,
                "n_patches": torch.tensor(pca.n_patches), "n_images": torch.tensor(pca.n_images)}

    t = as_cache(cache).tensors("patch_pca", _key(data_key, kernel_size), build,
                                metadata={"data_key": data_key}, write=write)
    return PatchPCA(t["eigvals"], t["eigvecs"], t["mean"], int(t["n_patches"]), kernel_size, int(t["n_images"]))
