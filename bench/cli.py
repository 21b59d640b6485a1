"""The ``bench`` command: one Hydra app for every task.

    bench task=whitening model=vgg11 data=cifar10        # one run
    bench -m experiment=whitening/embedded seed=0,1,2      # a sweep

Compose -> validate against the schemas -> skip if already completed -> record a Run
around the task's ``run(cfg, run)``.
"""
from __future__ import annotations

import logging
import sys
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from bench.errors import BenchError

log = logging.getLogger("bench")
CONF_DIR = str(Path(__file__).resolve().parent.parent / "conf")


def _hydra_context() -> tuple[list[str], dict | None]:
    """The command-line overrides and, inside a multirun, which sweep job this is."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return [], None
    hc = HydraConfig.get()
    sweep = None
    if hc.mode.name == "MULTIRUN":
        sweep = {"dir": hc.sweep.dir, "job_num": hc.job.num, "job_id": str(hc.job.id)}
    return list(hc.overrides.task), sweep


def execute(cfg: DictConfig, overrides: list[str] | None = None) -> Path:
    """Run the task described by a composed config; return its run directory."""
    import lightning

    from bench.provenance import config_hash, git_state, hardware, versions
    from bench.store import Run, find_completed
    from bench.config import validate
    from bench.tasks import get_task
    from bench.tracking import Tracker

    task_run, schemas = get_task(cfg.task.name).load()
    cfg = validate(cfg, schemas)
    config = OmegaConf.to_container(cfg, resolve=True)
    digest = config_hash(config)
    hydra_overrides, sweep = _hydra_context()
    results_dir = Path(cfg.paths.results_dir)
    if cfg.skip_existing and (done := find_completed(results_dir, cfg.task.name, digest)):
        log.info("skip_existing: %s already completed this config (%s)", done, digest[:12])
        return done
    lightning.seed_everything(cfg.seed, workers=True, verbose=False)
    tracker = Tracker(cfg.logger.mode, cfg.logger.project, cfg.paths.wandb_dir,
                      name=cfg.get("run_name"), group=cfg.logger.group or cfg.task.name,
                      tags=[cfg.task.name, *cfg.logger.tags], config=config)
    provenance = {"git": git_state(), "versions": versions(),
                  "hardware": hardware(cfg.trainer.accelerator, _n_devices(cfg.trainer.devices))}
    with Run(results_dir, cfg.task.name, config, config_hash=digest,
             overrides=overrides if overrides is not None else hydra_overrides,
             seed=cfg.seed, provenance=provenance, tracker=tracker, sweep=sweep) as run:
        log.info("run %s -> %s", run.run_id, run.dir)
        task_run(cfg, run)
    log.info("completed %s: %d metrics, artifacts in %s", run.run_id, len(run.metrics), run.artifacts_dir)
    return run.dir


def _n_devices(devices: object) -> int:
    if isinstance(devices, int):
        return max(devices, 1)
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    return 1


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def _app(cfg: DictConfig) -> None:
    try:
        execute(cfg)
    except BenchError as e:
        print(f"bench: error: {e}", file=sys.stderr)
        sys.exit(2)


def main() -> None:
    """Console-script entry point."""
    _app()
