"""Where Hydra finds configs: bench's core groups (``bench/conf/``) and every discovered task's own
folder (``<task package>/conf/``), so that a task is one folder and a wheel install carries its configs.

The plugin is found by Hydra's scan of the ``hydra_plugins`` namespace (``hydra_plugins/bench_tasks``)
and registered again by :func:`register`, which ``bench``'s ``main()`` calls: an editable install maps
only ``bench`` onto ``sys.path``, so the scan alone would miss it there. Both name the same class (Hydra
keeps one entry per class), and the plugin adds a folder only when the path lacks it, so a task's conf/
is on the search path once however often the plugin runs or is listed (``hydra.searchpath`` too).
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

CONF_DIR = str(Path(__file__).resolve().parent / "conf")


def task_conf_packages() -> list[str]:
    """``<package>.conf`` of every discovered task that ships a conf folder (built-in, plugin or $BENCH_TASKS)."""
    from bench.tasks import tasks

    return [f"{task.package}.conf" for task in tasks().values() if files(task.package).joinpath("conf").is_dir()]


class BenchTasksSearchPath(SearchPathPlugin):
    """Adds ``pkg://<task package>.conf`` for every task that :mod:`bench.tasks` discovers."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        present = {element.path for element in search_path.get_path()}
        for package in task_conf_packages():
            if f"pkg://{package}" not in present:
                search_path.append(provider="bench-tasks", path=f"pkg://{package}")


def register() -> None:
    """Make Hydra use :class:`BenchTasksSearchPath` (idempotent), whether or not its scan found it."""
    Plugins.instance().register(BenchTasksSearchPath)
