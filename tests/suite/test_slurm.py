"""``hydra/launcher=slurm``: the launcher config composes, sizes the job from the trainer preset,
and submitit generates the sbatch script (captured in place of calling ``sbatch``)."""
from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest

from bench import cli, ddp


class _Submitted(Exception):
    """Raised by the fake ``sbatch``: the script was written, nothing was submitted."""


@pytest.fixture
def fake_sbatch(monkeypatch, tmp_path):
    """A login node without SLURM: ``srun`` exists (submitit checks) and ``sbatch`` keeps the script."""
    from submitit.slurm.slurm import SlurmExecutor

    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "srun").write_text("#!/bin/sh\nexit 1\n")
    (bindir / "srun").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    scripts: list[str] = []

    def submit(self, path: Path) -> list[str]:
        scripts.append(Path(path).read_text())
        raise _Submitted(str(path))

    monkeypatch.setattr(SlurmExecutor, "_make_submission_command", submit)
    return scripts


def test_slurm_launcher_composes_from_the_trainer_preset(compose_hydra):
    cfg = compose_hydra(["task=whitening", "hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                         "hydra.launcher.partition=gpu-a100", "hydra.launcher.timeout_min=90"])
    launcher = cfg.hydra.launcher
    assert launcher._target_.endswith("SlurmLauncher")
    assert (launcher.tasks_per_node, launcher.gpus_per_node, launcher.nodes) == (4, 4, 2)
    assert (launcher.partition, launcher.timeout_min, launcher.mem_gb) == ("gpu-a100", 90, 64)


def test_bench_multirun_on_slurm_writes_the_sbatch_script(fake_sbatch, monkeypatch, bench_root):
    """The real ``bench -m hydra/launcher=slurm ...`` path, up to the ``sbatch`` call."""
    monkeypatch.setattr(sys, "argv", [
        "bench", "-m", "hydra/launcher=slurm", "hydra.launcher.partition=gpu-a100", "hydra.launcher.mem_gb=48",
        "hydra.launcher.timeout_min=90", "trainer=ddp", "trainer.devices=4", "experiment=whitening/embedded",
        "seed=0,1,2"])
    with pytest.raises((_Submitted, SystemExit)):
        cli.main()
    assert len(fake_sbatch) == 1, "one array submission for the whole sweep"
    script = fake_sbatch[0]
    sbatch = dict(re.findall(r"^#SBATCH --([\w-]+)(?:=(.*))?$", script, flags=re.M))
    assert sbatch["ntasks-per-node"] == "4"  # one task per GPU: Lightning's SLURM environment forms DDP
    assert sbatch["gpus-per-node"] == "4"
    assert sbatch["nodes"] == "1"
    assert sbatch["partition"] == "gpu-a100"
    assert sbatch["time"] == "90"
    assert sbatch["mem"] == "48GB"
    assert sbatch["cpus-per-task"] == "8"
    assert sbatch["array"] == "0-2%3"  # three seeds, one array task each, all at once
    assert sbatch["job-name"] == "bench-whitening"
    assert re.search(r"^srun .*submitit\.core\._submit", script, flags=re.M)
    folder = Path(re.search(r"^#SBATCH --output=(.*)/%A_%a/%A_%a_0_log\.out$", script, flags=re.M).group(1))
    assert folder.is_relative_to(bench_root / "outputs" / "whitening")


def test_ddp_child_runs_its_parents_job_not_the_sweep():
    env = {ddp.DDP_JOB_ENV: '{"overrides": ["seed=1", "trainer=ddp"], "output_dir": "/o/sweep/1"}',
           "LOCAL_RANK": "1"}
    argv = ["/venv/bin/bench", "-m", "--config-dir", "extra", "seed=0,1", "trainer=ddp",
            'hydra.run.dir="x"', "hydra.job.name=train_ddp_process_1", "hydra.output_subdir=null"]
    assert ddp.ddp_child_argv(argv, env) == [
        "/venv/bin/bench", "--config-dir", "extra", "seed=1", "trainer=ddp", "hydra.run.dir='/o/sweep/1'",
        "hydra.output_subdir=null", "hydra.job.name=rank1"]
    assert ddp.ddp_child_argv(argv, {**env, "LOCAL_RANK": "0"}) == argv  # rank 0 runs as it was started
    assert ddp.ddp_child_argv(argv, {"LOCAL_RANK": "1"}) == argv  # not a bench job (e.g. torchrun)
