"""Checks: a statistic's interval judged against the claim (and gates: preconditions on the data).

``AtLeast(stat, x)`` / ``AtMost(stat, x)``: reproduced when the interval lies wholly beyond ``x``
on the claim's side, not reproduced when it lies wholly on the other side, inconclusive when it
straddles ``x``. An interval of zero width (every replicate equal: an exact statistic, or rows with
no sampling error) is judged by its value, ``>=`` / ``<=`` as written. ``Within(stat, lo, hi)``:
the interval lies inside ``[lo, hi]`` (a magnitude agreeing with the paper's), wholly outside it,
or across an edge. ``Monotone``: every step and the first-to-last change of each curve.
"""
from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass
from statistics import NormalDist
from typing import Any

import numpy as np

from bench.claims.resample import Resampler
from bench.claims.rows import curve_labels, curves, describe, select
from bench.claims.stats import Unmeasured
from bench.claims.verdict import INCONCLUSIVE, NOT_REPRODUCED, REPRODUCED, Verdict

LEVEL = 0.95


def level_of(z: float | None) -> float:
    """The two-sided interval level: 95% by default, or the normal coverage of ``±z`` (z=2: 95.4%)."""
    if z is None:
        return LEVEL
    if z <= 0:
        raise ValueError(f"z={z:g}: an interval spans a positive number of stderr; a claim of 'no effect beyond "
                         "noise' is a threshold on the effect's size (AtMost(stat, tolerance))")
    return 2 * NormalDist().cdf(z) - 1


@dataclass(frozen=True)
class Interval:
    """A statistic's value and its percentile-bootstrap interval."""
    value: float
    low: float
    high: float
    level: float

    @classmethod
    def of(cls, draws: np.ndarray, level: float) -> Interval:
        reps = draws[1:][~np.isnan(draws[1:])]
        if not reps.size:
            return cls(float(draws[0]), math.nan, math.nan, level)
        # order statistics of the replicates (the percentile bootstrap; no interpolation past them)
        low, high = np.quantile(reps, [(1 - level) / 2, (1 + level) / 2], method="inverted_cdf")
        return cls(float(draws[0]), float(low), float(high), level)

    @property
    def exact(self) -> bool:
        """No sampling spread: the replicates all equal the value (up to rounding)."""
        return self.high - self.low <= 1e-10 * max(1.0, abs(self.low), abs(self.high))

    @property
    def stderr(self) -> float | None:
        """The normal-equivalent stderr of the interval (its half-width over z), None when exact."""
        return None if self.exact else (self.high - self.low) / 2 / NormalDist().inv_cdf((1 + self.level) / 2)

    def side(self, threshold: float, sign: int) -> str:
        """Which side of ``threshold`` the interval lies on, for a claim ``sign * (v - threshold) > 0``."""
        if self.exact:
            return REPRODUCED if sign * (self.value - threshold) >= 0 else NOT_REPRODUCED
        lo, hi = sorted((sign * (self.low - threshold), sign * (self.high - threshold)))
        return REPRODUCED if lo > 0 else NOT_REPRODUCED if hi < 0 else INCONCLUSIVE

    def margin(self, threshold: float, sign: int) -> float | None:
        se = self.stderr
        return None if not se else sign * (self.value - threshold) / se

    def text(self) -> str:
        if self.exact:
            return f"{self.value:.4g} (exact)"
        return f"{self.value:.4g} [{100 * self.level:.4g}%: {self.low:.4g}, {self.high:.4g}]"  # 97.5%, not 98%


def _verdict(status: str, iv: Interval, threshold: float | None, margin: float | None, figures: Iterable[str],
             note: str) -> Verdict:
    return Verdict("", status, iv.value, iv.low, iv.high, threshold, margin, tuple(figures), note)


def _figures(stat: Any, iv: Interval, sample: Resampler) -> list[str]:
    """The statistic with its interval, then its inputs when they say more than its value."""
    head, detail = f"{stat!r} = {iv.text()}", stat.figure(sample)
    own = f"{stat!r} = {iv.value:.4g}"
    if detail.startswith(own):  # the statistic's own figure: one line, its value with the interval
        return [head + detail[len(own):]]
    return [head, detail]


