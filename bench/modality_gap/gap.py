"""The gap vector and its post-processing (paper eq. 11, and Liang et al.'s symmetric shift).

Conventions: ``Y`` (N x d) is the query modality (images), ``X`` (M x d) the retrieval modality
(class prototypes or a caption gallery). Predictions are Euclidean nearest neighbours in X.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

MODES = ("paper", "symmetric")


def gap_vector(query: torch.Tensor, retrieval: torch.Tensor) -> torch.Tensor:
    """g = mean(query) - mean(retrieval)."""
    return query.mean(0) - retrieval.mean(0)


def pca_basis(points: torch.Tensor, k: int | None = None) -> torch.Tensor:
    """Orthonormal top-``k`` principal directions (d x k) of ``points``.

    ``k=None`` takes the numerical rank of the centred points, so the basis spans their whole
    affine span's direction space (what the exact invariant needs).
    """
    centred = (points - points.mean(0)).double()
    _, s, vh = torch.linalg.svd(centred, full_matrices=False)
    rank = int((s > s.max() * max(centred.shape) * torch.finfo(torch.float64).eps).sum()) if len(s) else 0
    if k is None:
        k = rank
    if not 0 <= k <= vh.shape[0]:
        raise ValueError(f"k={k} principal components requested, but only {vh.shape[0]} exist")
    return vh[:k].T.to(points.dtype)


def remove_subspace(vector: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``vector - V V^T vector``: the part of ``vector`` orthogonal to span(basis)."""
    return vector - basis @ (basis.T @ vector)


def gap_orthogonality(gap: torch.Tensor, points: torch.Tensor, k: int) -> float:
    """Fraction of ||g||^2 outside the top-``k`` principal subspace of ``points`` (1 = orthogonal)."""
    outside = remove_subspace(gap.double(), pca_basis(points.double(), k))
    return float(outside.square().sum() / gap.double().square().sum())


@dataclass(frozen=True)
class GapShift:
    """How to close the gap. ``paper``: Y <- Y - alpha g' with g' = g minus its part in the top-``k``
    PCs of X (X untouched). ``symmetric``: Y <- Y - alpha g/2, X <- X + alpha g/2, both renormalised."""
    mode: str = "paper"
    k: int | None = None  # PCs of X removed from g (paper mode); None = rank of centred X
    renormalize: bool = False  # re-project shifted queries onto the sphere (paper mode)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"gap shift mode must be one of {MODES}, not {self.mode!r}")

    def direction(self, query: torch.Tensor, retrieval: torch.Tensor) -> torch.Tensor:
        """The vector the queries move along (g' for paper mode, g for symmetric)."""
        g = gap_vector(query, retrieval)
        if self.mode == "paper":
            return remove_subspace(g, pca_basis(retrieval, self.k))
        return g

    def apply(self, query: torch.Tensor, retrieval: torch.Tensor, alpha: float,
              direction: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(shifted query, shifted retrieval) for one ``alpha``; pass ``direction`` to reuse it."""
        v = self.direction(query, retrieval) if direction is None else direction
        if self.mode == "paper":
            moved = query - alpha * v
            return (_unit(moved) if self.renormalize else moved), retrieval
        return _unit(query - alpha * v / 2), _unit(retrieval + alpha * v / 2)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def permutation_null_gap(query: torch.Tensor, retrieval: torch.Tensor, n_perm: int = 20,
                         seed: int = 0) -> tuple[float, float]:
    """||g|| between two random halves of the pooled clouds (same sizes and spread, no modality):
    what ||g|| would be if the modalities were one distribution. Returns (mean, max) over ``n_perm``."""
    pooled = torch.cat([query, retrieval]).double()
    gen = torch.Generator().manual_seed(seed)
    norms = []
    for _ in range(n_perm):
        perm = torch.randperm(len(pooled), generator=gen)
        a, b = pooled[perm[:len(query)]], pooled[perm[len(query):]]
        norms.append(float(gap_vector(a, b).norm()))
    return sum(norms) / len(norms), max(norms)
