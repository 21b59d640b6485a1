"""How far a shift moves the latent distribution from its family's base, reported per intensity.

- ``latent_kl_gauss``: the KL between the *moment-matched Gaussians* of the shifted and base
  latents (closed form). Exact for truncation; for extend and overlap it is only the Gaussian
  approximation, and it can be far from the true KL: extend moves latents *outside the support*
  of its base (the true KL is then infinite), and overlap's latents are not exactly Gaussian.
- ``latent_kl_gauss_mc``: a Monte-Carlo check of that closed form over real shifted latents; it
  scores them under the two Gaussian densities, so it checks the formula and the first two
  moments only, never the true KL.
- ``latent_mmd2``: the unbiased squared MMD between samples of the shifted and base latents (RBF
  kernel, bandwidth the median pairwise distance of the base sample — one draw for the whole
  sweep, so the kernel is fixed along it): a sample-based divergence valid for every family.
- ``latent_support_out``: the share of shifted latents outside the base family's support (exact,
  derived; always 0 for truncation and overlap, whose bases cover every point they reach).
- ``latent_support_out_knn``: the share of shifted latents outside the base's *effective* support,
  estimated from samples: the union of balls around base latents, each reaching its k-th nearest
  base neighbour (the support estimate of Kynkäänniemi et al. 2019's improved precision; this is
  1 − precision). It moves for every family (mass leaving the region the base sample fills); at the
  base value it is the estimator's own miss rate, not 0.
"""
from __future__ import annotations

import math

import torch

from bench.errors import ConfigError
from bench.shift.families import TRAIN_VALUES, Shift


def gaussian_kl(mean_p: torch.Tensor, var_p: float, mean_q: torch.Tensor, var_q: float) -> float:
    """KL(N(mean_p, var_p I) || N(mean_q, var_q I)) in nats."""
    d = mean_p.numel()
    if var_p <= 0 or var_q <= 0:
        raise ConfigError("a latent shift with zero variance has no KL divergence (check R > 0, t > 0)")
    ratio = var_p / var_q
    sq = float(((mean_p - mean_q) ** 2).sum())
    return 0.5 * (d * (ratio - 1.0 - math.log(ratio)) + sq / var_q)


def latent_kl_gauss(shift: Shift, base: Shift, anchors: torch.Tensor) -> float:
    """KL between the moment-matched Gaussians of the shifted and base latents (closed form).

    Truncation: exact, the paper's ``(d/2)(r - 1 - ln r)``, ``r = R^2 / R_0^2``. Extend: a mean and
    scale change; overlap: a pure mean shift with covariance I/2 — the Gaussian approximation only.
    """
    return gaussian_kl(*shift.gaussian(anchors), *base.gaussian(anchors))