class _OnStatistic:
    """A check of one statistic: it reads and compares the statistic's rows."""
    stat: Any

    def rows(self, rows: Iterable[dict]) -> list[dict]:
        return self.stat.rows(rows)

    def compared(self, rows: Iterable[dict]) -> list[list[dict]]:
        return self.stat.compared(rows)


class AtLeast(_OnStatistic):
    """The statistic is at least ``threshold``: its interval lies above it (``z`` sets the level)."""
    sign = +1

    def __init__(self, stat: Any, threshold: float, z: float | None = None) -> None:
        self.stat, self.threshold, self.z = stat, threshold, z

    def judge(self, sample: Resampler) -> Verdict:
        iv = Interval.of(self.stat.draws(sample), level_of(self.z))
        figures = _figures(self.stat, iv, sample)
        note = f"needs {'≥' if self.sign > 0 else '≤'} {self.threshold:g}" + (
            " (an exact value)" if iv.exact else f": the {iv.level:.0%} interval beyond it")
        return _verdict(iv.side(self.threshold, self.sign), iv, self.threshold, iv.margin(self.threshold, self.sign),
                        figures, note)


class AtMost(AtLeast):
    """The statistic is at most ``threshold``: its interval lies below it."""
    sign = -1


class Within(_OnStatistic):
    """The statistic's size agrees with a figure: its interval lies inside ``[low, high]`` (a magnitude
    claim: the paper's value ± the tolerance the card declares)."""

    def __init__(self, stat: Any, low: float, high: float, z: float | None = None) -> None:
        if not low < high:
            raise ValueError(f"Within: low {low} must be below high {high}")
        self.stat, self.low, self.high, self.z = stat, low, high, z

    def judge(self, sample: Resampler) -> Verdict:
        iv = Interval.of(self.stat.draws(sample), level_of(self.z))
        inside = iv.side(self.low, +1) == REPRODUCED and iv.side(self.high, -1) == REPRODUCED
        outside = iv.side(self.low, -1) == REPRODUCED or iv.side(self.high, +1) == REPRODUCED
        if iv.exact:  # a value on an edge is inside
            outside = not inside
        status = REPRODUCED if inside else NOT_REPRODUCED if outside else INCONCLUSIVE
        nearest = self.low if abs(iv.value - self.low) < abs(iv.value - self.high) else self.high
        se = iv.stderr
        margin = None if not se else min(iv.value - self.low, self.high - iv.value) / se
        return _verdict(status, iv, nearest, margin, _figures(self.stat, iv, sample),
                        f"needs the {iv.level:.0%} interval inside [{self.low:g}, {self.high:g}]")


