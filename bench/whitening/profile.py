"""Energy profiles of a filter bank over the patch PCA basis, the linear-CNN formula, and its fit.

e_i = sqrt( (1/K) sum_k (w_k . u_i)^2 ), w = W_trained - W_init by default.
Formula (conv -> global average pool -> sum, MSE, full-batch GD with step eta, small init):
    e_i(t) ∝ lambda_i |1 - (1 - eta lambda_i^2)^t| / (eta lambda_i^2)

Two fit grids:
- ``paper`` (the headline): the paper's own search, eta = 1e-7 and t = 10,000 ... 4,999,750 in
  steps of 250, the exact formula, and lambda in the paper's convention, lambda^2 = S^2 / (2 n_images)
  with S the singular values of the centred patch matrix. :func:`paper_lambda2` is the one place
  that converts bench's covariance eigenvalues (or singular values) into that convention.
- ``wide`` (a diagnostic): the eta -> 0 limit e_i ∝ (1 - exp(-tau lambda_i^2)) / lambda_i on a
  log-spaced tau grid spanning every regime, lambda^2 = covariance eigenvalues. A wider grid can
  only fit better, so its r is optimistic and not comparable with the paper's.
The task runs both on the paper's lambda, so both report tau = eta * t in the paper's units (on 32x32
images with 3x3 kernels tau * lambda_paper^2 = 450 tau * eigval, i.e. the paper's grid is tau in
[1e-3, 0.5], or [0.45, 225] in covariance units).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

PAPER_ETA = 1e-7
PAPER_T = (10_000, 4_999_750, 250)  # first t, last t, step (the authors' reference grid)
GRIDS = ("paper", "wide")


def energy_profile(weight: torch.Tensor, eigvecs: torch.Tensor) -> torch.Tensor:
    """Profile of a filter bank ``weight`` (K, C, k, k) or (K, D) over the columns of ``eigvecs``."""
    w = weight.detach().reshape(weight.shape[0], -1).double()
    if w.shape[1] != eigvecs.shape[0]:
        raise ValueError(f"filters have {w.shape[1]} inputs but the PCA basis is {eigvecs.shape[0]}-dimensional "
                         f"(kernel size or channel count differs from the PCA)")
    return (w @ eigvecs.double()).pow(2).mean(0).sqrt()


def paper_lambda2(n_images: int, *, cov_eigvals: torch.Tensor | None = None, n_patches: int | None = None,
                  singular_values: torch.Tensor | None = None) -> torch.Tensor:
    """lambda^2 in the paper's convention, S^2 / (2 n_images), from either source.

    ``singular_values``: S of the centred (n_patches, D) patch matrix. ``cov_eigvals``: eigenvalues
    of the patch covariance (bench's PCA), which are S^2 / (n_patches - 1)."""
    if (cov_eigvals is None) == (singular_values is None):
        raise ValueError("pass exactly one of cov_eigvals (with n_patches) or singular_values")
    if singular_values is not None:
        s2 = singular_values.double().pow(2)
    else:
        if n_patches is None:
            raise ValueError("cov_eigvals needs n_patches (the covariance divides S^2 by n_patches - 1)")
        s2 = cov_eigvals.double() * (n_patches - 1)
    return s2 / (2 * n_images)


def formula_profile(eigvals: torch.Tensor, eta: float, t: float | torch.Tensor) -> torch.Tensor:
    """The exact closed form for GD step ``eta`` after ``t`` steps: (D,) for a scalar t, (T, D) for T values."""
    lam2 = eigvals.double().clamp_min(1e-300)
    x = eta * lam2
    ts = torch.as_tensor(t, dtype=torch.float64)
    tcol = ts.reshape(-1, 1)
    # (1 - x)^t as exp(t log1p(-x)) where 1 - x > 0: exact to rounding even for x ~ 1e-10, where
    # forming 1 - x first would lose most of x's digits.
    decay = torch.where(x < 1, torch.exp(tcol * torch.log1p(-x.clamp_max(1 - 1e-16))), (1 - x).pow(tcol))
    out = lam2.sqrt() * (1 - decay).abs() / x
    return out[0] if ts.dim() == 0 else out


def formula_profile_tau(eigvals: torch.Tensor, tau: float) -> torch.Tensor:
    """The formula in the eta -> 0 limit, as a function of tau = eta * t only."""
    lam2 = eigvals.double().clamp_min(1e-300)
    return -torch.expm1(-tau * lam2) / lam2.sqrt()


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    """Pearson correlation of two profiles (NaN if either is constant)."""
    a, b = a.double().flatten(), b.double().flatten()
    a, b = a - a.mean(), b - b.mean()
    denom = a.norm() * b.norm()
    return float((a @ b) / denom) if denom > 0 else math.nan


def pearson_rows(profile: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
    """Pearson r of ``profile`` (D,) with every row of ``candidates`` (T, D); NaN for constant rows."""
    p = profile.double() - profile.double().mean()
    c = candidates - candidates.mean(1, keepdim=True)
    denom = c.norm(dim=1) * p.norm()
    return torch.where(denom > 0, (c @ p) / denom, torch.full_like(denom, math.nan))


def tau_grid(eigvals: torch.Tensor, n: int = 200) -> torch.Tensor:
    """Log-spaced tau from well before the largest eigenvalue's peak to well past the smallest's.

    The formula's peak sits at lambda^2 ~ 1/tau, so this spans every regime from e ∝ lambda
    (tau small) to whitening e ∝ 1/lambda (tau large)."""
    lam2 = eigvals.double().clamp_min(eigvals.max().item() * 1e-12)
    lo, hi = math.log10(0.01 / lam2.max().item()), math.log10(100.0 / lam2.min().item())
    return torch.logspace(lo, hi, n, dtype=torch.float64)


def paper_t_grid() -> torch.Tensor:
    """t = 10,000 ... 4,999,750 in steps of 250 (19,960 values)."""
    first, last, step = PAPER_T
    return torch.arange(first, last + 1, step, dtype=torch.float64)


@dataclass(frozen=True)
class Fit:
    """The best grid point: Pearson ``r``, its ``t`` (paper grid; None on the wide grid), ``tau`` =
    eta * t in the units of the lambda fitted, whether it sits on the grid's ``edge``, the
    ``whitened_share`` of the fitted formula's energy (sum of e_i^2) in components past the peak
    (tau * lambda_i^2 >= 1), and the fitted ``formula`` profile itself."""
    grid: str
    r: float
    tau: float
    t: float | None
    edge: bool
    whitened_share: float
    formula: torch.Tensor


def _whitened_share(formula: torch.Tensor, tau: float, lam2: torch.Tensor) -> float:
    energy = formula.pow(2)
    return float(energy[tau * lam2.double() >= 1].sum() / energy.sum())


def _best(rs: torch.Tensor) -> int:
    return int(torch.nan_to_num(rs, nan=-math.inf).argmax())


def fit_paper(profile: torch.Tensor, lam2: torch.Tensor) -> Fit:
    """The paper's fit: exact formula, eta = 1e-7, t on the paper's grid; ``lam2`` from :func:`paper_lambda2`."""
    ts = paper_t_grid()
    i = _best(pearson_rows(profile, formula_profile(lam2, PAPER_ETA, ts)))
    t = float(ts[i])
    formula = formula_profile(lam2, PAPER_ETA, t)
    return Fit("paper", pearson(profile, formula), PAPER_ETA * t, t, i in (0, len(ts) - 1),
               _whitened_share(formula, PAPER_ETA * t, lam2), formula)


def fit_wide(profile: torch.Tensor, lam2: torch.Tensor, n: int = 200) -> Fit:
    """The diagnostic fit: eta -> 0 limit over :func:`tau_grid` (any lambda units; tau in the same units)."""
    taus = tau_grid(lam2, n)
    lam2 = lam2.double().clamp_min(1e-300)
    candidates = -torch.expm1(-taus[:, None] * lam2) / lam2.sqrt()
    i = _best(pearson_rows(profile, candidates))
    tau = float(taus[i])
    formula = formula_profile_tau(lam2, tau)
    return Fit("wide", pearson(profile, formula), tau, None, i in (0, n - 1),
               _whitened_share(formula, tau, lam2), formula)
