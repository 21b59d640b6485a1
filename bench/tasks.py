"""The task registry: each benchmark is a module with a ``run(cfg, run)`` entry point and
the config schemas of the groups it reads. The evaluator in :mod:`bench.cli` is generic.
"""
from __future__ import annotations

from dataclasses import dataclass
from importlib import import_module
from typing import Callable

from bench.errors import ConfigError


@dataclass(frozen=True)
class TaskSpec:
    """Where a task's entry point and config schemas live (imported lazily: tasks are heavy)."""
    name: str
    module: str  # exposes ``run(cfg, run)`` and ``SCHEMAS: dict[str, type]``

    def load(self) -> tuple[Callable, dict[str, type]]:
        mod = import_module(self.module)
        return mod.run, mod.SCHEMAS


TASKS: dict[str, TaskSpec] = {
    spec.name: spec for spec in [
        TaskSpec("whitening", "bench.whitening.task"),
        TaskSpec("modality_gap", "bench.modality_gap.task"),
        TaskSpec("shift", "bench.shift.task"),
    ]
}


def get_task(name: str) -> TaskSpec:
    """The registered task called ``name``; a clear error listing the choices otherwise."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(sorted(TASKS))}") from None
