"""Hydra multirun sweeps: distinct runs with their sweep recorded, W&B grouped by sweep, and a
re-run that only runs what is missing (never overwriting a record); training resumes from last.ckpt."""
from __future__ import annotations

import json
import sys

import lightning as L
import pytest
import torch
from torch.utils.data import TensorDataset

from bench import cli, tracking
from bench.store import iter_run_dirs, read_run
from bench.training import ClassifierModule, build_trainer, fit

TINY = ["task=whitening", "data=digits", "data.n_train=256", "model=linear_cnn", "trainer.max_steps=3", "task.variants=[{}]",
        "task.record_steps=[1]", "task.autocorr_images=16", "task.tau_grid_size=20", "logger=none",
        "trainer.enable_progress_bar=false"]


@pytest.fixture
def groups(monkeypatch) -> list[tuple[str, list[str]]]:
    """The (W&B group, tags) each run's tracker was created with."""
    seen = []

    class Spy(tracking.Tracker):
        def __init__(self, *args, group=None, tags=None, **kwargs):
            seen.append((group, list(tags)))
            super().__init__(*args, group=group, tags=tags, **kwargs)

    monkeypatch.setattr(tracking, "Tracker", Spy)
    return seen


def _multirun(monkeypatch, *overrides: str) -> None:
    monkeypatch.setattr(sys, "argv", ["bench", "-m", *TINY, *overrides])
    cli.main()


def _records(root) -> list[dict]:
    return [read_run(d)[0] for d in iter_run_dirs(root / "results", "whitening")]


def test_sweep_records_its_jobs_and_a_rerun_runs_only_what_is_missing(monkeypatch, bench_root, groups):
    _multirun(monkeypatch, "seed=0,1")
    first = _records(bench_root)
    assert sorted(r["seed"] for r in first) == [0, 1] and len({r["run_id"] for r in first}) == 2
    sweep = first[0]["sweep"]
    assert sweep["name"].startswith("whitening/multirun_") and {r["sweep"]["name"] for r in first} == {sweep["name"]}
    assert sorted(r["sweep"]["job_num"] for r in first) == [0, 1]
    assert groups == [(sweep["name"], ["whitening", "sweep"])] * 2  # W&B: grouped by sweep, tagged by task

    # An interrupted job (its record is not `completed`) is run again; completed ones are skipped.
    seed1 = next(d for d in iter_run_dirs(bench_root / "results", "whitening") if read_run(d)[0]["seed"] == 1)
    record = json.loads((seed1 / "run.json").read_text())
    (seed1 / "run.json").write_text(json.dumps({**record, "status": "failed", "error": "killed"}))
    _multirun(monkeypatch, "seed=0,1")
    second = _records(bench_root)
    assert len(second) == 3 and sorted(r["seed"] for r in second if r["status"] == "completed") == [0, 1]
    assert read_run(seed1)[0]["status"] == "failed", "the interrupted record is kept, not overwritten"

    _multirun(monkeypatch, "seed=0", "skip_existing=false")  # forced: a new record beside the old one
    assert len(_records(bench_root)) == 4


def test_single_run_is_not_skipped_by_default(compose, bench_root, monkeypatch):
    first = cli.execute(compose(TINY))
    monkeypatch.delenv("BENCH_RUN_ID", raising=False)
    second = cli.execute(compose(TINY))
    assert first != second and len(_records(bench_root)) == 2
    monkeypatch.delenv("BENCH_RUN_ID", raising=False)
    assert cli.execute(compose([*TINY, "skip_existing=true"])) in (first, second)


def test_fit_resumes_an_interrupted_training_from_last_ckpt(compose, tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,))
    dm = L.LightningDataModule.from_datasets(train_dataset=TensorDataset(x, y), batch_size=16)
    trainer_cfg = compose(["task=whitening", "trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"

    def module() -> ClassifierModule:
        return ClassifierModule(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)), 3)

    first = build_trainer(trainer_cfg, checkpoint_dir=ckpt, max_epochs=1)
    fit(first, module(), dm, ckpt)  # the "interrupted" attempt: one epoch of two
    assert (ckpt / "last.ckpt").is_file() and first.global_step == 4
    counter = _CountBatches()
    resumed = build_trainer(trainer_cfg, callbacks=[counter], checkpoint_dir=ckpt, max_epochs=2)
    fit(resumed, module(), dm, ckpt)
    assert resumed.global_step == 8 and counter.batches == 4  # continued at epoch 2, not restarted


class _CountBatches(L.Callback):
    def __init__(self) -> None:
        self.batches = 0

    def on_train_batch_end(self, *args) -> None:
        self.batches += 1


def test_ddp_from_python_is_a_clear_error(compose):
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="run it with the `bench` command"):
        cli.execute(compose([*TINY, "trainer=ddp_cpu"]))


def test_a_terminated_run_exits_nonzero(monkeypatch):
    """Lightning turns SIGTERM into SystemExit(None) (status 0); a killed sweep must not look successful."""
    import signal

    from bench.errors import Interrupted

    def killed(cfg):
        raise Interrupted(signal.SIGTERM)

    monkeypatch.setattr(cli, "execute", killed)
    monkeypatch.setattr(sys, "argv", ["bench", *TINY])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 143
