"""Every config composes and validates; bad input fails at start with a message naming the key."""
import subprocess
import sys
from pathlib import Path

import pytest

from bench.cli import execute
from bench.config import validate
from bench.errors import ConfigError
from bench.tasks import get_task, task_names

from tests.conftest import conf_roots


def _options(group: str) -> list[str]:
    """A group's options over every conf folder (core and tasks')."""
    return sorted(str(p.relative_to(root / group).with_suffix("")) for root in conf_roots()
                  for p in (root / group).rglob("*.yaml"))


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes_and_validates(compose, experiment):
    cfg = compose([f"experiment={experiment}"])
    _, schemas = get_task(cfg.task.name).load()
    validate(cfg, schemas)


@pytest.mark.parametrize("group", ["trainer", "logger", "paths", "data", "model"])
def test_every_group_option_composes(compose, group):
    for option in _options(group):
        cfg = compose([f"{group}={option}"])
        _, schemas = get_task(cfg.task.name).load()
        validate(cfg, schemas)


@pytest.mark.parametrize("task", task_names())
def test_every_task_composes(compose, task):
    cfg = compose([f"task={task}"])
    assert cfg.task.name == task
    validate(cfg, get_task(task).load()[1])


def test_typo_in_a_key_names_the_key(compose):
    cfg = compose(["+trainer.max_epoch=3"])
    with pytest.raises(ConfigError, match="max_epoch"):
        validate(cfg, get_task("whitening").load()[1])


def test_wrong_type_names_the_key(compose):
    cfg = compose(["trainer.max_epochs=lots"])
    with pytest.raises(ConfigError, match="max_epochs"):
        validate(cfg, get_task("whitening").load()[1])


def test_unknown_task_lists_the_choices(compose):
    cfg = compose(["task.name=whitenin"])
    with pytest.raises(ConfigError, match="unknown task 'whitenin'.*whitening"):
        execute(cfg)


@pytest.mark.integration
def test_cli_bad_override_fails_cleanly(tmp_path):
    """Through the real console script: one clear line, exit code 2, no traceback."""
    bench = Path(sys.executable).parent / "bench"
    res = subprocess.run([str(bench), "model.name=resnet9000", "logger=none", "trainer.fast_dev_run=true"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "bench: error: unknown model 'resnet9000'" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_cli_missing_data_root_names_the_fix(tmp_path):
    bench = Path(sys.executable).parent / "bench"
    res = subprocess.run([str(bench), "data=cifar10", f"data.root={tmp_path / 'nowhere'}", "logger=none"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    assert "cifar10 not found under" in res.stderr and "data.root" in res.stderr
    assert "Traceback" not in res.stderr


def _hash(cfg) -> str:
    from omegaconf import OmegaConf

    from bench.provenance import config_hash

    return config_hash(OmegaConf.to_container(validate(cfg, get_task(cfg.task.name).load()[1]), resolve=True))


def test_a_tasks_unused_groups_never_enter_its_config_or_hash(compose):
    """data/model belong to whitening and shift, clip/zeroshot to modality_gap, generator to shift."""
    groups = {"whitening": {"data", "model"}, "modality_gap": {"clip", "zeroshot"}, "shift": {"generator", "model"}}
    for task, own in groups.items():
        cfg = compose([f"task={task}"])
        assert own <= set(cfg) and not (set().union(*groups.values()) - own) & set(cfg), (task, sorted(cfg))
    base = _hash(compose(["experiment=modality_gap/embedded"]))
    for extra in (["+data=cifar10"], ["+model=vgg11"], ["+data=mnist", "+model=resnet50", "data.batch_size=7"]):
        assert _hash(compose(["experiment=modality_gap/embedded", *extra])) == base, extra
    assert _hash(compose(["task=whitening", "data=mnist"])) != _hash(compose(["task=whitening"]))


def _leaves(node, path=()):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    else:
        yield path, node


def test_yaml_only_overrides_the_schema_defaults(compose):
    """One source of defaults: the dataclasses (registered with Hydra as each group's ``schema``);
    no group option or task file repeats a schema default, and every file composes."""
    import yaml

    from bench.config import SHARED_SCHEMAS, schema_defaults

    schemas = {f"{group}/*": s for group, s in SHARED_SCHEMAS.items()}
    for task in task_names():
        for group, schema in get_task(task).schemas().items():
            schemas[f"task/{task}" if group == "task" else f"{group}/*"] = schema
    repeats, checked = [], 0
    for pattern, schema in schemas.items():
        defaults = schema_defaults(schema)
        for root, path in sorted((root, p) for root in conf_roots() for p in root.glob(f"{pattern}.yaml")):
            checked += 1
            raw = yaml.safe_load(path.read_text()) or {}
            raw.pop("defaults", None)
            for key, value in _leaves(raw):
                default = defaults
                for k in key:
                    default = default.get(k, KeyError) if isinstance(default, dict) else KeyError
                if default is not KeyError and value == default and not (isinstance(value, str) and "${" in value):
                    repeats.append(f"{path.relative_to(root)}: {'.'.join(key)}={value!r}")
    assert checked > 40 and not repeats, repeats
    cfg = compose(["task=shift", "trainer.deterministic=true", "generator.train.optim.lr=0.01"])  # keys only in schemas
    assert cfg.trainer.deterministic is True and cfg.generator.train.optim.lr == 0.01 and cfg.trainer.max_epochs == 1
