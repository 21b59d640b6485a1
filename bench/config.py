"""Structured config schemas: the composed Hydra config is checked against these at start-up.

Hydra composes ``bench/conf/`` and each task's ``conf/``; :func:`validate` then merges each top-level group into its
dataclass schema, so a misspelt key or a wrong type fails before any work with a
message naming the key (``trainer.max_epoch: not a key of TrainerConfig``). A setting with a fixed
set of values is a ``StrEnum`` whose member names are its values (OmegaConf reads a member by name; a
member compares, hashes and serialises as its string), so a value outside the set fails the same way,
naming the choices (``task.loss=l1: use one of ce, mse``). Each task registers the schemas of the groups
it reads (see :mod:`bench.tasks`).
"""
from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench.config_errors import explain
from bench.errors import ConfigError

log = logging.getLogger("bench")


#: Lightning's and numpy's seeds are 32-bit: ``seed`` must lie in ``[0, SEED_LIMIT)``.
SEED_LIMIT = 2**32


@dataclass
class RunConfig:
    """The top-level settings beside the groups. ``threads`` is config, not the machine's load: the CPU
    threads torch and BLAS compute with (their count changes the order of float sums, hence the bits of
    every result); null resolves to :func:`default_threads` and the resolved number is what is recorded
    and hashed."""
    seed: int = 0
    threads: Optional[int] = None
    skip_existing: Optional[bool] = None  # null: skip a completed config inside a multirun only
    run_name: Optional[str] = None


#: Hydra flags after which a command line need not name a task: another primary config (which may pick
#: one), or output that composes no config. (``--help``, ``--cfg`` and ``--info`` compose one: they need a task.)
NO_TASK_FLAGS = ("--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd", "--hydra-help", "--version",
                 "--shell-completion", "-sc")


def no_task_problem(argv: list[str], presets: dict[str, str]) -> str | None:
    """Why a command line runs nothing (``task: ???`` in ``bench/conf/config.yaml``: a bare ``bench``
    picks no task), naming the fix; None when it names a task or a preset, or passes one of
    :data:`NO_TASK_FLAGS`. ``presets``: task -> its embedded preset."""
    if any(arg.lstrip("+").partition("=")[0] in ("task", "experiment") for arg in argv) or \
            any(arg.partition("=")[0] in NO_TASK_FLAGS for arg in argv):
        return None
    return (f"no task given: run a preset, bench experiment=<task>/embedded ({', '.join(presets.values())}), "
            f"or pick a task, bench task=<task> ... ({', '.join(presets)})")


def default_threads(environ: os._Environ | dict = os.environ) -> int:
    """``OMP_NUM_THREADS`` when the user set it to a positive integer, else the cores this process may use
    (its CPU affinity), never the load: the same machine and config give the same count at any load."""
    value = str(environ.get("OMP_NUM_THREADS", "")).strip()
    if value.isdigit() and int(value) > 0:
        return int(value)
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


@dataclass
class PathsConfig:
    root_dir: str
    results_dir: str
    data_dir: str
    cache_dir: str
    log_dir: str
    wandb_dir: str


class LoggerMode(StrEnum):
    """W&B's mode: ``offline`` (files only, synced later with ``wandb sync``), ``online``, ``disabled``."""
    offline = "offline"
    online = "online"
    disabled = "disabled"


@dataclass
class LoggerConfig:
    mode: LoggerMode = LoggerMode.offline
    project: str = "bench"
    group: Optional[str] = None
    tags: list[str] = field(default_factory=list)


@dataclass
class CacheConfig:
    """The verified cache (:mod:`bench.cache`): ``strict`` makes a failed sha256 check an error, not a rebuild."""
    strict: bool = False


@dataclass
class TrainerConfig:
    """The subset of ``lightning.Trainer`` arguments bench exposes (one place to change them); built by
    ``hydra.utils.instantiate`` in :func:`bench.training.build_trainer`, the one Trainer factory."""
    _target_: str = "lightning.Trainer"
    accelerator: str = "cpu"
    devices: Any = 1
    num_nodes: int = 1
    strategy: str = "auto"
    precision: str = "32-true"
    sync_batchnorm: bool = False  # BatchNorm statistics over all processes (DDP), not each one's shard
    max_epochs: int = 1
    max_steps: int = -1
    fast_dev_run: Any = False  # true, or a number of batches (Lightning takes both)
    deterministic: bool = False
    gradient_clip_val: Optional[float] = None
    log_every_n_steps: int = 10
    enable_progress_bar: bool = True
    limit_train_batches: Optional[float] = None
    num_sanity_val_steps: int = 0
    checkpoint_every_n_steps: Optional[int] = None  # resumable trainings save after each epoch, and every N steps


