"""The ``bench`` command: one Hydra app for every task.

    bench task=<task> model=vgg11 data=cifar10           # one run (tasks: bench.tasks.task_names())
    bench -m experiment=<task>/embedded seed=0,1,2         # a sweep (re-running it skips finished jobs)
    bench experiment=<task>/embedded trainer=ddp           # DDP over every visible GPU of one node

Compose -> validate against the schemas -> skip if already completed -> record a Run
around the task's ``run(ctx)`` (:class:`bench.context.RunContext`).

Hydra and DDP: a DDP job's child ranks re-run its own job (:mod:`bench.ddp`).
"""
from __future__ import annotations

import errno
import logging
import os
import signal
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from bench.ddp import check_launchable, ddp_child_argv, ddp_job_scope, n_devices
from bench.errors import BenchError
from bench.searchpath import CONF_DIR, register as register_search_path
from bench.config import no_task_problem
from bench.tasks import register_config_schemas, tasks

log = logging.getLogger("bench")


def _hydra_context() -> tuple[list[str], dict | None, str | None]:
    """The command-line overrides, which sweep job this is (inside a multirun), and the job's output dir."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return [], None, None
    hc = HydraConfig.get()
    sweep = None
    if hc.mode.name == "MULTIRUN":
        sweep = {"name": sweep_name(hc.sweep.dir), "dir": str(hc.sweep.dir),
                 "job_num": int(hc.job.num), "job_id": str(hc.job.id), "output_dir": hc.runtime.output_dir}
    return list(hc.overrides.task), sweep, hc.runtime.output_dir


def sweep_name(sweep_dir: str) -> str:
    """A sweep's name (its W&B group): the sweep directory below the log dir, e.g. ``<task>/multirun_<time>``."""
    path = Path(sweep_dir)
    return f"{path.parent.name}/{path.name}" if path.parent.name else path.name


def execute(cfg: DictConfig, overrides: list[str] | None = None) -> Path | None:
    """Run the task described by a composed config; return its run directory (``None``: another
    process is running this very config right now)."""
    from bench.config import validate
    from bench.lock import config_lock
    from bench.provenance import config_hash, git_state, hardware, versions
    from bench.store import RUN_ID_ENV, Run, find_completed, is_rank_zero, new_run_id
    from bench.tasks import get_task, record_claims

    task = get_task(cfg.task.name)
    schemas = task.schemas()
    cfg = validate(cfg, schemas)  # before the heavy imports: a config error is reported in about a second
    _check_names(cfg, schemas)  # torch only (the registry), not Lightning: a wrong name costs ~2 s, not ~7
    _check_accelerator(cfg.trainer)
    import lightning  # noqa: F401  (its log handlers must exist before _one_line_per_log drops them)

    from bench.context import RunContext
    from bench.seeding import seed_everything
    from bench.tracking import Tracker

    _one_line_per_log()
    use_threads(cfg.threads)
    task_run = task.load()[0]
    config = OmegaConf.to_container(cfg, resolve=True)
    digest = config_hash(config, task_version=task.card.version)
    hydra_overrides, sweep, output_dir = _hydra_context()
    check_launchable(cfg.trainer, hydra_in_use=output_dir is not None)
    results_dir = Path(cfg.paths.results_dir)
    # null: skip inside a sweep (re-running a sweep resumes it), run again when run alone.
    skip = cfg.skip_existing if cfg.skip_existing is not None else sweep is not None
    # With skipping on, one job per config: a second sweep started at the same time skips what the
    # first is running (rank 0 only: DDP child ranks join their parent's job).
    with config_lock(results_dir, cfg.task.name, digest, enabled=skip and is_rank_zero()) as holder:
        if holder is not None:
            log.info("skip_existing: pid %s on %s is running this config (%s); skipping it here",
                     holder.get("pid"), holder.get("host"), digest[:12])
            return None
        if skip and (done := find_completed(results_dir, cfg.task.name, digest)):
            log.info("skip_existing: %s already completed this config (%s)", done, digest[:12])
            return done
        seed_everything(cfg.seed)
        group = cfg.logger.group or (sweep["name"] if sweep else cfg.task.name)
        tracker = Tracker(cfg.logger.mode, cfg.logger.project, cfg.paths.wandb_dir,
                          name=cfg.get("run_name"), group=group,
                          tags=[cfg.task.name, *(["sweep"] if sweep else []), *cfg.logger.tags], config=config)
        devices = n_devices(cfg.trainer.devices) * int(cfg.trainer.num_nodes)
        provenance = {"task_version": task.card.version, "git": git_state(), "versions": versions(),
                      "hardware": hardware(cfg.trainer.accelerator, devices)}
        run_id = os.environ.get(RUN_ID_ENV) or new_run_id()  # a DDP child rank: its parent's run
        with ddp_job_scope(hydra_overrides, output_dir, run_id), \
                Run(results_dir, cfg.task.name, config, config_hash=digest,
                    overrides=overrides if overrides is not None else hydra_overrides,
                    seed=cfg.seed, provenance=provenance, tracker=tracker, sweep=sweep, run_id=run_id) as run:
            log.info("run %s -> %s", run.run_id, run.dir)
            task_run(RunContext.of(cfg, run))
            record_claims(task, run)
        log.info("completed %s: %d metrics, artifacts in %s", run.run_id, len(run.metrics), run.artifacts_dir)
        return run.dir


def use_threads(n: int) -> None:
    """Compute on ``n`` CPU threads: torch's intra-op pool and every BLAS/OpenMP pool (numpy's, scipy's)."""
    import torch
    from threadpoolctl import threadpool_limits

    torch.set_num_threads(n)
    threadpool_limits(n)


