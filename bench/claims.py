"""A paper's claims as checkable predicates over metric rows.

A :class:`Claim` is the paper's finding in words, the paper's own figure, and a *check*. A check
reads metric rows (``{"metric", "value", "params", "stderr"}``, as in ``metrics.jsonl``) and
returns a :class:`Verdict`: ``reproduced``, ``not reproduced`` or ``not measured`` (the rows it
needs are absent), the value it measured, the figures it used, and, when the rows carry standard
errors, its margin in stderr. The same check runs on one run's rows (recorded in run.json at the
end of the run) and on a seed group's rows averaged over seeds (:func:`pool_seeds`, the
leaderboard's "Paper claims" table), where the stderr is the seeds' std / sqrt(n).

Statistics (the number a check looks at); ``**where`` pins params (a value, a tuple of allowed
values, ``Not(v)``, or ``MAX``/``MIN``: the largest/smallest value present):

    Value(metric, reduce="mean", **where)      mean (or min/max) of the matching rows
    Difference(a, b)                           a - b (stderrs added in quadrature)
    Deviation(metric, along, ref, **where)     max |v(along=x) - v(along=ref)| within each curve

Checks:

    AtLeast(stat, x, z=None) / AtMost(stat, x, z=None)
        the statistic is >= x (<= x); with ``z`` it must clear x by z stderr (a negative z
        tolerates falling short by |z| stderr: "not beyond noise")
    Monotone(metric, along, rising=True, z=2.0, span=None, each=True, **where)
        every curve along ``along`` (one per combination of the other params) never moves against
        the direction by more than z stderr of a step, and its first-to-last change clears z stderr
        (``each=False``: the curves' mean first-to-last change clears z stderr of that mean)

Example (one entry of a card's ``claims``)::

    Claim("fits_formula", "A trained CNN's first layer fits the linear-CNN formula",
          paper="r = 0.94 (CIFAR-10), 0.90 (ImageNet)",
          check=AtLeast(Value("formula_fit_r", kind="cnn", weights="trained", labels="true"), 0.9))
"""
from __future__ import annotations

import json
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
NOT_MEASURED = "not measured"
STATUSES = (REPRODUCED, NOT_REPRODUCED, NOT_MEASURED)


# -- selecting rows -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Not:
    """A ``where`` value: any value but this one (or these)."""
    value: Any

    def __repr__(self) -> str:
        return f"!{self.value}"


@dataclass(frozen=True)
class Extreme:
    """A ``where`` value: the largest (``MAX``) or smallest (``MIN``) value of the param present."""
    which: str

    def __repr__(self) -> str:
        return self.which


MAX, MIN = Extreme("max"), Extreme("min")


def _allowed(value: Any, want: Any) -> bool:
    if isinstance(want, Not):
        return not _allowed(value, want.value)
    if isinstance(want, (tuple, list, set, frozenset)):
        return value in want
    return value == want


def _numeric(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def select(rows: Iterable[dict], metric: str, where: dict[str, Any]) -> list[dict]:
    """The rows of ``metric`` with a value whose params satisfy ``where`` (a pinned param must be present)."""
    plain = {k: v for k, v in where.items() if not isinstance(v, Extreme)}
    out = [r for r in rows if r["metric"] == metric and r["value"] is not None
           and all(k in r["params"] and _allowed(r["params"][k], v) for k, v in plain.items())]
    for key, ext in where.items():
        if isinstance(ext, Extreme):
            present = [r["params"][key] for r in out if _numeric(r["params"].get(key))]
            if not present:
                return []
            target = max(present) if ext.which == "max" else min(present)
            out = [r for r in out if r["params"].get(key) == target]
    return out


def describe(metric: str, where: dict[str, Any]) -> str:
    """``metric[k=v, ...]``."""
    inner = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in where.items())
    return f"{metric}[{inner}]" if inner else metric


# -- statistics ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measure:
    """What a statistic found: a value (None when not measurable, with the reason) and its stderr."""
    value: float | None
    stderr: float | None = None
    figures: tuple[str, ...] = ()
    missing: str = ""


def _quadrature(errors: Sequence[float | None]) -> float | None:
    if not errors or any(e is None for e in errors):
        return None
    return math.sqrt(sum(e * e for e in errors))