def latent_kl_gauss_mc(shift: Shift, base: Shift, anchors: torch.Tensor, n: int = 4096,
                       seed: int = 0) -> tuple[float, float]:
    """Monte-Carlo check of :func:`latent_kl_gauss`: the mean over real shifted latents (made by
    :meth:`Shift.latents`) of ``log N_shift(z) - log N_base(z)`` under the two *Gaussian* densities,
    with its standard error. Agreement confirms the closed form and that the real latents have the
    Gaussians' mean and variance; it says nothing about the true KL (support, higher moments)."""
    d = anchors.shape[1]
    eps = torch.randn(n, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    z = shift.latents(eps, anchors)

    def log_density(mean: torch.Tensor, var: float) -> torch.Tensor:
        return -0.5 * (((z - mean) ** 2).sum(1) / var + d * math.log(2 * math.pi * var))

    diff = log_density(*shift.gaussian(anchors)) - log_density(*base.gaussian(anchors))
    return float(diff.mean()), float(diff.std() / math.sqrt(n))


def median_bandwidth(x: torch.Tensor) -> float:
    """The median heuristic: the median pairwise Euclidean distance within ``x``."""
    dist = torch.cdist(x, x)
    return float(dist[torch.triu_indices(len(x), len(x), 1).unbind()].median())


def mmd2_unbiased(x: torch.Tensor, y: torch.Tensor, bandwidth: float) -> float:
    """Unbiased MMD^2 between samples ``x`` (m, d) and ``y`` (n, d) with the RBF kernel
    ``exp(-|a - b|^2 / (2 bandwidth^2))``; zero in expectation when both come from one distribution."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ConfigError("the MMD needs at least 2 samples per side (raise task.mmd_samples)")
    gamma = 1.0 / (2.0 * bandwidth ** 2)

    def k(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.exp(-gamma * torch.cdist(a, b).pow(2))

    kxx, kyy = k(x, x), k(y, y)
    within_x = (kxx.sum() - kxx.diagonal().sum()) / (m * (m - 1))
    within_y = (kyy.sum() - kyy.diagonal().sum()) / (n * (n - 1))
    return float(within_x + within_y - 2 * k(x, y).mean())


def outside_base_support(z: torch.Tensor, base: Shift, anchors: torch.Tensor) -> torch.Tensor:
    """Which latents ``z`` (N, d) no latent of ``base`` (a family's training distribution) can equal.

    Truncation's base ``R_0 eps`` covers all of R^d. The slerp families' base is ``slerp(c, eps; 1/2)
    = (c + eps) / (2 cos(w/2))`` with ``w = angle(c, eps)``: in the plane of ``c`` and ``z``, with
    ``p`` the component of ``z`` along ``c``, ``q`` the rest and ``A = |c|``, solving for ``eps``
    gives ``p = A / (2 cos f) + q cot(2f)`` over ``f = w/2`` in (0, pi/2). For ``q >= A`` that spans
    every ``p``; for ``q < A`` its minimum, at ``sin^3 f = q / A``, bounds the support from below.
    """
    if base.value != TRAIN_VALUES[base.family]:
        raise ValueError(f"the support is derived for the training distributions only, not {base}")
    if base.family == "truncation":
        return torch.zeros(len(z), dtype=torch.bool)
    c = base.center(anchors).double()
    a = c.norm()
    u = c / a
    z = z.double()
    p = z @ u
    q = (z - p[:, None] * u).norm(dim=1)
    f = torch.asin((q / a).clamp(1e-12, 1.0) ** (1 / 3))
    p_min = a / (2 * torch.cos(f)) + q / torch.tan(2 * f)
    return (q < a) & (p < p_min)


def outside_knn_support(y: torch.Tensor, x: torch.Tensor, k: int) -> torch.Tensor:
    """Which of ``y`` (m, d) lie outside every ball ``B(x_i, r_k(x_i))`` of the base sample ``x`` (n, d),
    ``r_k(x_i)`` the distance from ``x_i`` to its k-th nearest other base latent."""
    if not 0 < k < len(x):
        raise ConfigError(f"task.knn_k must lie in [1, task.mmd_samples), not {k}")
    radii = torch.cdist(x, x).kthvalue(k + 1, dim=1).values  # the +1 skips x_i itself (distance 0)
    return ~(torch.cdist(y, x) <= radii[None]).any(1)


def sample_divergences(shift: Shift, base: Shift, anchors: torch.Tensor, n: int, seed: int,
                       k: int = 5) -> dict[str, float]:
    """``latent_mmd2``, ``latent_support_out`` and ``latent_support_out_knn`` of ``shift`` against
    ``base`` from ``n`` latents of each (independent draws from ``seed``: the same base sample, hence
    bandwidth and balls, at every intensity)."""
    g = torch.Generator().manual_seed(seed)
    d = anchors.shape[1]
    x = base.latents(torch.randn(n, d, generator=g, dtype=torch.float64), anchors)
    y = shift.latents(torch.randn(n, d, generator=g, dtype=torch.float64), anchors)
    return {"latent_mmd2": mmd2_unbiased(x, y, median_bandwidth(x)),
            "latent_support_out": float(outside_base_support(y, base, anchors).double().mean()),
            "latent_support_out_knn": float(outside_knn_support(y, x, k).double().mean())}