@dataclass
class OptimConfig:
    """An optimizer, built by ``hydra.utils.instantiate`` as a partial (the parameters come at
    training time) in :func:`bench.training.build_optimizer`: ``_target_`` is any
    ``torch.optim.Optimizer``; the other keys are its arguments. ``momentum`` is SGD's: an optimizer
    without one (AdamW) takes it only at 0."""
    _target_: str = "torch.optim.SGD"
    _partial_: bool = True
    lr: float = 0.01
    momentum: float = 0.0
    weight_decay: float = 0.0


@dataclass
class SchedulerConfig:
    """A learning-rate scheduler stepped after every optimizer step, built by ``hydra.utils.instantiate``
    as a partial in :func:`bench.training.build_scheduler`. These keys are the defaults of an open node
    (:data:`SchedulerNode`): any argument of ``_target_`` may be added (OneCycleLR's ``max_lr``,
    ``pct_start``), checked against the scheduler's signature when it is built, and a key here that the
    target does not take is left out at null/0. Filled in at build time: ``T_max: null`` and
    ``total_steps: null`` are the run's number of optimizer steps (cosine decay to ``eta_min`` over the
    whole training), ``max_lr: null`` the optimizer's learning rate."""
    _target_: str = "torch.optim.lr_scheduler.CosineAnnealingLR"
    _partial_: bool = True
    T_max: Optional[int] = None
    eta_min: float = 0.0


#: A scheduler field in a task schema: open (an untyped dict: a scheduler's arguments differ), ``None``
#: a constant rate; its defaults are :class:`SchedulerConfig`'s.
SchedulerNode = Optional[dict[str, Any]]


class Labels(StrEnum):
    """An image dataset's targets: its ``true`` labels or one fixed ``random`` permutation of them."""
    true = "true"
    random = "random"


@dataclass
class ImageDataConfig:
    """An image-classification dataset (see :mod:`bench.data`)."""
    _target_: str = "bench.data.datamodule.ImageDataModule"
    name: str = "embedded_photos"
    root: Optional[str] = None
    labels: Labels = Labels.true
    image_size: int = 32
    pool: int = 1  # average each image over pool x pool pixel blocks after loading (28x28 -> 14x14 at 2)
    n_train: Optional[int] = None
    n_test: Optional[int] = None
    n_val: int = 0  # validation images carved from the training split (0: no validation)
    batch_size: int = 256
    num_workers: int = 0
    download: bool = False
    normalize: bool = True
    classes: Optional[list[int]] = None  # keep only these classes (binary subsets)
    attribute: str = "Smiling"  # data=celeba: the attribute used as the (binary) label


@dataclass
class ModelConfig:
    """A model from the registry (see :mod:`bench.models`)."""
    _target_: str = "bench.models.create_model"
    name: str = "resnet20"
    width: float = 1.0
    weights: Optional[str] = None  # a local state-dict path, or 'torchvision' for the library's weights
    kwargs: dict[str, Any] = field(default_factory=dict)


def _check(node: DictConfig, schema: type, key: str) -> DictConfig:
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), node)
    except OmegaConfBaseException as e:
        raise ConfigError(explain(e, node, schema, key)) from None
    return merged


SHARED_SCHEMAS = {"paths": PathsConfig, "logger": LoggerConfig, "trainer": TrainerConfig, "cache": CacheConfig}
SCHEMA_OPTION = "schema"  # <group>/schema, and task/<task>_schema for each task's own group


def schema_defaults(schema: type) -> dict[str, Any]:
    """A dataclass schema's defaults as a plain dict (unset fields are ``???``; a choice is its name)."""
    return OmegaConf.to_container(OmegaConf.structured(schema), enum_to_str=True)


def schema_node(cfg: Any, schema: type) -> dict[str, Any]:
    """``cfg`` (a dict or DictConfig, possibly partial) merged onto ``schema``'s defaults, as a plain dict:
    the node a factory instantiates (model, optimizer, scheduler)."""
    return OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(schema), cfg or {}))