class Monotone:
    """Every curve of ``metric`` along ``along`` rises (``rising=False``: falls).

    Reproduced: no step's interval lies against the direction, and the first-to-last change clears 0
    (``each=True``: the curve that moves least; ``each=False``: the curves' mean change). Not
    reproduced: a step, or that change, lies wholly against it. Inconclusive otherwise. The verdict's
    value and interval are those of what decides: the step most against the direction when one is, else
    the first-to-last change. The steps'
    intervals are Bonferroni-widened (level 1 - (1 - level) / number of steps): with many steps, a flat
    one would otherwise read "against" by chance."""

    def __init__(self, metric: str, along: str, rising: bool = True, z: float | None = None,
                 span: tuple[float, float] | None = None, each: bool = True, **where: Any) -> None:
        self.metric, self.along, self.sign, self.z, self.span, self.each, self.where = \
            metric, along, 1 if rising else -1, z, span, each, where

    def rows(self, rows: Iterable[dict]) -> list[dict]:
        return select(rows, self.metric, self.where)

    def compared(self, rows: Iterable[dict]) -> list[list[dict]]:
        """Each curve's rows (within the span)."""
        return [[r for _, at_x in points for r in at_x]
                for points in curves(self.rows(rows), self.along, self.span).values() if len(points) > 1]

    def judge(self, sample: Resampler) -> Verdict:
        found = {k: c for k, c in curves(self.rows(sample.rows), self.along, self.span).items() if len(c) > 1}
        if not found:
            raise Unmeasured(f"no {describe(self.metric, self.where)} rows at two or more values of {self.along}")
        level, labels = level_of(self.z), curve_labels(found, self.along)
        # every step is tested: Bonferroni keeps the chance that any flat step reads "against" at 1 - level
        n_steps = sum(len(c) - 1 for c in found.values())
        step_level = 1 - (1 - level) / n_steps
        changes, against, figures = [], [], []
        for key, points in found.items():
            values = [(x, sample.pooled(rows)) for x, rows in points]
            for (xa, a), (xb, b) in zip(values, values[1:]):
                step = Interval.of(b - a, step_level)
                if step.side(0.0, self.sign) == NOT_REPRODUCED:
                    against.append((step, f"{labels[key]}: {self.along} {xa:g}→{xb:g} moves "
                                          f"{a[0]:.4g}→{b[0]:.4g} ({step.text()})"))
            changes.append(self.sign * (values[-1][1] - values[0][1]))
            figures.append(f"{labels[key]}: {values[0][1][0]:.4g} → {values[-1][1][0]:.4g} "
                           f"({self.along} {values[0][0]:g}→{values[-1][0]:g})")
        stacked = np.array(changes)
        signed = stacked.min(axis=0) if self.each else stacked.mean(axis=0)
        iv = Interval.of(self.sign * signed, level)
        # the deciding criterion: the step most clearly against the direction, else the first-to-last change;
        # the verdict's value and interval are that criterion's
        decides = min(against, key=lambda s: self.sign * s[0].value)[0] if against else iv
        status = NOT_REPRODUCED if against else iv.side(0.0, self.sign)
        direction = "rises" if self.sign > 0 else "falls"
        note = (f"{len(found)} curve(s) of {describe(self.metric, self.where)}; "
                f"{'the least-moving curve' if self.each else 'their mean'} {direction} first→last "
                f"(change {iv.text()}), no step's {step_level:.2%} interval against it ({n_steps} steps)")
        if against:
            more = f" (+{len(against) - 3} more)" if len(against) > 3 else ""
            note += (f"; decided by the step most against it (value and {step_level:.2%} interval: "
                     f"{decides.text()}); against: " + "; ".join(text for _, text in against[:3]) + more)
        shown = figures if len(figures) <= 6 else figures[:6] + [f"… {len(figures) - 6} more curve(s)"]
        return _verdict(status, decides, 0.0, decides.margin(0.0, self.sign), shown, note)


@dataclass(frozen=True)
class Gate:
    """A precondition on the data: the statistic's value is ``>= at_least`` and/or ``<= at_most``.

    In ``Claim.gates`` a failing gate makes the verdict "invalid" (e.g. a classifier under its
    base-accuracy floor); in ``Claim.applies`` "not applicable" (the mechanism is absent). Gates read
    the value, not the interval: they are declared bounds on what the claim may be judged on."""
    stat: Any
    at_least: float | None = None
    at_most: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.at_least is None and self.at_most is None:
            raise ValueError("Gate needs at_least and/or at_most")

    def rows(self, rows: Iterable[dict]) -> list[dict]:
        return self.stat.rows(rows)

    def failure(self, sample: Resampler) -> str | None:
        """Why the gate fails (the measured value and the bound), or None when it holds. A gate reads the
        statistic's point value only: no bootstrap."""
        value = self.stat.point(sample)
        low_ok = self.at_least is None or value >= self.at_least
        high_ok = self.at_most is None or value <= self.at_most
        if low_ok and high_ok and math.isfinite(value):
            return None
        bound = f"< {self.at_least:g}" if not low_ok else f"> {self.at_most:g}" if not high_ok else "not finite"
        return f"{self.reason or 'gate'}: {self.stat!r} = {value:.4g} {bound}"