class Value:
    """The mean (or ``reduce="min"``/``"max"``) of the rows of ``metric`` matching ``where``."""

    def __init__(self, metric: str, reduce: str = "mean", **where: Any) -> None:
        if reduce not in ("mean", "min", "max"):
            raise ValueError(f"reduce must be mean, min or max, not {reduce!r}")
        self.metric, self.reduce, self.where = metric, reduce, where

    def __repr__(self) -> str:
        return describe(self.metric, self.where) if self.reduce == "mean" else \
            f"{self.reduce} {describe(self.metric, self.where)}"

    def rows(self, rows: Iterable[dict]) -> list[dict]:
        return select(rows, self.metric, self.where)

    def measure(self, rows: Iterable[dict]) -> Measure:
        chosen = self.rows(rows)
        if not chosen:
            return Measure(None, missing=f"no {describe(self.metric, self.where)} rows")
        values = [r["value"] for r in chosen]
        if self.reduce == "mean":
            value = sum(values) / len(values)
            se = _quadrature([r.get("stderr") for r in chosen])
            stderr = None if se is None else se / len(values)
        else:
            pick = (max if self.reduce == "max" else min)(chosen, key=lambda r: r["value"])
            value, stderr = pick["value"], pick.get("stderr")
        text = f"{self!r} = {value:.4g}"
        if len(values) > 1:
            text += f" ({len(values)} values, {min(values):.4g}…{max(values):.4g})"
        return Measure(value, stderr, (text,))


class Difference:
    """``a - b`` of two statistics (stderrs added in quadrature)."""

    def __init__(self, a: Value, b: Value) -> None:
        self.a, self.b = a, b

    def __repr__(self) -> str:
        return f"{self.a!r} − {self.b!r}"

    def measure(self, rows: Iterable[dict]) -> Measure:
        rows = list(rows)
        if isinstance(self.a, Value) and isinstance(self.b, Value):
            ids_a = {id(r) for r in self.a.rows(rows)}
            if ids_a and ids_a == {id(r) for r in self.b.rows(rows)}:
                return Measure(None, missing=f"{self.a!r} and {self.b!r} are the same rows (one condition only)")
        ma, mb = self.a.measure(rows), self.b.measure(rows)
        if ma.value is None or mb.value is None:
            return Measure(None, missing="; ".join(m.missing for m in (ma, mb) if m.missing))
        return Measure(ma.value - mb.value, _quadrature([ma.stderr, mb.stderr]), ma.figures + mb.figures)


def _key(params: dict, leave_out: str) -> str:
    return json.dumps({k: v for k, v in params.items() if k != leave_out}, sort_keys=True, default=str)


def curves(rows: list[dict], along: str, span: tuple[float, float] | None = None) -> dict[str, list[dict]]:
    """The rows grouped into curves along a numeric param (one per combination of the other params),
    each sorted along it and cut to ``span``; a point's several rows are averaged."""
    out: dict[str, dict[float, list[dict]]] = {}
    for r in rows:
        x = r["params"].get(along)
        if not _numeric(x) or (span and not span[0] <= x <= span[1]):
            continue
        out.setdefault(_key(r["params"], along), {}).setdefault(float(x), []).append(r)
    result = {}
    for key, points in out.items():
        merged = []
        for x in sorted(points):
            pts = points[x]
            se = _quadrature([p.get("stderr") for p in pts])
            merged.append({"x": x, "value": sum(p["value"] for p in pts) / len(pts),
                           "stderr": None if se is None else se / len(pts), "params": pts[0]["params"]})
        result[key] = merged
    return result


def curve_labels(found: dict[str, list[dict]], along: str) -> dict[str, str]:
    """A short label per curve: the params that differ between curves."""
    params = {k: {p: v for p, v in c[0]["params"].items() if p != along} for k, c in found.items()}
    keys = sorted({p for ps in params.values() for p in ps})
    varying = [p for p in keys if len({json.dumps(ps.get(p), default=str) for ps in params.values()}) > 1]
    return {k: ", ".join(f"{p}={ps.get(p)}" for p in varying) or "all" for k, ps in params.items()}