def register_schemas(schemas_by_task: dict[str, dict[str, type]]) -> None:
    """Put each config group's defaults into Hydra's ConfigStore, from its dataclass: the one source.

    A group's YAML options start their defaults list with ``schema`` (a task's own file with
    ``<task>_schema``) and hold only what differs (the ``model`` group's options are the registry's
    names: :mod:`bench.searchpath`). They are stored as plain dicts, not typed nodes, so a wrong type
    still reaches :func:`validate` (one ``bench: error`` line naming the key and the expected type, or
    the choices) instead of failing inside Hydra's composition."""
    from hydra.core.config_store import ConfigStore

    store = ConfigStore.instance()
    groups = dict(SHARED_SCHEMAS)
    for task, schemas in schemas_by_task.items():
        for group, schema in schemas.items():
            if group == "task":
                store.store(group="task", name=f"{task}_{SCHEMA_OPTION}", node=schema_defaults(schema))
            elif groups.setdefault(group, schema) is not schema:
                raise ConfigError(f"task {task} declares {schema.__name__} for config group '{group}', "
                                  f"which another task declares as {groups[group].__name__}")
    for group, schema in groups.items():
        store.store(group=group, name=SCHEMA_OPTION, node=schema_defaults(schema))


def validate(cfg: DictConfig, schemas: dict[str, type]) -> DictConfig:
    """Check every group named in ``schemas`` (plus the shared ones); return the typed config.

    A config group the task does not read (``data`` added to a task without a ``data`` schema) is left out,
    with a warning, so it never enters the run's config or ``config_hash``."""
    all_schemas = {**SHARED_SCHEMAS, **schemas}
    out = OmegaConf.to_container(cfg, resolve=False)
    unread = sorted(k for k, v in out.items() if isinstance(v, dict) and k not in all_schemas and k != "hydra")
    if unread:
        log.warning("task %s does not read config group(s) %s: left out of its config and config_hash",
                    cfg.task.name, ", ".join(unread))
        out = {k: v for k, v in out.items() if k not in unread}
    checked = OmegaConf.create(out)
    top = _check(OmegaConf.create({f.name: out.get(f.name) for f in dataclasses.fields(RunConfig)
                                   if f.name in out}), RunConfig, "")
    for key, schema in all_schemas.items():
        if key not in cfg or cfg[key] is None:
            raise ConfigError(f"config is missing the '{key}' group; add '{key}=<option>' to the command")
        checked[key] = _check(cfg[key], schema, key)
    try:
        OmegaConf.resolve(checked)
    except OmegaConfBaseException as e:
        raise ConfigError(f"config does not resolve: {str(e).splitlines()[0]}") from None
    for name, value in OmegaConf.to_container(top).items():
        checked[name] = value
    if checked.threads is None:
        checked.threads = default_threads()
    _check_ranges(OmegaConf.to_container(checked))
    return checked


def _check_ranges(config: dict) -> None:
    """Values the types allow but nothing can run with: one :class:`ConfigError` naming the fix, before any work."""
    if not 0 <= config["seed"] < SEED_LIMIT:
        raise ConfigError(f"seed={config['seed']} is out of range; use an integer in [0, {SEED_LIMIT - 1}]")
    if config["threads"] < 1:
        raise ConfigError(f"threads={config['threads']}: use a positive number of CPU threads (or threads=null: "
                          f"the cores this process may use, {default_threads({})})")
    for key, value in _batch_sizes(config):
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            raise ConfigError(f"{key}={value}: a batch size is a positive integer (examples per batch, per "
                              "process under DDP); set it to e.g. 64")


def _batch_sizes(node: Any, key: str = "") -> list[tuple[str, Any]]:
    """Every ``batch_size`` in a config (``data.batch_size``, a variant's, a training recipe's), with its key."""
    if isinstance(node, dict):
        return [pair for k, v in node.items() if k != "hydra"
                for pair in ([(f"{key}{k}", v)] if k == "batch_size" else _batch_sizes(v, f"{key}{k}."))]
    if isinstance(node, list):
        return [pair for i, v in enumerate(node) for pair in _batch_sizes(v, f"{key[:-1]}[{i}].")]
    return []
