"""A paper's claims as checks over metric rows, with intervals over the units that were sampled.

A metric row (``metrics.jsonl``) is ``{"metric", "value", "params", "stderr"}`` and optionally
``items`` (per-item values whose mean is ``value``: per-image robustness, per-image 0/1
correctness), ``item_set`` (the units' name; rows of one run with the same item set are paired
item by item) and ``measured`` (measured quantities, never grouping params). A :class:`Claim`
checks rows of one run (recorded in run.json) or of the seeds of one config (the report): seeds
pool on ``params`` only, and every interval is a percentile bootstrap over seeds and, within each
seed, over items (:mod:`bench.claims.resample`; rows without items fall back to their stderr).

Statistics (``**where`` pins params: a value, a tuple of allowed values, ``Not(v)``, or
``MAX``/``MIN``, the largest/smallest value present)::

    Value(metric, reduce="mean", **where)    mean (min/max) over the matching conditions, each pooled over seeds
    Difference(a, b)                         a - b, paired item by item on a shared item set
    Expr(fn, *stats, text=...)               any function of statistics, e.g. a ratio
    Deviation(metric, along, ref, **where)   max |v(along=x) - v(along=ref)| within each curve

Checks (``z``: the interval spans ±z normal stderr; default the 95% interval)::

    AtLeast(stat, x) / AtMost(stat, x)       interval above (below) x; straddling x: inconclusive
    Within(stat, lo, hi)                     interval inside [lo, hi] (a magnitude)
    Monotone(metric, along, rising=True, span=None, each=True, **where)

Verdicts: reproduced, not reproduced, inconclusive, not measured, not applicable (an ``applies``
:class:`Gate` fails), invalid (a ``gates`` Gate fails, fewer than ``min_deciding`` deciding items,
or a non-finite statistic). Example: a direction claim and a magnitude claim on per-image robustness
(``run.log_metric("robustness", r.mean(), params={"alpha": a}, items=r, item_set="test[0:2000]")``)::

    gain = Expr(lambda r1, r0: 1 - (1 - r1) / (1 - r0), Value("robustness", alpha=1.0),
                Value("robustness", alpha=0.0), text="F = 1 − (1−Rob₁)/(1−Rob₀)")
    Claim("robustness_rises", "closing the gap raises robustness", paper="Fig. 3",
          check=AtLeast(Difference(Value("robustness", alpha=1.0), Value("robustness", alpha=0.0)), 0.0),
          gates=Gate(Value("acc1", alpha=0.0), at_least=0.5, reason="zero-shot accuracy floor"),
          min_deciding=10)
    Claim("flips_removed", "closing the gap removes a tenth of the flips", paper="F ≈ 0.1", kind="magnitude",
          paper_value=0.1, check=Within(gain, 0.05, 0.2))

See docs/claims.md.
"""
from bench.claims.checks import AtLeast, AtMost, Gate, Interval, Monotone, Within
from bench.claims.claim import Claim, evaluate
from bench.claims.resample import N_BOOT, Resampler
from bench.claims.rows import MAX, MIN, Not, describe, select
from bench.claims.stats import Deviation, Difference, Expr, Unmeasured, Value
from bench.claims.verdict import (
    DIRECTION, INCONCLUSIVE, INVALID, MAGNITUDE, NOT_APPLICABLE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, STATUSES,
    Verdict)

__all__ = ["AtLeast", "AtMost", "Claim", "DIRECTION", "Deviation", "Difference", "Expr", "Gate", "INCONCLUSIVE",
           "INVALID", "Interval", "MAGNITUDE", "MAX", "MIN", "Monotone", "NOT_APPLICABLE", "NOT_MEASURED",
           "NOT_REPRODUCED", "N_BOOT", "Not", "REPRODUCED", "Resampler", "STATUSES", "Unmeasured", "Value",
           "Verdict", "Within", "describe", "evaluate", "select"]
