"""How metrics are shown: each task's :class:`bench.card.Metric` specs live in its card.

A spec decides which columns head a task's table, never whether a run appears: a task with no
card (or no card metric in its data) falls back to one column per metric and params combination.
"""
from __future__ import annotations

import math

from bench.card import Metric
from bench.tasks import card_for

GENERIC_FMT = ".4g"


def spec_for(task: str, metric: str) -> Metric | None:
    """The card's spec of ``metric`` for ``task``, or None."""
    card = card_for(task)
    return card.metric(metric) if card else None


def headline_specs(task: str) -> list[Metric]:
    """The headline specs of a task, in card order (the first one ranks the table)."""
    card = card_for(task)
    return card.headline_metrics if card else []


def format_value(value: float | None, fmt: str = GENERIC_FMT) -> str:
    """A number in the metric's format; missing or NaN shows as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    if fmt.endswith("d") and isinstance(value, float):  # a count: its mean over seeds need not be whole
        return format(int(value), fmt) if value.is_integer() else format(value, ".1f")
    return format(value, fmt)


def format_mean_std(mean: float | None, std: float | None, fmt: str = GENERIC_FMT) -> str:
    """``mean ± std`` (std omitted for a single seed)."""
    text = format_value(mean, fmt)
    if std is None or (isinstance(std, float) and math.isnan(std)) or text == "—":
        return text
    return f"{text} ± {format_value(std, fmt)}"
