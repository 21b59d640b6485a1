"""What the fault tests share: a tiny whitening config, real bench processes, records written through the
real store, a read-only folder, a four-step Lightning fit."""
from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

from bench.provenance import config_hash, git_state, versions
from bench.report.cli import main as report_main
from bench.store import RUN_ID_ENV, Run, read_run

REPO = Path(__file__).resolve().parents[2]
TINY = ["task=whitening", "data=digits", "data.n_train=256", "model=linear_cnn", "trainer.max_steps=3", "task.variants=[{}]",
        "task.record_steps=[1]", "task.autocorr_images=16", "task.tau_grid_size=20", "logger=none",
        "trainer.enable_progress_bar=false"]
# 40 epochs of 4 steps: long enough that the kill (sent within ~10 ms of the first last.ckpt) lands mid-training
# on a fast quiet machine; with 4 epochs it sometimes came after the final epoch's checkpoint, and a run
# resumed from a finished training has nothing left to resume.
RESUMABLE = [*TINY, "trainer.max_steps=-1", "trainer.max_epochs=40", "data.batch_size=64", "task.record_steps=[2,6]"]
PROVENANCE = {"git": git_state(), "versions": versions(),
              "hardware": {"device": "x86_64", "n_devices": 1, "world_size": 1, "hostname": "test-host"}}
# bench.cli run as __main__ by a wrapper that writes sys.modules' names to $BENCH_TEST_MODULES at exit
WATCH_ENV = "BENCH_TEST_MODULES"
WATCHED = ("import atexit, json, os, runpy, sys\n"
           f"atexit.register(lambda: open(os.environ[{WATCH_ENV!r}], 'w').write(json.dumps(sorted(sys.modules))))\n"
           "runpy.run_module('bench.cli', run_name='__main__', alter_sys=True)\n")


def record_run(results: Path, seed: int = 0, value: float = 0.5, model: str = "m") -> Run:
    """A completed toy run, written through the real store."""
    os.environ.pop(RUN_ID_ENV, None)
    config = {"task": {"name": "toy"}, "model": {"name": model}, "seed": seed}
    with Run(results, "toy", config, config_hash=config_hash(config), overrides=[f"model.name={model}"],
             seed=seed, provenance=PROVENANCE) as run:
        run.log_metric("acc", value)
    return run


def report_of(results: Path, capsys: pytest.CaptureFixture) -> tuple[str, str]:
    """``bench-report`` on ``results``: what it printed and the leaderboard.md it wrote."""
    assert report_main(["--results-dir", str(results)]) == 0
    out = capsys.readouterr()
    return out.out, (results / "leaderboard.md").read_text()


def bench(*args: str, root: Path, watch: Path | None = None, **kw) -> subprocess.Popen:
    """A real ``bench`` process (this checkout's code) writing under ``root``; with ``watch``, it writes the
    names of the modules it had imported when it exited to that file."""
    env = {**os.environ, "BENCH_ROOT": str(root), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop(RUN_ID_ENV, None)
    command = [sys.executable, "-m", "bench.cli"]
    if watch is not None:
        env[WATCH_ENV] = str(watch)
        command = [sys.executable, "-c", WATCHED]
    return subprocess.Popen([*command, *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def runs_of(root: Path, task: str = "whitening") -> list[dict]:
    return [read_run(d)[0] for d in sorted((root / "results" / "runs" / task).glob("*")) if (d / "run.json").exists()]


def bench_fails(args: list[str], root: Path) -> tuple[str, set[str]]:
    """A bench process that must exit 2 with one ``bench: error:`` line: that line, and the modules the
    process had imported when it exited (what work it had begun, whatever the load)."""
    fd, watch = tempfile.mkstemp(suffix=".json")  # outside ``root``, which may be read-only or full
    os.close(fd)
    try:
        proc = bench(*args, root=root, watch=Path(watch))
        out = proc.communicate(timeout=300)[0]
        modules = set(json.loads(Path(watch).read_text() or "[]"))
    finally:
        os.unlink(watch)
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("bench: error:")]
    assert len(errors) == 1 and "Traceback" not in out, out
    assert modules, "the process exited without reporting its modules"
    return errors[0], modules


def trained_nothing(modules: set[str]) -> bool:
    """No Lightning in the process: it built no Trainer and no LightningModule, and ran no training step."""
    return not any(m == "lightning" or m.startswith("lightning.") for m in modules)


def metrics_of(root: Path) -> dict:
    (run_dir,) = [d for d in (root / "results" / "runs" / "whitening").iterdir()
                  if read_run(d)[0]["status"] == "completed"]
    return {(r["metric"], json.dumps(r["params"], sort_keys=True)): r["value"] for r in read_run(run_dir)[1]}


@contextlib.contextmanager
def read_only(path: Path):
    """``path`` read-only: mode 0555, or as root (who writes through modes) a read-only bind mount of it."""
    if os.geteuid() != 0:
        path.chmod(0o555)
        try:
            yield
        finally:
            path.chmod(0o755)
        return
    bind = subprocess.run(["mount", "--bind", str(path), str(path)], capture_output=True, text=True)
    if bind.returncode:
        pytest.skip(f"running as root without mount rights ({bind.stderr.strip()}): no read-only folder to test")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(path)], check=True, capture_output=True)
        yield
    finally:
        subprocess.run(["umount", str(path)], check=True)


def tiny_fit(trainer_cfg, ckpt: Path, max_epochs: int, callbacks=()):
    """Four steps an epoch of a linear classifier, resumable from ``ckpt``; returns the trainer."""
    import lightning as L
    import torch
    from torch.utils.data import TensorDataset

    from bench.training import ClassifierModule, build_trainer, fit

    torch.manual_seed(0)
    x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 3, (64,))
    dm = L.LightningDataModule.from_datasets(train_dataset=TensorDataset(x, y), batch_size=16)
    module = ClassifierModule(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3)), 3)
    trainer = build_trainer(trainer_cfg, callbacks=list(callbacks), checkpoint_dir=ckpt, max_epochs=max_epochs)
    fit(trainer, module, dm, ckpt)
    return trainer
