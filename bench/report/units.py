"""Models under test: the unit one leaderboard row ranks (a card's ``ranking_unit``).

A task declares which keys identify a model under test: metric-row params (a run that trains
several classifiers: each row names its ``arch``) or dotted config keys (a run that
evaluates one CLIP, ``clip.name``). A metric row's unit is the keys it names: its params first,
else its run's config. A row naming only some of the keys (or none: a run-level metric such as
the generator's latent MMD) belongs to every model of its run that agrees on the keys it names.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence

_MISSING = object()


def _lookup(config: dict, dotted: str) -> object:
    node: object = config
    for part in dotted.split("."):
        if not isinstance(node, dict) or part not in node:
            return _MISSING
        node = node[part]
    return _MISSING if isinstance(node, (dict, list)) else node


def row_unit(keys: Sequence[str], params: dict, config: dict) -> dict:
    """The unit keys a metric row names, with their values (params first, then the run's config)."""
    out = {}
    for key in keys:
        value = params[key] if key in params else _lookup(config, key)
        if value is not _MISSING:
            out[key] = value
    return out


def run_units(named: Iterable[dict]) -> list[dict]:
    """The models under test of one run, from its rows' units: each distinct unit naming every key
    any row names (in first-seen order); one empty unit when no row names a key."""
    named = list(named)
    present = {k for unit in named for k in unit}
    units: list[dict] = []
    for unit in named:
        if set(unit) == present and unit not in units:
            units.append(unit)
    return units or [{}]


def belongs(named: dict, unit: dict) -> bool:
    """Whether a row naming ``named`` belongs to the model ``unit`` (it agrees on every key it names)."""
    return all(unit.get(k, _MISSING) == v for k, v in named.items())


def unit_label(unit: dict) -> str:
    """``resnet20, width=0.5``: the first key's value bare, the others as ``key=value`` (None left out)."""
    shown = [(k, v) for k, v in unit.items() if v is not None]
    if not shown:
        return ""
    (_, first), rest = shown[0], shown[1:]
    return ", ".join([str(first), *(f"{k.rsplit('.', 1)[-1]}={v}" for k, v in rest)])
