"""The results schema, version 1: the contract between every task and the leaderboard.

Two JSON Schemas live beside this file: ``run.schema.json`` (one ``run.json`` per run)
and ``metric.schema.json`` (one row of ``metrics.jsonl``). Every write and every read
goes through :func:`validate_run` / :func:`validate_metric`.
"""
from __future__ import annotations

import json
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema

SCHEMA_VERSION = 1
SCHEMA_FILES = ("run.schema.json", "metric.schema.json")


class SchemaError(ValueError):
    """A run record or metric row does not follow results schema v1."""


@cache
def _validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads(resources.files(__package__).joinpath(name).read_text())
    return jsonschema.Draft202012Validator(schema)


def _validate(name: str, obj: Any, what: str) -> None:
    errors = sorted(_validator(name).iter_errors(obj), key=lambda e: list(e.path))
    if errors:
        lines = [f"{'/'.join(map(str, e.path)) or '<root>'}: {e.message}" for e in errors[:5]]
        raise SchemaError(f"{what} violates {name}:\n  " + "\n  ".join(lines))


def validate_run(record: dict, what: str = "run.json") -> None:
    """Raise :class:`SchemaError` naming every offending key if ``record`` is not a valid run.json."""
    _validate("run.schema.json", record, what)


def validate_metric(row: dict, what: str = "metric row") -> None:
    """Raise :class:`SchemaError` if ``row`` is not a valid metrics.jsonl row."""
    _validate("metric.schema.json", row, what)


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
