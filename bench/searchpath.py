"""Where Hydra finds configs: bench's core groups (``bench/conf/``), every discovered task's own
folder (``<task package>/conf/``), so that a task is one folder and a wheel install carries its configs,
and the ``model`` group's options, which are the model registry's names (:class:`RegistryModels`).

The plugin is found by Hydra's scan of the ``hydra_plugins`` namespace (``hydra_plugins/bench_tasks``)
and registered again by :func:`register`, which ``bench``'s ``main()`` calls: an editable install maps
only ``bench`` onto ``sys.path``, so the scan alone would miss it there. Both name the same class (Hydra
keeps one entry per class), and the plugin adds a folder only when the path lacks it, so a task's conf/
is on the search path once however often the plugin runs or is listed (``hydra.searchpath`` too).
"""
from __future__ import annotations

from importlib.resources import files
from pathlib import Path
from typing import Optional

from hydra.core.config_search_path import ConfigSearchPath
from hydra.core.object_type import ObjectType
from hydra.core.plugins import Plugins
from hydra.plugins.config_source import ConfigResult, ConfigSource
from hydra.plugins.search_path_plugin import SearchPathPlugin
from omegaconf import OmegaConf

from bench.config import SCHEMA_OPTION

CONF_DIR = str(Path(__file__).resolve().parent / "conf")
MODEL_GROUP = "model"


def task_conf_packages() -> list[str]:
    """``<package>.conf`` of every discovered task that ships a conf folder (built-in, plugin or $BENCH_TASKS)."""
    from bench.tasks import tasks

    return [f"{task.package}.conf" for task in tasks().values() if files(task.package).joinpath("conf").is_dir()]


class RegistryModels(ConfigSource):
    """The ``model`` group's options: every name of bench's model registry (``model=vgg11_bn``), kept
    in no file that would repeat it.

    ``model/<name>`` is ``{name: <name>}`` on the group's ``schema`` defaults (:class:`bench.config.ModelConfig`)
    for any name, so that composing a config never imports torch (a config error stays about a second); a
    name the registry lacks is then one ``bench: error`` line listing the registry's names, before any
    work (``bench.cli``). Listing the options (Hydra's ``--help``, its errors, ``model=glob(*)`` sweeps)
    reads the registry itself."""

    @staticmethod
    def scheme() -> str:
        return "bench-models"

    @staticmethod
    def _name(config_path: str) -> str | None:
        group, _, name = config_path.rstrip("/").removesuffix(".yaml").partition("/")
        return name if group == MODEL_GROUP and name and "/" not in name and name != SCHEMA_OPTION else None

    def load_config(self, config_path: str) -> ConfigResult:
        node = OmegaConf.create({"defaults": [SCHEMA_OPTION, "_self_"], "name": self._name(config_path)})
        return ConfigResult(config=node, path=f"{self.scheme()}://", provider=self.provider, header={"package": None})

    def available(self) -> bool:
        return True

    def is_group(self, config_path: str) -> bool:
        return config_path.rstrip("/") == MODEL_GROUP

    def is_config(self, config_path: str) -> bool:
        return self._name(config_path) is not None

    def list(self, config_path: str, results_filter: Optional[ObjectType]) -> list[str]:
        if not self.is_group(config_path) or results_filter not in (None, ObjectType.CONFIG):
            return []
        from bench.models import list_models  # the registry (imports torch): only to list the names

        return list_models()


class BenchTasksSearchPath(SearchPathPlugin):
    """Adds ``pkg://<task package>.conf`` for every task that :mod:`bench.tasks` discovers, and the
    registry's ``model`` options."""

    def manipulate_search_path(self, search_path: ConfigSearchPath) -> None:
        present = {element.path for element in search_path.get_path()}
        for package in task_conf_packages():
            if f"pkg://{package}" not in present:
                search_path.append(provider="bench-tasks", path=f"pkg://{package}")
        if f"{RegistryModels.scheme()}://" not in present:
            search_path.append(provider="bench-models", path=f"{RegistryModels.scheme()}://")


def register() -> None:
    """Make Hydra use :class:`BenchTasksSearchPath` and :class:`RegistryModels` (idempotent), whether or
    not its scan found them."""
    Plugins.instance().register(RegistryModels)
    Plugins.instance().register(BenchTasksSearchPath)
