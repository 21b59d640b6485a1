"""The task registry: tasks are found, not listed.

A task is a package with ``card.py`` (``CARD``: a :class:`bench.card.TaskCard`) and ``task.py``
(``run(ctx)``, ``ctx`` a :class:`bench.context.RunContext`, and ``SCHEMAS: dict[str, type]``), plus its
conf files. Three places are searched, in this order (a name found twice is an error):

1. every subpackage of ``bench`` that has a ``card`` module;
2. the ``bench.tasks`` entry points of installed distributions (value: the task package), e.g. in
   a plugin's pyproject.toml: ``[project.entry-points."bench.tasks"] mytask = "mypkg.mytask"``;
3. ``$BENCH_TASKS``: comma-separated importable task packages, for a
   package on ``sys.path`` that is not installed (e.g. the test suite's fixture task).

Cards are light (no torch); a task's ``task`` module is imported only when it runs.
The evaluator in :mod:`bench.cli` is generic.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from importlib import import_module
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from bench.card import TaskCard
from bench.claims import evaluate
from bench.errors import ConfigError

TASKS_ENV = "BENCH_TASKS"
ENTRY_POINT_GROUP = "bench.tasks"


@dataclass(frozen=True)
class Task:
    """A discovered task: its card and the package it lives in."""
    card: TaskCard
    package: str

    @property
    def name(self) -> str:
        return self.card.name

    def load(self) -> tuple[Callable, dict[str, type]]:
        """The task's ``run(ctx)`` and config ``SCHEMAS`` (imports the heavy task module)."""
        mod = import_module(f"{self.package}.task")
        return mod.run, mod.SCHEMAS

    def schemas(self) -> dict[str, type]:
        """The config ``SCHEMAS``, from the task's light ``config`` module when it has one, so that a
        command line is validated before torch is imported; else from ``task``."""
        name = f"{self.package}.config"
        try:
            return import_module(name).SCHEMAS
        except ModuleNotFoundError as e:
            if e.name != name:
                raise
        except AttributeError:
            pass
        return self.load()[1]


def _builtin_packages() -> list[str]:
    """Every folder of ``bench/`` holding a card.py (regular or namespace package)."""
    import bench

    return sorted(f"bench.{d.name}" for root in bench.__path__ for d in Path(root).iterdir()
                  if d.is_dir() and (d / "card.py").is_file())


def _plugin_packages() -> list[str]:
    return [ep.value for ep in entry_points(group=ENTRY_POINT_GROUP)]


def _env_packages() -> tuple[str, ...]:
    return tuple(p.strip() for p in os.environ.get(TASKS_ENV, "").split(",") if p.strip())


@cache
def _discover(extra: tuple[str, ...]) -> dict[str, Task]:
    found: dict[str, Task] = {}
    for package in [*_builtin_packages(), *_plugin_packages(), *extra]:
        try:
            card = import_module(f"{package}.card").CARD
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"task package {package!r} has no card ({e}); a task package needs card.py "
                              "defining CARD = TaskCard(...) (see docs/adding_a_task.md)") from None
        if not isinstance(card, TaskCard):
            raise ConfigError(f"{package}.card.CARD is a {type(card).__name__}, not a bench.card.TaskCard")
        if card.name in found and found[card.name].package != package:
            raise ConfigError(f"task {card.name!r} is defined twice: in {found[card.name].package} and {package}")
        found[card.name] = Task(card, package)
    return dict(sorted(found.items()))


def tasks() -> dict[str, Task]:
    """Every task found (see the module docstring), by name."""
    return _discover(_env_packages())


def task_names() -> list[str]:
    """The names of every task found, sorted."""
    return list(tasks())


def register_config_schemas() -> None:
    """Register every discovered task's config schemas with Hydra (before composing ``bench/conf/``)."""
    from bench.config import register_schemas

    register_schemas({name: get_task(name).schemas() for name in task_names()})


def get_task(name: str) -> Task:
    """The task called ``name``; a clear error listing the choices otherwise."""
    found = tasks()
    if name not in found:
        raise ConfigError(f"unknown task {name!r}; choose one of: {', '.join(found)} (a task outside bench/ "
                          f"registers through the {ENTRY_POINT_GROUP!r} entry point or ${TASKS_ENV})")
    return found[name]


def card_for(name: str) -> TaskCard | None:
    """The card of task ``name``, or None for a task that is not installed here."""
    task = tasks().get(name)
    return task.card if task else None


def record_claims(task: Task, run: Any) -> None:
    """Check the card's claims on the run's metrics and record the verdicts (run.json and W&B)."""
    preset = run.record["preset"]
    targeted = set(task.card.targeted(preset))
    verdicts = evaluate(task.card.claims, run.metrics, task.card.min_items(preset))
    run.set_claims([v.as_record(targeted=v.claim in targeted) for v in verdicts])
