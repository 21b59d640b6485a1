"""Every config composes and validates; bad input fails at start with a message naming the key."""
import dataclasses
import enum
import subprocess
import sys
import types
import typing
from pathlib import Path

import pytest

from bench.cli import execute
from bench.config import ModelConfig, validate
from bench.errors import ConfigError
from bench.tasks import get_task, task_names

from tests.conftest import CONF_DIR, conf_roots


def _options(group: str) -> list[str]:
    """A group's options over every conf folder (core and tasks')."""
    return sorted(str(p.relative_to(root / group).with_suffix("")) for root in conf_roots()
                  for p in (root / group).rglob("*.yaml"))


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes_and_validates(compose, experiment):
    cfg = compose([f"experiment={experiment}"])
    _, schemas = get_task(cfg.task.name).load()
    validate(cfg, schemas)


@pytest.mark.parametrize("group", ["trainer", "logger", "paths", "data"])
def test_every_group_option_composes(compose, group):
    for option in _options(group):
        cfg = compose(["task=whitening", f"{group}={option}"])
        _, schemas = get_task(cfg.task.name).load()
        validate(cfg, schemas)


def _registry() -> list[str]:
    from bench.models import list_models

    return list_models()


@pytest.mark.parametrize("name", _registry())
def test_every_registered_model_is_a_model_option(compose, name):
    """``model=<name>`` for every registry name (in the first task that reads the model group)."""
    task = next(t for t in task_names() if get_task(t).schemas().get("model") is ModelConfig)
    cfg = compose([f"task={task}", f"model={name}"])
    assert validate(cfg, get_task(task).schemas()).model.name == name


def test_the_model_options_are_the_registrys_names(compose):
    """Hydra lists (help, errors, ``model=glob(*)``) the registry's names; no YAML file repeats one."""
    from hydra import initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    compose(["task=whitening"])  # registers the schemas and the search path, as main() does
    with initialize_config_dir(config_dir=str(CONF_DIR), version_base="1.3"):
        options = GlobalHydra.instance().config_loader().get_group_options("model")
    assert sorted(set(options) - {"schema"}) == _registry()
    assert not _options("model"), "a name-only model YAML repeats the registry"


@pytest.mark.parametrize("task", task_names())
def test_every_task_composes(compose, task):
    cfg = compose([f"task={task}"])
    assert cfg.task.name == task
    validate(cfg, get_task(task).load()[1])


def test_typo_in_a_key_names_the_key(compose):
    cfg = compose(["task=whitening", "+trainer.max_epoch=3"])
    with pytest.raises(ConfigError, match="max_epoch"):
        validate(cfg, get_task("whitening").load()[1])


def test_wrong_type_names_the_key(compose):
    cfg = compose(["task=whitening", "trainer.max_epochs=lots"])
    with pytest.raises(ConfigError, match="max_epochs"):
        validate(cfg, get_task("whitening").load()[1])


KEY = "<key>"  # a path's last part when the choices are a dict's keys


def _choices(tp, path: tuple) -> list[tuple[tuple, type]]:
    """(path, Enum) of every choice field under a field of type ``tp``: lists and dicts entered at one
    entry (index 0, key ``x``), Optional unwrapped; a dict keyed by choices gives (``(*path, KEY)``, Enum)."""
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        return [c for a in args for c in _choices(a, path)]
    if origin is list:
        return _choices(args[0], (*path, 0))
    if origin is dict:
        keys = [((*path, KEY), args[0])] if isinstance(args[0], type) and issubclass(args[0], enum.Enum) else []
        return keys + _choices(args[1], (*path, "x"))
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return [(path, tp)]
    if dataclasses.is_dataclass(tp):
        return [c for name, t in typing.get_type_hints(tp).items() for c in _choices(t, (*path, name))]
    return []


def _choice_fields() -> list:
    """One case per choice field of every schema (a shared group's once), with the task that reads it."""
    from bench.config import SHARED_SCHEMAS

    seen, cases = set(), []
    for task in task_names():
        for group, schema in {**SHARED_SCHEMAS, **get_task(task).schemas()}.items():
            for path, choices in _choices(schema, (group,)):
                key = (task if group == "task" else "", path)
                if key not in seen:
                    seen.add(key)
                    cases.append(pytest.param(task, path, choices, id=".".join(map(str, path)) + f"@{task}"))
    return cases


def _override(path: tuple, value: str) -> tuple[str, str]:
    """The command-line override that puts ``value`` at ``path``, and the key an error names: a path
    through a list or a dict sets that field whole (``task.variants=[{loss: bogus}]``)."""
    cut = next((i for i, p in enumerate(path) if isinstance(p, int) or p == "x"), len(path))
    node = value
    for part in reversed(path[cut + 1:]):
        node = f"{{{part}: {node}}}"
    if cut < len(path):
        node = f"[{node}]" if isinstance(path[cut], int) else f"{{x: {node}}}"
    named = ".".join(map(str, path[:cut])) + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path[cut:])
    return f"++{'.'.join(map(str, path[:cut]))}={node}", named


