"""Statistics: the numbers a check judges, each a function of Values with bootstrap replicates.

A statistic has ``rows(all_rows)`` (the rows it reads), ``draws(sample)``: an array whose
element 0 is its value on the data and the rest its value on each bootstrap replicate
(:class:`bench.claims.resample.Resampler`), and ``point(sample)``: element 0 alone, without
resampling (what a gate reads). Functions of Values (``Difference``, ``Expr``) are
computed replicate by replicate, so they inherit the pairing of their Values' items.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import numpy as np

from bench.claims.resample import Resampler
from bench.claims.rows import cells, curves, describe, select


class Unmeasured(Exception):
    """The rows a statistic needs are absent (the claim is "not measured"; the message says which)."""


def _fmt(x: float) -> str:
    return f"{x:.4g}"


class Value:
    """The mean (or ``reduce="min"``/``"max"``) over conditions of ``metric`` matching ``where``;
    each condition (one params combination) is pooled over seeds first."""

    def __init__(self, metric: str, reduce: str = "mean", **where: Any) -> None:
        if reduce not in ("mean", "min", "max"):
            raise ValueError(f"reduce must be mean, min or max, not {reduce!r}")
        self.metric, self.reduce, self.where = metric, reduce, where

    def __repr__(self) -> str:
        text = describe(self.metric, self.where)
        return text if self.reduce == "mean" else f"{self.reduce} {text}"

    def rows(self, rows: Iterable[dict]) -> list[dict]:
        return select(rows, self.metric, self.where)

    def compared(self, rows: Iterable[dict]) -> list[list[dict]]:
        """The groups of rows whose items are compared: each condition on its own."""
        return list(cells(self.rows(rows)).values())

    def _cells(self, sample: Resampler) -> list[list[dict]]:
        found = cells(self.rows(sample.rows))
        if not found:
            raise Unmeasured(f"no {describe(self.metric, self.where)} rows")
        return list(found.values())

    def _reduce(self, per_cell: np.ndarray) -> np.ndarray:
        with np.errstate(over="ignore", invalid="ignore"):
            if self.reduce == "mean":
                return (per_cell / len(per_cell)).sum(axis=0)
            return per_cell.max(axis=0) if self.reduce == "max" else per_cell.min(axis=0)

    def draws(self, sample: Resampler) -> np.ndarray:
        return self._reduce(np.array([sample.pooled(rows) for rows in self._cells(sample)]))

    def point(self, sample: Resampler) -> float:
        return float(self._reduce(np.array([sample.point(rows) for rows in self._cells(sample)])))

    def figure(self, sample: Resampler) -> str:
        """``metric[...] = v`` (with the conditions' range when there are several)."""
        values = [sample.pooled(rows)[0] for rows in cells(self.rows(sample.rows)).values()]
        text = f"{self!r} = {_fmt(self.draws(sample)[0])}"
        if len(values) > 1:
            text += f" ({len(values)} values, {_fmt(min(values))}…{_fmt(max(values))})"
        return text


class Expr:
    """Any function of statistics, evaluated replicate by replicate (``fn`` takes and returns numpy
    arrays, so plain arithmetic works), e.g. the fraction of flips removed::

        Expr(lambda r1, r0: 1 - (1 - r1) / (1 - r0), Value("rob", alpha=1.0), Value("rob", alpha=0.0),
             text="F = 1 − (1−Rob₁)/(1−Rob₀)")
    """

    def __init__(self, fn: Callable[..., Any], *stats: Any, text: str) -> None:
        self.fn, self.stats, self.text = fn, stats, text

    def __repr__(self) -> str:
        return self.text

    def rows(self, rows: Iterable[dict]) -> list[dict]:
        rows = list(rows)
        return [r for s in self.stats for r in s.rows(rows)]

    def compared(self, rows: Iterable[dict]) -> list[list[dict]]:
        """Its inputs' rows, compared with each other."""
        return [self.rows(rows)]

    def draws(self, sample: Resampler) -> np.ndarray:
        args = [s.draws(sample) for s in self.stats]
        with np.errstate(all="ignore"):
            return np.asarray(self.fn(*args), dtype=float)

    def point(self, sample: Resampler) -> float:
        args = [np.array([s.point(sample)]) for s in self.stats]  # fn takes arrays
        with np.errstate(all="ignore"):
            return float(np.asarray(self.fn(*args), dtype=float).reshape(-1)[0])

    def figure(self, sample: Resampler) -> str:
        return "; ".join(s.figure(sample) for s in self.stats)


class Difference(Expr):
    """``a - b`` of two statistics; on one item set, paired item by item."""

    def __init__(self, a: Any, b: Any) -> None:
        super().__init__(np.subtract, a, b, text=f"{a!r} − {b!r}")
        self.a, self.b = a, b

    def _distinct(self, sample: Resampler) -> None:
        if isinstance(self.a, Value) and isinstance(self.b, Value):
            ids = {id(r) for r in self.a.rows(sample.rows)}
            if ids and ids == {id(r) for r in self.b.rows(sample.rows)}:
                raise Unmeasured(f"{self.a!r} and {self.b!r} are the same rows (one condition only)")

    def draws(self, sample: Resampler) -> np.ndarray:
        self._distinct(sample)
        return super().draws(sample)

    def point(self, sample: Resampler) -> float:
        self._distinct(sample)
        return super().point(sample)


class Deviation:
    """The largest |v(along=x) − v(along=ref)| within any curve: 0 means "exactly unchanged"."""

    def __init__(self, metric: str, along: str, ref: float, **where: Any) -> None:
        self.metric, self.along, self.ref, self.where = metric, along, ref, where

    def __repr__(self) -> str:
        return f"max |Δ{describe(self.metric, self.where)}| over {self.along} vs {self.along}={self.ref}"

    def rows(self, rows: Iterable[dict]) -> list[dict]:
        return select(rows, self.metric, self.where)

    def compared(self, rows: Iterable[dict]) -> list[list[dict]]:
        """Each curve's rows."""
        return [[r for _, at_x in points for r in at_x] for points in curves(self.rows(rows), self.along).values()]

    def _deviation(self, sample: Resampler, value: Callable[[list[dict]], Any]) -> Any:
        """The largest deviation, with ``value`` giving a condition's value (its draws, or its point)."""
        devs = []
        for points in curves(self.rows(sample.rows), self.along).values():
            ref = [value(rows) for x, rows in points if x == self.ref]
            if ref and len(points) > 1:
                devs.append(np.max([np.abs(value(rows) - ref[0]) for _, rows in points], axis=0))
        if not devs:
            raise Unmeasured(f"no {describe(self.metric, self.where)} rows at {self.along}={self.ref} "
                             f"and another {self.along}")
        return np.max(devs, axis=0)

    def draws(self, sample: Resampler) -> np.ndarray:
        return self._deviation(sample, sample.pooled)

    def point(self, sample: Resampler) -> float:
        return float(self._deviation(sample, sample.point))

    def figure(self, sample: Resampler) -> str:
        found = curves(self.rows(sample.rows), self.along)
        n_points = sum(len(c) for c in found.values())
        return f"{self!r} = {_fmt(self.draws(sample)[0])} ({len(found)} curve(s), {n_points} points)"
