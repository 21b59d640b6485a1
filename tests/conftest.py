"""Shared test fixtures: every test runs offline, in its own results root, on 1 CPU thread."""
from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
# One thread (before torch is imported): the `threads` default of every run a test starts, in this process
# or in a `bench` subprocess.
os.environ.setdefault("OMP_NUM_THREADS", "1")

CONF_DIR = Path(__file__).resolve().parent.parent / "bench" / "conf"  # the core groups; each task's are in its package


def conf_roots() -> list[Path]:
    """Every folder Hydra composes from: the core ``bench/conf`` and each discovered task's ``conf/``."""
    from importlib import import_module

    from bench.searchpath import task_conf_packages

    return [CONF_DIR, *(Path(import_module(package).__path__[0]) for package in task_conf_packages())]


@pytest.fixture(autouse=True)
def bench_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test writes results, caches and W&B files under its own temp root."""
    monkeypatch.setenv("BENCH_ROOT", str(tmp_path))
    monkeypatch.delenv("BENCH_RUN_ID", raising=False)
    return tmp_path


@pytest.fixture(scope="session", autouse=True)
def _config_schemas() -> None:
    """Each config group's defaults in Hydra's ConfigStore and each task's conf/ on the search path, as `bench`'s
    main() puts them before composing."""
    from bench.searchpath import register as register_search_path
    from bench.tasks import register_config_schemas

    register_config_schemas()
    register_search_path()


@pytest.fixture(scope="session", autouse=True)
def _one_thread() -> None:
    import torch

    torch.set_num_threads(1)


@pytest.fixture
def compose() -> Callable[[list[str]], object]:
    """Compose ``bench/conf/`` and every task's conf/ exactly as ``bench`` does, given command-line overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bench.searchpath import register as register_search_path
    from bench.tasks import register_config_schemas

    register_config_schemas()  # as bench.cli does: each group's defaults come from its dataclass
    register_search_path()  # and each task's conf/ on the search path

    def _compose(overrides: list[str] | None = None):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides or []))

    return _compose


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """End-to-end tests carry the ``integration`` marker (``pytest -m "not integration"``: the unit tier):
    every test of ``tests/suite/`` (bench processes, DDP, sweeps, faults) and each task's ``test_task.py``
    (its preset run end to end), besides the tests marked one by one."""
    suite = Path(__file__).resolve().parent / "suite"
    for item in items:
        path = Path(str(item.path)).resolve()
        if suite in path.parents or path.name == "test_task.py":
            item.add_marker(pytest.mark.integration)