@pytest.mark.parametrize(("task", "path", "choices"), _choice_fields())
def test_a_bad_choice_is_one_error_line_naming_the_choices(compose, task, path, choices):
    """Every value set is an Enum in its schema: a value outside it fails validation with one line
    naming the key and every allowed value (the line `bench` prints after ``bench: error:``)."""
    if path[-1] == KEY:
        field = ".".join(path[:-1])
        override, start = f"++{field}={{bogus: [1]}}", f"{field}.bogus: the key bogus is not a choice; use one of "
    else:
        override, named = _override(path, "bogus")
        start = f"{named}=bogus: use one of "
    cfg = compose([f"task={task}", override])
    with pytest.raises(ConfigError) as e:
        validate(cfg, get_task(task).schemas())
    message = str(e.value)
    assert "\n" not in message and message.startswith(start), message
    assert ", ".join(c.value for c in choices) in message, message


def test_a_choice_that_reads_as_a_boolean_says_to_quote_it(compose):
    """``data.labels=true`` on the command line is YAML's boolean, not the choice ``true``."""
    with pytest.raises(ConfigError, match=r"^data.labels=True: use one of true, random \(a choice that reads as a "
                                          r"boolean is quoted: data.labels='true'\)$"):
        validate(compose(["task=whitening", "data.labels=true"]), get_task("whitening").schemas())
    assert validate(compose(["task=whitening", "data.labels='true'"]), get_task("whitening").schemas()).data.labels == "true"


def test_choice_fields_cover_every_task():
    """The parametrised test above sees the value sets of the shared groups and of each task."""
    fields = {(task, ".".join(map(str, path))) for task, path, _ in (p.values for p in _choice_fields())}
    assert {"logger.mode", "data.labels"} <= {f for _, f in fields}
    assert {task for task, f in fields if f.startswith("task.")} == set(task_names()), fields


def test_unknown_task_lists_the_choices(compose):
    cfg = compose(["task=whitening", "task.name=whitenin"])
    with pytest.raises(ConfigError, match="unknown task 'whitenin'.*whitening"):
        execute(cfg)


def test_a_command_without_a_task_names_the_presets_and_the_tasks():
    """``task: ???``: bench runs no task by default; a task, a preset or one of Hydra's own flags passes."""
    from bench.config import no_task_problem

    presets = {"a": "a/embedded", "b": "b/embedded"}
    for argv in ([], ["seed=1"], ["-m", "seed=0,1"], ["model=vgg11", "trainer=gpu"], ["--help"], ["--cfg", "job"]):
        assert no_task_problem(argv, presets) == ("no task given: run a preset, bench experiment=<task>/embedded "
                                                  "(a/embedded, b/embedded), or pick a task, bench task=<task> ... "
                                                  "(a, b)"), argv
    for argv in (["task=a"], ["-m", "experiment=b/embedded", "seed=0,1"], ["+task=a"], ["-cn", "mine"],
                 ["--config-dir=mine"], ["--hydra-help"]):
        assert no_task_problem(argv, presets) is None, argv


@pytest.mark.integration
def test_a_bare_bench_is_one_error_line(tmp_path):
    bench = Path(sys.executable).parent / "bench"
    res = subprocess.run([str(bench)], capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert res.returncode == 2 and res.stdout == "", res.stderr[-2000:]
    assert res.stderr.startswith("bench: error: no task given: run a preset, bench experiment=<task>/embedded (")
    assert len(res.stderr.splitlines()) == 1 and "task=<task>" in res.stderr


@pytest.mark.integration
def test_cli_bad_override_fails_cleanly(tmp_path):
    """Through the real console script: one clear line, exit code 2, no traceback."""
    bench = Path(sys.executable).parent / "bench"
    res = subprocess.run([str(bench), "task=whitening", "model.name=resnet9000", "logger=none", "trainer.fast_dev_run=true"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stderr[-2000:]
    assert "bench: error: unknown model 'resnet9000'" in res.stderr
    assert "Traceback" not in res.stderr


@pytest.mark.integration
def test_cli_missing_data_root_names_the_fix(tmp_path):
    bench = Path(sys.executable).parent / "bench"
    res = subprocess.run([str(bench), "task=whitening", "data=cifar10", f"data.root={tmp_path / 'nowhere'}", "logger=none"],
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
    assert checked > 30 and not repeats, repeats
    cfg = compose(["task=shift", "trainer.deterministic=true", "generator.train.optim.lr=0.01"])  # keys only in schemas
    assert cfg.trainer.deterministic is True and cfg.generator.train.optim.lr == 0.01 and cfg.trainer.max_epochs == 1
