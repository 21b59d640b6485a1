"""Energy profiles of a filter bank over the patch PCA basis, the linear-CNN formula, and its fit.

e_i = sqrt( (1/K) sum_k (w_k . u_i)^2 ), w = W_trained - W_init by default.
Formula (conv -> global average pool -> sum, MSE, full-batch GD with step eta, small init):
    e_i(t) ∝ lambda_i |1 - (1 - eta lambda_i^2)^t| / (eta lambda_i^2)
Here lambda_i^2 are eigenvalues of the patch covariance (not singular values of the patch
matrix). For fitting a trained nonlinear CNN only tau = eta * t matters after normalisation; we
use the eta -> 0 limit, e_i ∝ (1 - exp(-tau lambda_i^2)) / lambda_i, on a log-spaced tau grid.
"""
from __future__ import annotations

import math

import torch


def energy_profile(weight: torch.Tensor, eigvecs: torch.Tensor) -> torch.Tensor:
    """Profile of a filter bank ``weight`` (K, C, k, k) or (K, D) over the columns of ``eigvecs``."""
    w = weight.detach().reshape(weight.shape[0], -1).double()
    if w.shape[1] != eigvecs.shape[0]:
        raise ValueError(f"filters have {w.shape[1]} inputs but the PCA basis is {eigvecs.shape[0]}-dimensional "
                         f"(kernel size or channel count differs from the PCA)")
    return (w @ eigvecs.double()).pow(2).mean(0).sqrt()


def formula_profile(eigvals: torch.Tensor, eta: float, t: float) -> torch.Tensor:
    """The closed form for GD step ``eta`` after ``t`` steps (exact, not the small-eta limit)."""
    lam2 = eigvals.double().clamp_min(1e-300)
    return lam2.sqrt() * (1 - (1 - eta * lam2).pow(t)).abs() / (eta * lam2)


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


def tau_grid(eigvals: torch.Tensor, n: int = 200) -> torch.Tensor:
    """Log-spaced tau from well before the largest eigenvalue's peak to well past the smallest's.

    The formula's peak sits at lambda^2 ~ 1/tau, so this spans every regime from e ∝ lambda
    (tau small) to whitening e ∝ 1/lambda (tau large)."""
    lam2 = eigvals.double().clamp_min(eigvals.max().item() * 1e-12)
    lo, hi = math.log10(0.01 / lam2.max().item()), math.log10(100.0 / lam2.min().item())
    return torch.logspace(lo, hi, n, dtype=torch.float64)


def fit_tau(profile: torch.Tensor, eigvals: torch.Tensor, taus: torch.Tensor | None = None) -> tuple[float, float]:
    """Grid-search tau maximising Pearson r between ``profile`` and the formula: (r, tau)."""
    taus = tau_grid(eigvals) if taus is None else taus
    rs = [pearson(profile, formula_profile_tau(eigvals, float(tau))) for tau in taus]
    best = max(range(len(rs)), key=lambda i: -math.inf if math.isnan(rs[i]) else rs[i])
    return rs[best], float(taus[best])
