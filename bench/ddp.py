"""DDP jobs of the ``bench`` command: Lightning starts ranks > 0 by re-executing the command line. Under
``-m`` that would start the whole sweep again in every child, so the job publishes its own overrides and
output directory in ``BENCH_DDP_JOB`` and a child rank runs exactly that job (:func:`ddp_child_argv`).
Children inherit the run id and never write (see :mod:`bench.store`).
"""
from __future__ import annotations

import json
import os
from collections.abc import Iterator
from contextlib import contextmanager

from omegaconf import DictConfig, OmegaConf

DDP_JOB_ENV = "BENCH_DDP_JOB"
# What Lightning's subprocess launcher exports in the launching process; cleared after each job
# so that the next job of a sequential sweep launches (and rendezvouses with) its own ranks.
LAUNCHER_ENV = ("LOCAL_RANK", "NODE_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
CONFIG_FLAGS = ("--config-dir", "-cd", "--config-path", "-cp", "--config-name", "-cn")


def ddp_child_argv(argv: list[str], environ: os._Environ | dict = os.environ) -> list[str]:
    """The arguments a process must run with: its own, unless it is a DDP child rank of a bench job.

    Lightning re-executes the parent's command line (plus ``hydra.run.dir``) for ranks > 0; a child
    of a multirun would run the whole sweep. A child runs its parent's job instead: the same task
    overrides, the same output directory (one per job), no second ``.hydra/`` config dump.
    """
    spec = environ.get(DDP_JOB_ENV)
    rank = environ.get("LOCAL_RANK", "0")
    if not spec or rank == "0":
        return argv
    job = json.loads(spec)
    out_dir = job["output_dir"].replace("\\", "\\\\").replace("'", "\\'")
    return [argv[0], *_config_flags(argv[1:]), *job["overrides"], f"hydra.run.dir='{out_dir}'",
            "hydra.output_subdir=null", f"hydra.job.name=rank{rank}"]


def _config_flags(args: list[str]) -> list[str]:
    """The ``--config-dir/-path/-name`` flags (and values) of a command line: a child needs the same config."""
    out, keep_next = [], False
    for arg in args:
        if keep_next or arg.split("=", 1)[0] in CONFIG_FLAGS:
            out.append(arg)
            keep_next = not keep_next and "=" not in arg
        else:
            keep_next = False
    return out


@contextmanager
def ddp_job_scope(overrides: list[str], output_dir: str | None, run_id: str) -> Iterator[None]:
    """Publish this job (and its run id, so every rank names the same run) for DDP child ranks, and end
    its process group when the job ends.

    The process that publishes the job (rank 0) also clears what it and Lightning's launcher exported,
    so the next job of a sequential multirun mints its own run id and starts its own ranks on a fresh port.
    """
    from bench.store import RUN_ID_ENV

    owner = output_dir is not None and DDP_JOB_ENV not in os.environ
    env_before = set(os.environ)
    if owner:
        os.environ[DDP_JOB_ENV] = json.dumps({"overrides": overrides, "output_dir": output_dir})
        os.environ[RUN_ID_ENV] = run_id
    ok = False
    try:
        yield
        ok = True
    finally:
        _end_process_group(wait_for_ranks=ok)
        if owner:
            for key in (DDP_JOB_ENV, RUN_ID_ENV, *LAUNCHER_ENV):
                if key not in env_before:
                    os.environ.pop(key, None)


def _end_process_group(wait_for_ranks: bool) -> None:
    """Destroy this job's process group (after a barrier, so every rank has finished the job)."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        if wait_for_ranks:
            dist.barrier()
        dist.destroy_process_group()


def check_launchable(trainer: DictConfig, hydra_in_use: bool) -> None:
    """DDP re-executes the command line for ranks > 0, which only works from the ``bench`` command
    (from a notebook or pytest it would re-run those instead)."""
    launched_externally = any(k in os.environ for k in ("LOCAL_RANK", "RANK", "SLURM_PROCID"))
    if str(trainer.strategy).startswith("ddp") and n_devices(trainer.devices) * int(trainer.num_nodes) > 1 \
            and not hydra_in_use and not launched_externally:
        from bench.errors import ConfigError

        raise ConfigError(f"trainer.strategy={trainer.strategy} starts one process per device by re-running the "
                          "command; run it with the `bench` command (or torchrun/srun), not from Python")


def n_devices(devices: object) -> int:
    if isinstance(devices, int):
        return max(devices, 1)
    if isinstance(devices, (list, tuple)) or OmegaConf.is_list(devices):
        return len(devices)
    return 1
