"""Fixtures of the suite tests: composing with the ``hydra`` node (launcher, sweep dirs) included."""
from __future__ import annotations

from collections.abc import Callable

import pytest

from tests.conftest import CONF_DIR


@pytest.fixture
def compose_hydra() -> Callable[[list[str]], object]:
    """Like ``compose`` but keeps ``cfg.hydra`` (resolvable launcher and sweep settings)."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from bench.tasks import register_config_schemas

    register_config_schemas()

    def _compose(overrides: list[str] | None = None):
        with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
            return hydra_compose(config_name="config", overrides=list(overrides or []), return_hydra_config=True)

    return _compose
