"""Each task's conf/ is on Hydra's search path once, though the plugin is both scanned and registered."""
from hydra._internal.config_search_path_impl import ConfigSearchPathImpl
from hydra._internal.utils import create_config_search_path
from hydra.core.plugins import Plugins
from hydra.plugins.search_path_plugin import SearchPathPlugin

from bench.searchpath import BenchTasksSearchPath, register, task_conf_packages


def _task_paths(paths: list[str]) -> list[str]:
    return [p for p in paths if p.startswith("pkg://") and p[len("pkg://"):] in task_conf_packages()]


def test_the_scanned_and_registered_plugin_adds_each_task_conf_once():
    register()
    register()
    assert Plugins.instance().discover(SearchPathPlugin).count(BenchTasksSearchPath) == 1
    paths = _task_paths([element.path for element in create_config_search_path(None).get_path()])
    assert paths and sorted(paths) == sorted(set(paths)) == sorted(f"pkg://{p}" for p in task_conf_packages())


def test_the_plugin_adds_nothing_already_on_the_path():
    """Run twice (two registrations under different names, or a conf folder listed in hydra.searchpath)."""
    search_path = ConfigSearchPathImpl()
    search_path.append(provider="user", path=f"pkg://{task_conf_packages()[0]}")
    BenchTasksSearchPath().manipulate_search_path(search_path)
    BenchTasksSearchPath().manipulate_search_path(search_path)
    paths = _task_paths([element.path for element in search_path.get_path()])
    assert sorted(paths) == sorted(f"pkg://{p}" for p in task_conf_packages())
