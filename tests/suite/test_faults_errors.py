"""Errors that name the fix: one ``bench: error:`` line, before any work (no Lightning imported: no Trainer,
no training step), for bad config values, unusable folders, a missing GPU and a disk that fills mid-run."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.suite.faults import TINY, bench_fails, read_only, runs_of, trained_nothing


@pytest.mark.parametrize(("override", "message"), [
    ("trainer.max_epochs=abc", "trainer.max_epochs=abc: expected int"),
    ("+task.optim.lrr=1", "task.optim.lrr is not a key of OptimConfig; valid keys: _target_, _partial_, lr"),
    ("model.name=resnet999", "unknown model 'resnet999' (model.name); choose one of: densenet"),
    ("data.name=mnistt", "unknown dataset 'mnistt' (data.name); choose one of:"),
    ("seed=-1", "seed=-1 is out of range; use an integer in [0, 4294967295]"),
    ("seed=4294967296", "seed=4294967296 is out of range"),
    ("seed=abc", "seed=abc: expected int"),
    ("seed=1e9", "seed=1000000000.0: expected int"),
    ("threads=0", "threads=0: use a positive number of CPU threads"),
    ("data.batch_size=0", "data.batch_size=0: a batch size is a positive integer"),
    ("data.batch_size=-5", "data.batch_size=-5: a batch size is a positive integer"),
    ("task.variants=[{batch_size: 0}]", "task.variants[0].batch_size=0: a batch size is a positive integer"),
])
def test_config_errors_name_the_key_and_the_fix_before_any_work(tmp_path, override, message):
    line, modules = bench_fails([*TINY, override], tmp_path)
    assert message in line
    # before any work, at any load: schema errors come before torch is imported, registry names before Lightning
    assert trained_nothing(modules), "the error came after Lightning was imported"
    assert not (tmp_path / "results" / "runs").exists(), "a config error leaves no record"


def test_a_gpu_trainer_without_a_gpu_is_one_error_line_before_any_work(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line, modules = bench_fails([*TINY, "trainer=gpu"], tmp_path)
    assert "trainer.accelerator=gpu" in line and "use trainer=cpu" in line and trained_nothing(modules)
    assert not (tmp_path / "results" / "runs").exists(), "a config error leaves no record"


def test_a_file_where_the_results_dir_should_be_is_one_error_line(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    line, _ = bench_fails(TINY, tmp_path)
    assert str(tmp_path / "results") in line and "Not a directory" in line


@pytest.mark.parametrize("where", ["root", "outputs"])
def test_a_read_only_bench_root_or_outputs_is_one_error_line(tmp_path, where):
    folder = tmp_path / "ro" if where == "root" else tmp_path / "outputs"
    folder.mkdir()
    with read_only(folder):
        line, _ = bench_fails(TINY, tmp_path / "ro" if where == "root" else tmp_path)
    assert str(folder) in line and ("Permission denied" in line or "Read-only file system" in line), line
    assert not (tmp_path / "results" / "runs").exists()


@pytest.mark.parametrize("where", ["outputs", "root"])
def test_a_file_where_outputs_or_the_bench_root_should_be_is_one_error_line(tmp_path, where):
    """Hydra creates outputs/ before bench's own error handling: checked before Hydra starts."""
    path = tmp_path / where
    path.write_text("not a folder")
    line, _ = bench_fails(TINY, path if where == "root" else tmp_path)
    assert str(path) in line and "Not a directory" in line, line


@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is a small tmpfs mounted as root")
def test_a_full_disk_mid_run_leaves_the_record_failed_and_no_temporary_file(tmp_path):
    root = tmp_path / "small"
    root.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(root)], capture_output=True, text=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip()})")
    try:
        line, _ = bench_fails([*TINY, "trainer.max_steps=-1", "trainer.max_epochs=3", "data.batch_size=64"], root)
        assert "no space left on device" in line and "recorded as failed" in line, line
        (record,) = runs_of(root)
        assert record["status"] == "failed" and "No space left" in record["error"]
        leftovers = [p for p in root.rglob(".*") if p.is_file()]
        assert not leftovers, f"temporary files left behind: {leftovers}"
    finally:
        subprocess.run(["umount", str(root)], check=True)