class Deviation:
    """The largest |v(along=x) − v(along=ref)| within any curve: 0 means "exactly unchanged"."""

    def __init__(self, metric: str, along: str, ref: float, **where: Any) -> None:
        self.metric, self.along, self.ref, self.where = metric, along, ref, where

    def __repr__(self) -> str:
        return f"max |Δ{describe(self.metric, self.where)}| over {self.along} vs {self.along}={self.ref}"

    def measure(self, rows: Iterable[dict]) -> Measure:
        found = curves(select(rows, self.metric, self.where), self.along)
        devs = []
        for points in found.values():
            ref = [p["value"] for p in points if p["x"] == self.ref]
            if ref and len(points) > 1:
                devs.append(max(abs(p["value"] - ref[0]) for p in points))
        if not devs:
            return Measure(None, missing=f"no {describe(self.metric, self.where)} rows at {self.along}={self.ref} "
                                         f"and another {self.along}")
        n_points = sum(len(c) for c in found.values())
        return Measure(max(devs), None, (f"{self!r} = {max(devs):.4g} ({len(devs)} curve(s), {n_points} points)",))


# -- verdicts -----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim on some rows."""
    claim: str
    status: str
    value: float | None = None
    stderr: float | None = None
    margin: float | None = None  # (value - threshold) / stderr in the claim's direction
    figures: tuple[str, ...] = ()
    note: str = ""

    def as_record(self, targeted: bool = False) -> dict:
        """The JSON form stored in run.json's ``claims``."""
        def num(x: float | None) -> float | None:
            return None if x is None or not math.isfinite(x) else float(x)

        return {"id": self.claim, "verdict": self.status, "value": num(self.value), "stderr": num(self.stderr),
                "margin_se": num(self.margin), "figures": list(self.figures), "note": self.note,
                "targeted": targeted}


def _judge(claim: str, m: Measure, threshold: float, sign: int, z: float | None) -> Verdict:
    """``sign`` +1: value >= threshold; -1: value <= threshold; with ``z``, clear it by z stderr."""
    if m.value is None:
        return Verdict(claim, NOT_MEASURED, note=m.missing)
    gap = sign * (m.value - threshold)
    margin = gap / m.stderr if m.stderr else None
    ok = gap >= (z * m.stderr if z is not None and m.stderr else 0.0)
    note = f"needs {'≥' if sign > 0 else '≤'} {threshold:g}" + (f" by {z:g} stderr" if z is not None else "")
    return Verdict(claim, REPRODUCED if ok else NOT_REPRODUCED, m.value, m.stderr, margin, m.figures, note)


class AtLeast:
    """The statistic is at least ``threshold`` (by ``z`` stderr when given)."""

    def __init__(self, stat: Any, threshold: float, z: float | None = None) -> None:
        self.stat, self.threshold, self.z = stat, threshold, z

    def __call__(self, claim: str, rows: list[dict]) -> Verdict:
        return _judge(claim, self.stat.measure(rows), self.threshold, +1, self.z)


class AtMost(AtLeast):
    """The statistic is at most ``threshold`` (by ``z`` stderr when given)."""

    def __call__(self, claim: str, rows: list[dict]) -> Verdict:
        return _judge(claim, self.stat.measure(rows), self.threshold, -1, self.z)


