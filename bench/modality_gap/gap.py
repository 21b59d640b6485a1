"""The gap vector and its post-processing (paper eq. 11, and Liang et al.'s symmetric shift).

Conventions: ``Y`` (N x d) is the query modality (images), ``X`` (M x d) the retrieval modality
(class prototypes or a caption gallery), or (N x C x d) when every query has its own C candidates
(multiple choice): X is then all candidates pooled. Predictions are Euclidean nearest neighbours in X.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from bench.modality_gap.config import GapMode

MODES = tuple(GapMode)


def gap_vector(query: torch.Tensor, retrieval: torch.Tensor) -> torch.Tensor:
    """g = mean(query) - mean(retrieval) (every row of either, whatever its leading shape)."""
    return _rows(query).mean(0) - _rows(retrieval).mean(0)


def _rows(points: torch.Tensor) -> torch.Tensor:
    """The points as one (n x d) matrix (per-query candidate sets N x C x d are pooled)."""
    return points.reshape(-1, points.shape[-1])


def _centred_svd(points: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Singular values and right singular vectors of the centred points, cast to float64 *before*
    centring: centring float32 data in float32 leaves ~1e-8 residue that float64 reads as rank."""
    x = _rows(points).double()
    _, s, vh = torch.linalg.svd(x - x.mean(0), full_matrices=False)
    return s, vh


def numerical_rank(singular_values: torch.Tensor, shape: tuple[int, ...]) -> int:
    """Count of singular values above ``max(shape) * eps64 * s_max`` (numpy's matrix_rank rule)."""
    if not len(singular_values):
        return 0
    tol = singular_values.max() * max(shape) * torch.finfo(torch.float64).eps
    return int((singular_values > tol).sum())


def parse_subspace(spec: str | int | None) -> tuple[str, float]:
    """``rank`` | ``k=<int>`` | ``var=<fraction>`` -> (kind, value); a ValueError names the forms."""
    text = "rank" if spec is None else str(spec).strip()
    if text == "rank":
        return "rank", 0
    kind, _, value = text.partition("=")
    try:
        if kind == "k" and int(value) >= 0:
            return "k", int(value)
        if kind == "var" and 0 < float(value) <= 1:
            return "var", float(value)
    except ValueError:
        pass
    raise ValueError(f"subspace must be 'rank', 'k=<int >= 0>' or 'var=<fraction in (0, 1]>', not {spec!r}")


def pca_basis(points: torch.Tensor, k: int | None = None, subspace: str | None = None) -> torch.Tensor:
    """Orthonormal principal directions (d x k, float64) of ``points``.

    Either ``k`` components, or ``subspace``: ``rank`` (the numerical rank of the centred points,
    so the basis spans their affine span's directions: what the exact invariant needs), ``k=<int>``,
    or ``var=<fraction>`` (the fewest components holding that fraction of the variance).
    """
    s, vh = _centred_svd(points)
    if k is None:
        kind, value = parse_subspace(subspace)
        if kind == "rank":
            k = numerical_rank(s, tuple(_rows(points).shape))
        elif kind == "k":
            k = int(value)
        else:
            share = (s.square().cumsum(0) / s.square().sum()).tolist()
            k = next((i + 1 for i, c in enumerate(share) if c >= value - 1e-12), len(share))
    if not 0 <= k <= vh.shape[0]:
        raise ValueError(f"k={k} principal components requested, but only {vh.shape[0]} exist")
    return vh[:k].T


