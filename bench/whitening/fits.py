"""One profile's fit as metric rows: the formula on the paper's grid (and the wide diagnostic) beside
the trivial profiles it must beat, so a fit is never read without its null baselines.

Rows (each with the profile's params plus ``grid``):
  formula_fit_r             r at the best grid point (params t, tau, edge)
  lambda_r                  r of the profile with e ∝ lambda
  power_r                   r of the best power law lambda^p (params p)
  formula_lambda_distance   1 - r(fitted formula, lambda): how far the fit is from the e ∝ lambda limit
  fit_margin                the smallest of r - r_power - 0.05, r - r_lambda - 0.2 and distance - 0.2:
                            >= 0 exactly when the fit counts (profile.fit_counts)
"""
from __future__ import annotations

import torch

from bench.whitening.profile import (FIT_OVER_LAMBDA, FIT_OVER_POWER, FORMULA_FROM_LAMBDA, Fit, baselines,
                                     fit_paper, fit_wide, reference_lambda2)


def fit_rows(profile: torch.Tensor, eigvals: torch.Tensor, kernel_size: int, grid: str, tau_grid_size: int,
             params: dict) -> tuple[list[dict], Fit]:
    """The rows of one profile (``eigvals``: the patch covariance's) and its headline fit."""
    lam2 = reference_lambda2(eigvals, kernel_size)
    wide = fit_wide(profile, lam2, tau_grid_size)
    fits = [fit_paper(profile, lam2), wide] if grid == "paper" else [wide]
    base = baselines(profile, eigvals)
    rows = []
    for f in fits:
        p = {**params, "grid": f.grid}
        margin = min(f.r - base.r_power - FIT_OVER_POWER, f.r - base.r_lambda - FIT_OVER_LAMBDA,
                     f.lambda_distance - FORMULA_FROM_LAMBDA)
        rows += [dict(metric="formula_fit_r", value=f.r, params={**p, "t": f.t, "tau": f.tau, "edge": f.edge}),
                 dict(metric="formula_lambda_distance", value=f.lambda_distance, params=p, higher_is_better=None),
                 dict(metric="fit_margin", value=margin, params=p)]
    rows += [dict(metric="lambda_r", value=base.r_lambda, params=params, higher_is_better=None),
             dict(metric="power_r", value=base.r_power, params={**params, "p": base.power}, higher_is_better=None)]
    return rows, fits[0]
