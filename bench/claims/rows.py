"""Choosing metric rows: ``where`` filters on params, and curves along a numeric param."""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any


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


def numeric(value: Any) -> bool:
    """A number that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def select(rows: Iterable[dict], metric: str, where: dict[str, Any]) -> list[dict]:
    """The rows of ``metric`` with a value whose params satisfy ``where`` (a pinned param must be present)."""
    plain = {k: v for k, v in where.items() if not isinstance(v, Extreme)}
    out = [r for r in rows if r["metric"] == metric and r["value"] is not None
           and all(k in r["params"] and _allowed(r["params"][k], v) for k, v in plain.items())]
    for key, ext in where.items():
        if isinstance(ext, Extreme):
            present = [r["params"][key] for r in out if numeric(r["params"].get(key))]
            if not present:
                return []
            target = max(present) if ext.which == "max" else min(present)
            out = [r for r in out if r["params"].get(key) == target]
    return out


def describe(metric: str, where: dict[str, Any]) -> str:
    """``metric[k=v, ...]``."""
    inner = ", ".join(f"{k}={v!r}" if isinstance(v, str) else f"{k}={v}" for k, v in where.items())
    return f"{metric}[{inner}]" if inner else metric


def params_key(params: dict, leave_out: str | None = None) -> str:
    """A row's params as one hashable string (optionally without ``leave_out``): seeds pool on it."""
    return json.dumps({k: v for k, v in params.items() if k != leave_out}, sort_keys=True, default=str)


def cells(rows: Iterable[dict]) -> dict[str, list[dict]]:
    """The rows grouped by (metric, params): one cell per condition, holding every seed's rows.

    Only ``params`` name a condition: a row's ``measured`` quantities never split a cell."""
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["metric"] + params_key(r["params"]), []).append(r)
    return out


def curves(rows: Iterable[dict], along: str,
           span: tuple[float, float] | None = None) -> dict[str, list[tuple[float, list[dict]]]]:
    """The rows grouped into curves along a numeric param (one per combination of the other params),
    each a list of ``(x, rows at x)`` sorted along it and cut to ``span``."""
    out: dict[str, dict[float, list[dict]]] = {}
    for r in rows:
        x = r["params"].get(along)
        if not numeric(x) or (span and not span[0] <= x <= span[1]):
            continue
        out.setdefault(params_key(r["params"], along), {}).setdefault(float(x), []).append(r)
    return {key: sorted(points.items()) for key, points in out.items()}


def curve_labels(found: dict[str, list[tuple[float, list[dict]]]], along: str) -> dict[str, str]:
    """A short label per curve: the params that differ between curves."""
    params = {k: {p: v for p, v in c[0][1][0]["params"].items() if p != along} for k, c in found.items()}
    keys = sorted({p for ps in params.values() for p in ps})
    varying = [p for p in keys if len({json.dumps(ps.get(p), default=str) for ps in params.values()}) > 1]
    return {k: ", ".join(f"{p}={ps.get(p)}" for p in varying) or "all" for k, ps in params.items()}