def remove_subspace(vector: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    """``vector - V V^T vector``: the part of ``vector`` orthogonal to span(basis)."""
    return vector - basis @ (basis.T @ vector)


def gap_orthogonality(gap: torch.Tensor, points: torch.Tensor, k: int) -> float:
    """Fraction of ||g||^2 outside the top-``k`` principal subspace of ``points`` (1 = orthogonal)."""
    outside = remove_subspace(gap.double(), pca_basis(points, k))
    return float(outside.square().sum() / gap.double().square().sum())


@dataclass(frozen=True)
class GapShift:
    """How to close the gap.

    - ``paper`` (eq. 11): Y <- Y - alpha g', g' = g minus its part in the ``subspace`` PCs of X
      (X untouched, no renormalisation unless ``renormalize``).
    - ``symmetric`` (Liang et al., "Mind the Gap"): Y <- unit(Y - alpha g/2), X <- unit(X + alpha g/2);
      their shift delta along g/||g|| is delta = alpha ||g||.
    - ``image_only`` (their one-sided variant): Y <- unit(Y - alpha g), X untouched.
    """
    mode: str = "paper"
    subspace: str = "rank"  # PCs of X removed from g (paper mode): rank | k=<int> | var=<fraction>
    renormalize: bool = False  # re-project shifted queries onto the sphere (paper mode)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"gap shift mode must be one of {MODES}, not {self.mode!r}")
        parse_subspace(self.subspace)

    def direction(self, query: torch.Tensor, retrieval: torch.Tensor) -> torch.Tensor:
        """The vector the queries move along (g' for paper mode, g otherwise), in float64 from
        float64 data: compute it once and pass it to every :meth:`apply`."""
        g = gap_vector(query.double(), retrieval.double())
        if self.mode == "paper":
            return remove_subspace(g, pca_basis(retrieval, subspace=self.subspace))
        return g

    def apply(self, query: torch.Tensor, retrieval: torch.Tensor, alpha: float,
              direction: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """(shifted query, shifted retrieval) for one ``alpha``, in the inputs' dtype."""
        v = (self.direction(query, retrieval) if direction is None else direction).to(query)
        step, unit = self.query_step(alpha)
        moved = query - step * v
        return (_unit(moved) if unit else moved), self.shift_retrieval_like(retrieval, alpha, v)

    def query_step(self, alpha: float) -> tuple[float, bool]:
        """(step, unit): the shifted query is ``y - step * direction``, re-projected onto the unit
        sphere when ``unit``. Affine in the step, which is what lets the robustness sweep share one
        query-noise product between every alpha."""
        if self.mode == "symmetric":
            return alpha / 2, True
        return alpha, self.mode == "image_only" or self.renormalize

    @property
    def moves_retrieval(self) -> bool:
        """Whether ``apply`` moves the retrieval set too (only the symmetric shift does)."""
        return self.mode == "symmetric"

    def shift_retrieval_like(self, items: torch.Tensor, alpha: float, direction: torch.Tensor) -> torch.Tensor:
        """Move retrieval-modality embeddings (the retrieval set, or e.g. paraphrased prototypes) as
        ``apply`` moves the retrieval set; returns ``items`` itself when the retrieval set stays."""
        return _unit(items + alpha * direction.to(items) / 2) if self.moves_retrieval else items


def _unit(x: torch.Tensor) -> torch.Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def permutation_null_gap(query: torch.Tensor, retrieval: torch.Tensor, n_perm: int = 20,
                         seed: int = 0) -> tuple[float, float]:
    """||g|| between two random halves of the pooled clouds (same sizes and spread, no modality):
    what ||g|| would be if the modalities were one distribution. Returns (mean, max) over ``n_perm``."""
    query, retrieval = _rows(query), _rows(retrieval)
    pooled = torch.cat([query, retrieval]).double()
    gen = torch.Generator().manual_seed(seed)
    norms = []
    for _ in range(n_perm):
        perm = torch.randperm(len(pooled), generator=gen)
        a, b = pooled[perm[:len(query)]], pooled[perm[len(query):]]
        norms.append(float(gap_vector(a, b).norm()))
    return sum(norms) / len(norms), max(norms)


def gap_geometry(query: torch.Tensor, retrieval: torch.Tensor, direction: torch.Tensor) -> float:
    """kappa = ||g'||^2 over the mean squared distance from a query to its two nearest retrieval items:
    the share of the distances that shape a flip which the gap direction ``g'`` carries (float64)."""
    q, r = _rows(query).double(), _rows(retrieval).double()
    chunk = max(1, (1 << 24) // len(r))  # a caption gallery (COCO: 25k) would not fit one distance matrix
    two = torch.cat([torch.cdist(q[i:i + chunk], r).topk(2, dim=1, largest=False).values
                     for i in range(0, len(q), chunk)])
    return float(direction.double().square().sum() / two.square().mean())


def predicted_flip_reduction(kappa: float) -> float:
    """F predicted from kappa, F = 1 - sqrt(1 - kappa), for small noise on the retrieval set: a prediction
    flips when the noise along the normal of its two nearest items' boundary beats its margin; that noise's
    scale is ~ sqrt(D1 + D2) (the squared distances to them), and the margin is unchanged by the paper's
    shift, so near the boundary the flip rate scales with sqrt(D1 + D2). Closing the gap (alpha = 1) takes
    ||g'||^2 off each distance on average, i.e. a share kappa of their mean."""
    return 1.0 - math.sqrt(max(0.0, 1.0 - kappa))


def random_orthogonality(points: torch.Tensor, k: int, n_dirs: int = 2000, seed: int = 0) -> float:
    """The null of :func:`gap_orthogonality`: the mean share of a random direction's squared norm outside
    the top-``k`` PCs of ``points`` (isotropic Gaussian directions in the same dimension: 1 - k/d on average)."""
    basis = pca_basis(points, k)
    dirs = torch.randn(n_dirs, basis.shape[0], generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    inside = (dirs @ basis).square().sum(1) / dirs.square().sum(1)
    return float(1 - inside.mean())
