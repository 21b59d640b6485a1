"""The results schema, version 2: the contract between every task and the leaderboard.

Two JSON Schemas live beside this file: ``run.schema.json`` (one ``run.json`` per run)
and ``metric.schema.json`` (one row of ``metrics.jsonl``). Every write and every read
goes through :func:`validate_run` / :func:`validate_metric`. Numbers are finite: NaN, ±Infinity
and overflowing literals (``1e400``) are refused everywhere; a metric that is not a number is stored
as ``null`` (the documented NaN convention), never as a non-finite float.

Versions: v2 adds ``preset`` (the ``experiment=`` preset the run was launched with) and
``claims`` (the task card's claim verdicts on the run). Readers call :func:`upgrade_run`, which
validates a v1 record against ``run.v1.schema.json`` (kept beside it) and migrates it: the
preset is read from its overrides, ``claims`` is null (not checked when it ran; the report checks
every run's metrics itself). Within v2, optional fields were added without breaking older files: a
metric row may carry ``items``, ``item_set`` and ``measured`` (:mod:`bench.claims`), and a claim
record carries ``low``, ``high``, ``threshold``, ``n_items``, ... (older records: ``stderr``, ``margin_se``).
"""
from __future__ import annotations

import json
import math
from collections.abc import Iterator
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_VERSION = 2
SCHEMA_FILES = ("run.schema.json", "metric.schema.json", "run.v1.schema.json")
# schema_version -> the run.json schema of that version (the current one is run.schema.json)
RUN_SCHEMAS = {1: "run.v1.schema.json", 2: "run.schema.json"}


class SchemaError(ValueError):
    """A run record or metric row does not follow the results schema."""


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files(__package__).joinpath(name).read_text())
    return jsonschema.Draft202012Validator(schema)


def _non_finite(obj: Any, path: tuple = ()) -> Iterator[str]:
    """The paths of every non-finite float in a JSON-like object (JSON Schema cannot reject NaN)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        yield f"{'/'.join(map(str, path)) or '<root>'}: {obj} is not a finite number (store null instead)"
    elif isinstance(obj, dict):
        for k, v in obj.items():
            yield from _non_finite(v, (*path, k))
    elif isinstance(obj, (list, tuple)):
        for i, v in enumerate(obj):
            yield from _non_finite(v, (*path, i))


def _validate(name: str, obj: Any, what: str) -> None:
    errors = sorted(_validator(name).iter_errors(obj), key=lambda e: list(e.path))
    lines = list(_non_finite(obj))[:5]
    if errors or lines:
        lines += [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:5]]
        raise SchemaError(f"{what} violates {name}:\n  " + "\n  ".join(lines))


def validate_run(record: dict, what: str = "run.json") -> None:
    """Raise :class:`SchemaError` naming every offending key if ``record`` is not a valid run.json."""
    _validate("run.schema.json", record, what)


def preset_of(overrides: list[str]) -> str | None:
    """The experiment preset of a run (``experiment=<preset>`` among its overrides), or None."""
    for override in overrides:
        key, _, value = override.lstrip("+").partition("=")
        if key == "experiment" and value:
            return value
    return None


def upgrade_run(record: dict, what: str = "run.json") -> dict:
    """Validate a run.json of any known version and return it in the current version."""
    version = record.get("schema_version") if isinstance(record, dict) else None
    if version not in RUN_SCHEMAS:
        if isinstance(version, int) and version > SCHEMA_VERSION:
            raise SchemaError(f"{what}: schema_version {version} is newer than this bench reads "
                              f"(1..{SCHEMA_VERSION}); upgrade bench")
        validate_run(record, what)  # names every problem against the current schema
    _validate(RUN_SCHEMAS[version], record, what)
    if version == 1:
        record = {**record, "schema_version": 2, "preset": preset_of(record["overrides"]), "claims": None}
        validate_run(record, what)
    return record


def validate_metric(row: dict, what: str = "metric row") -> None:
    """Raise :class:`SchemaError` if ``row`` is not a valid metrics.jsonl row."""
    _validate("metric.schema.json", row, what)


def _refuse_constant(token: str) -> float:
    raise ValueError(f"{token} is not a finite number (JSON has no NaN/Infinity; store null instead)")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"{text} overflows a 64-bit float: not a finite number")
    return value


def loads_finite(text: str) -> Any:
    """``json.loads`` that refuses NaN, ±Infinity and overflowing numbers (``ValueError``)."""
    return json.loads(text, parse_constant=_refuse_constant, parse_float=_finite_float)


def export_schemas(dest: Path) -> list[Path]:
    """Copy the JSON Schemas to ``dest`` (``results/schema/``) so tools outside bench can use them."""
    from bench.atomic import atomic_write_text

    dest.mkdir(parents=True, exist_ok=True)
    out = []
    for name in SCHEMA_FILES:
        path = dest / name
        atomic_write_text(path, resources.files(__package__).joinpath(name).read_text())
        out.append(path)
    return out
