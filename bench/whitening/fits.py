"""One profile's fit as metric rows: the formula on the paper's grid (and the wide diagnostic) beside
the trivial profiles it must beat, so a fit is never read without its null baselines.

Rows (each with the profile's params plus ``grid``):
  formula_fit_r             r at the best grid point (params t, tau, edge)
  formula_t, fit_edge       that best t (paper grid) and whether it is on the grid's edge (1/0), as values
  lambda_r                  r of the profile with e ∝ lambda
  power_r                   r of the best power law lambda^p (params p)
  formula_lambda_distance   1 - r(fitted formula, lambda): how far the fit is from the e ∝ lambda limit
  fit_margin                the smallest of r - r_power - 0.05, r - r_lambda - 0.2 and distance - 0.2:
                            >= 0 exactly when the fit counts (profile.fit_counts)
"""
from __future__ import annotations

import json
import math

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
                 dict(metric="fit_edge", value=float(f.edge), params=p, higher_is_better=None),
                 dict(metric="formula_lambda_distance", value=f.lambda_distance, params=p, higher_is_better=None),
                 dict(metric="fit_margin", value=margin, params=p)]
        if f.t is not None:
            rows.append(dict(metric="formula_t", value=f.t, params=p, higher_is_better=None))
    rows += [dict(metric="lambda_r", value=base.r_lambda, params=params, higher_is_better=None),
             dict(metric="power_r", value=base.r_power, params={**params, "p": base.power}, higher_is_better=None)]
    return rows, fits[0]


# per-model params that differ between the seeds of one condition (never grouping keys of the pooled rows)
PER_MODEL = ("seed", "t", "tau", "edge", "p", "step")


def pooled_over_seeds(rows: list[dict], metrics: tuple[str, ...]) -> list[dict]:
    """One row per condition (the models that differ only in their seed) whose items are the models'
    values in seed order (item set ``whitening:seeds[...]``: the same seeds pair item by item across
    conditions): the claims' interval is then over the models trained, the units this study samples.
    Per-model rows are marked ``over=model``, pooled ones ``over=seeds``."""
    groups: dict[str, list[dict]] = {}
    for r in rows:
        if r["metric"] in metrics and "seed" in r["params"]:
            key = json.dumps([r["metric"], {k: v for k, v in r["params"].items() if k not in PER_MODEL}],
                             sort_keys=True, default=str)
            groups.setdefault(key, []).append(r)
    out = []
    for members in groups.values():
        if len(members) < 2:
            continue
        members = sorted(members, key=lambda r: r["params"]["seed"])
        values = [float(r["value"]) for r in members]
        seeds = ",".join(str(r["params"]["seed"]) for r in members)
        params = {k: v for k, v in members[0]["params"].items() if k not in PER_MODEL} | {"over": "seeds"}
        out.append(dict(metric=members[0]["metric"], value=math.fsum(v / len(values) for v in values), params=params,
                        items=values, item_set=f"whitening:seeds[{seeds}]",
                        higher_is_better=members[0].get("higher_is_better", True)))
    for r in rows:
        if "seed" in r["params"]:
            r["params"]["over"] = "model"
    return out