def _check_names(cfg: DictConfig, schemas: dict[str, type]) -> None:
    """Registry names (model, dataset) exist: checked before any data is loaded or a record written."""
    from bench.config import ImageDataConfig, ModelConfig
    from bench.errors import DataError, ModelError

    if schemas.get("model") is ModelConfig:
        from bench.models import list_models, model_node

        model_node(cfg.model)  # an importable _target_
        if cfg.model.name not in list_models():
            raise ModelError(f"unknown model {cfg.model.name!r} (model.name); choose one of: "
                             f"{', '.join(list_models())}")
    if schemas.get("data") is ImageDataConfig:
        from bench.data import DATASETS

        if cfg.data.name not in DATASETS:
            raise DataError(f"unknown dataset {cfg.data.name!r} (data.name); choose one of: {', '.join(DATASETS)}")


def _check_accelerator(trainer: DictConfig) -> None:
    """A GPU trainer needs the GPUs it asks for: said before any data is loaded or a record written."""
    if str(trainer.accelerator) not in ("gpu", "cuda"):
        return
    import torch

    from bench.errors import ConfigError

    visible = torch.cuda.device_count() if torch.cuda.is_available() else 0
    wanted = n_devices(trainer.devices)
    if visible < wanted:
        raise ConfigError(f"trainer.accelerator={trainer.accelerator} with {wanted} device(s), but this machine has "
                          f"{visible} visible CUDA GPU(s); use trainer=cpu (or trainer=ddp_cpu), or run on a GPU node")


class _DropLightningTips(logging.Filter):
    """Lightning advertises its cloud logger once per Trainer: once per model of a multi-model study."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("\N{ELECTRIC LIGHT BULB} Tip")


_LIGHTNING_TIPS = _DropLightningTips()  # one instance: adding it again in each sweep job is a no-op


def _raise_interrupted(signum: int, frame: object) -> None:
    from bench.errors import Interrupted

    raise Interrupted(signum)


def _one_line_per_log() -> None:
    """Lightning prints through its own handlers; under Hydra the root logger prints too, so every
    line came twice. Drop Lightning's handlers and let its records reach Hydra's."""
    if logging.getLogger().hasHandlers():
        for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
            logger = logging.getLogger(name)
            for handler in list(logger.handlers):
                logger.removeHandler(handler)
            logger.propagate = True


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    from bench.errors import Interrupted

    logging.getLogger("lightning.pytorch.utilities.rank_zero").addFilter(_LIGHTNING_TIPS)
    # Ctrl-C and SIGTERM end the run as Interrupted: recorded `failed` ("interrupted"), exit 128+signal.
    # (Lightning would turn Ctrl-C into exit 1 and SIGTERM into a SystemExit with status 0.)
    handlers = {s: signal.signal(s, _raise_interrupted) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        execute(cfg)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(2)
    except Interrupted as e:
        print(f"bench: interrupted by {e}; the run is recorded as failed (interrupted). Run the same command "
              "again to resume from its last checkpoint.", file=sys.stderr)
        sys.exit(128 + e.signum)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            print(f"bench: error: {e.filename or cfg.paths.root_dir}: no space left on device; the run is recorded as "
                  "failed. Free some space (or point BENCH_ROOT elsewhere) and run the same command again.",
                  file=sys.stderr)
            sys.exit(2)
        if e.filename is None:
            raise
        print(f"bench: error: {e.filename}: {e.strerror or e}. Point BENCH_ROOT (or paths.*) at a writable "
              "directory, or remove what is in the way.", file=sys.stderr)
        sys.exit(2)
    finally:  # the caller's handlers again (bench called from Python, e.g. a test, keeps its Ctrl-C)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)


def _output_root_problem(argv: list[str], environ: os._Environ | dict = os.environ) -> str | None:
    """What stops Hydra from creating its output folder (``paths.log_dir``, by default ``$BENCH_ROOT/outputs``):
    Hydra creates it before bench's own error handling runs, so it is checked first."""
    root, log_dir = environ.get("BENCH_ROOT", "."), None
    for arg in argv:
        key, _, value = arg.partition("=")
        if key in ("paths.root_dir", "paths.log_dir") and value and "$" not in value:
            root, log_dir = (value, log_dir) if key == "paths.root_dir" else (root, value)
    folder = Path(log_dir or Path(root) / "outputs")
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                return f"{path}: Not a directory"
            if not os.access(path, os.W_OK | os.X_OK):
                return f"{path}: {'Read-only file system' if _read_only_mount(path) else 'Permission denied'}"
            return None
    return None


def _read_only_mount(path: Path) -> bool:
    try:
        return bool(os.statvfs(path).f_flag & os.ST_RDONLY)
    except OSError:
        return False


def main() -> None:
    """Console-script entry point."""
    if (problem := _output_root_problem(sys.argv[1:])) is not None:
        print(f"bench: error: {problem}. Point BENCH_ROOT (or paths.*) at a writable directory, or remove what is "
              "in the way.", file=sys.stderr)
        sys.exit(2)
    # Before torch is imported: OpenMP threads sleep while they wait for each other instead of spinning
    # (with a CPU-bound neighbour, two spinning threads ran 1.9x slower than one). The thread count
    # itself is config (``threads``), set in :func:`execute`.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if (problem := no_task_problem(sys.argv[1:], {t.name: t.card.preset for t in tasks().values()})) is not None:
        print(f"bench: error: {problem}", file=sys.stderr)
        sys.exit(2)
    register_config_schemas()  # before Hydra composes bench/conf/: each group's defaults come from its dataclass
    register_search_path()  # each task's own bench/<task>/conf/ (and a plugin task's conf/)
    sys.argv = ddp_child_argv(sys.argv)
    _app()


if __name__ == "__main__":
    main()