class Monotone:
    """Every curve of ``metric`` along ``along`` rises (``rising=False``: falls) beyond its noise."""

    def __init__(self, metric: str, along: str, rising: bool = True, z: float = 2.0,
                 span: tuple[float, float] | None = None, each: bool = True, **where: Any) -> None:
        self.metric, self.along, self.sign, self.z, self.span, self.each, self.where = \
            metric, along, 1 if rising else -1, z, span, each, where

    def __call__(self, claim: str, rows: list[dict]) -> Verdict:
        found = {k: c for k, c in curves(select(rows, self.metric, self.where), self.along, self.span).items()
                 if len(c) > 1}
        if not found:
            return Verdict(claim, NOT_MEASURED, note=f"no {describe(self.metric, self.where)} rows at two or "
                                                     f"more values of {self.along}")
        labels = curve_labels(found, self.along)
        changes, errors, margins, against, figures = [], [], [], [], []
        for key, c in found.items():
            for a, b in zip(c, c[1:]):
                se = _quadrature([a["stderr"], b["stderr"]]) or 0.0
                if self.sign * (b["value"] - a["value"]) < -self.z * se:
                    against.append(f"{labels[key]}: {self.along} {a['x']:g}→{b['x']:g} moves "
                                   f"{a['value']:.4g}→{b['value']:.4g}")
            first, last = c[0], c[-1]
            change = last["value"] - first["value"]
            se = _quadrature([first["stderr"], last["stderr"]])
            changes.append(change)
            errors.append(se)
            margins.append(self.sign * change / se if se else (math.inf if self.sign * change > 0 else -math.inf))
            figures.append(f"{labels[key]}: {first['value']:.4g} → {last['value']:.4g} "
                           f"({self.along} {first['x']:g}→{last['x']:g})")
        mean = sum(changes) / len(changes)
        if self.each:
            worst = min(margins)
        else:  # the mean change over the curves, against the stderr of that mean
            se = _quadrature(errors)
            se = None if se is None else se / len(changes)
            worst = self.sign * mean / se if se else (math.inf if self.sign * mean > 0 else -math.inf)
        ok = not against and worst > self.z
        direction = "rises" if self.sign > 0 else "falls"
        note = (f"{len(found)} curve(s) of {describe(self.metric, self.where)}; "
                f"{'each' if self.each else 'their mean'} {direction} first→last by > {self.z:g} stderr, "
                f"no step against it beyond {self.z:g} stderr")
        if against:
            more = f" (+{len(against) - 3} more)" if len(against) > 3 else ""
            note += "; against: " + "; ".join(against[:3]) + more
        shown = figures if len(figures) <= 6 else figures[:6] + [f"… {len(figures) - 6} more curve(s)"]
        return Verdict(claim, REPRODUCED if ok else NOT_REPRODUCED, mean, None,
                       worst if math.isfinite(worst) else None, tuple(shown), note)


# -- claims -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Claim:
    """One finding of the paper: what it says, the paper's figure, and the check of it."""
    id: str
    text: str
    paper: str  # the paper's own figure(s), or what it states when it gives none
    check: Any  # AtLeast / AtMost / Monotone (any callable (claim_id, rows) -> Verdict)
    fmt: str = ".3f"  # how the measured value is shown

    def evaluate(self, rows: list[dict]) -> Verdict:
        """The verdict on ``rows``; a check that raises is recorded as not measured, with the error."""
        try:
            return self.check(self.id, rows)
        except Exception as e:  # a bug in one check must not lose a finished run's record
            log.exception("claim %s: check failed", self.id)
            return Verdict(self.id, NOT_MEASURED, note=f"check failed: {type(e).__name__}: {e}")


def evaluate(claims: Iterable[Claim], rows: list[dict]) -> list[Verdict]:
    """Every claim's verdict on ``rows``."""
    return [c.evaluate(rows) for c in claims]


def pool_seeds(runs_rows: Sequence[Sequence[dict]]) -> list[dict]:
    """One row per (metric, params) from several seeds' rows: the mean over seeds, with stderr
    std / sqrt(n) over seeds (a single seed keeps its own stderr)."""
    per_run: dict[tuple[str, str], list[dict]] = {}
    for rows in runs_rows:
        merged: dict[tuple[str, str], list[dict]] = {}
        for r in rows:
            if r["value"] is not None:
                merged.setdefault((r["metric"], json.dumps(r["params"], sort_keys=True)), []).append(r)
        for key, same in merged.items():
            se = _quadrature([r.get("stderr") for r in same])
            per_run.setdefault(key, []).append({"value": sum(r["value"] for r in same) / len(same),
                                                "stderr": None if se is None else se / len(same)})
    out = []
    for (metric, params), values in per_run.items():
        n = len(values)
        mean = sum(v["value"] for v in values) / n
        if n > 1:
            stderr = math.sqrt(sum((v["value"] - mean) ** 2 for v in values) / (n - 1) / n)
        else:
            stderr = values[0]["stderr"]
        out.append({"metric": metric, "params": json.loads(params), "value": mean, "stderr": stderr, "n_seeds": n})
    return out
