"""Faults a hostile but fair user meets, one case per row of issue 14's table, each asserting the
behaviour bench now has (real files, real subprocesses and real signals where the row is about them).
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.provenance import config_hash, git_state, versions
from bench.report.cli import main as report_main
from bench.store import RUN_ID_ENV, Run, find_completed, read_run

REPO = Path(__file__).resolve().parents[2]
TINY = ["data=digits", "data.n_train=256", "model=linear_cnn", "trainer.max_steps=3", "task.variants=[{}]",
        "task.record_steps=[1]", "task.autocorr_images=16", "task.tau_grid_size=20", "logger=none",
        "trainer.enable_progress_bar=false"]
PROVENANCE = {"git": git_state(), "versions": versions(),
              "hardware": {"device": "x86_64", "n_devices": 1, "world_size": 1, "hostname": "test-host"}}


def _record(results: Path, seed: int = 0, value: float = 0.5, model: str = "m") -> Run:
    """A completed toy run, written through the real store."""
    os.environ.pop(RUN_ID_ENV, None)
    config = {"task": {"name": "toy"}, "model": {"name": model}, "seed": seed}
    with Run(results, "toy", config, config_hash=config_hash(config), overrides=[f"model.name={model}"],
             seed=seed, provenance=PROVENANCE) as run:
        run.log_metric("acc", value)
    return run


def _report(results: Path, capsys) -> tuple[str, str]:
    assert report_main(["--results-dir", str(results)]) == 0
    out = capsys.readouterr()
    return out.out, (results / "leaderboard.md").read_text()


# -- records ---------------------------------------------------------------------------------
def test_completed_run_with_corrupt_metrics_is_rerun_and_kept(tmp_path):
    run = _record(tmp_path)
    digest = read_run(run.dir)[0]["config_hash"]
    (run.dir / "metrics.jsonl").write_text('{"metric": "acc", "val')
    assert find_completed(tmp_path, "toy", digest) is None, "an invalid 'completed' record must not be skipped"
    assert (run.dir / "run.json").is_file() and (run.dir / "INVALID.txt").is_file()


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_non_finite_metrics_are_refused_and_never_ranked(tmp_path, capsys, literal):
    good = _record(tmp_path, model="real")
    bad = _record(tmp_path, model="inf")
    text = (bad.dir / "metrics.jsonl").read_text().replace('"value": 0.5', f'"value": {literal}')
    (bad.dir / "metrics.jsonl").write_text(text)
    out, md = _report(tmp_path, capsys)
    assert "1 completed run(s) ranked" in out and "1 file(s) skipped" in out
    assert bad.run_id in md and "not a finite number" in md  # listed under skipped files, not ranked
    ranked = [line for line in md.splitlines() if line.startswith("| 1 |")]
    assert len(ranked) == 1 and "real" in ranked[0] and good.run_id


def test_huge_finite_values_do_not_rank_an_overflowed_std(tmp_path, capsys):
    _record(tmp_path, seed=0, value=1e308, model="big")
    _record(tmp_path, seed=1, value=-1e308, model="big")
    _record(tmp_path, seed=0, value=1e308, model="sum")
    _record(tmp_path, seed=1, value=1e308, model="sum")  # the mean overflows
    _, md = _report(tmp_path, capsys)
    assert "inf" not in md  # the std of "big" and the mean of "sum" overflow: shown as missing
    assert "| — | sum |" in md  # unranked


def test_two_identical_runs_count_once_and_the_extra_is_listed(tmp_path, capsys):
    first = _record(tmp_path, seed=0)
    extra = _record(tmp_path, seed=0)
    out, md = _report(tmp_path, capsys)
    assert "1 completed run(s) ranked" in out
    kept, dup = sorted([first.run_id, extra.run_id])  # same second: the smaller id counts as the earlier
    assert f"{dup} | duplicate of run {kept}" in md
    assert "| 1 | m | — | model.name=m | 1 |" in md  # one seed, not two


def test_run_dir_without_metrics_is_flagged_not_ranked(tmp_path, capsys):
    run = _record(tmp_path)
    (run.dir / "metrics.jsonl").unlink()
    out, md = _report(tmp_path, capsys)
    assert "0 completed run(s) ranked" in out and "completed run without metrics" in md


def bench(*args: str, root: Path, **kw) -> subprocess.Popen:
    """A real ``bench`` process (this checkout's code) writing under ``root``."""
    env = {**os.environ, "BENCH_ROOT": str(root), "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    env.pop(RUN_ID_ENV, None)
    return subprocess.Popen([sys.executable, "-m", "bench.cli", *args], cwd=REPO, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kw)


def _runs(root: Path, task: str = "whitening") -> list[dict]:
    return [read_run(d)[0] for d in sorted((root / "results" / "runs" / task).glob("*")) if (d / "run.json").exists()]


# -- one job per config ----------------------------------------------------------------------
@pytest.mark.slow  # two concurrent bench processes: ~60 s on 2 shared cores
def test_two_identical_sweeps_started_together_run_each_job_once(tmp_path):
    sweeps = [bench("-m", *TINY, "seed=0,1", root=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in sweeps]
    assert [p.returncode for p in sweeps] == [0, 0], outs
    runs = _runs(tmp_path)
    assert sorted(r["seed"] for r in runs) == [0, 1] and all(r["status"] == "completed" for r in runs), outs
    assert not list((tmp_path / "results" / "locks").iterdir()), "every lock is released"


# -- errors that name the fix ----------------------------------------------------------------
def _fails(args: list[str], root: Path) -> tuple[str, float]:
    t0 = time.monotonic()
    proc = bench(*args, root=root)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2, out
    errors = [line for line in out.splitlines() if line.startswith("bench: error:")]
    assert len(errors) == 1 and "Traceback" not in out, out
    return errors[0], time.monotonic() - t0


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
    line, seconds = _fails([*TINY, override], tmp_path)
    assert message in line
    # schema errors come before torch is imported (1.2-1.5 s on 2 busy cores), registry names before Lightning
    assert seconds < 8, f"a config error took {seconds:.1f} s"  # < 2 s quiet; 3.7-5.3 s at load 4 on 2 cores
    assert not (tmp_path / "results" / "runs").exists(), "a config error leaves no record"


def test_a_file_where_the_results_dir_should_be_is_one_error_line(tmp_path):
    (tmp_path / "results").write_text("not a folder")
    line, _ = _fails(TINY, tmp_path)
    assert str(tmp_path / "results") in line and "Not a directory" in line


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories: no read-only root to test")
def test_a_read_only_bench_root_is_one_error_line(tmp_path):
    root = tmp_path / "ro"
    root.mkdir(mode=0o555)
    line, _ = _fails(TINY, root)
    assert str(root) in line and "Permission denied" in line


def test_a_diverged_training_fails_with_one_step_per_epoch(tmp_path):
    """lr=3e38 with a single batch per epoch: the loss of that step is finite, the weights after it are
    not usable (the test logits overflow); the run must fail, not report chance accuracy."""
    proc = bench(*TINY, "trainer.max_steps=-1", "trainer.max_epochs=1", "data.batch_size=256", "task.optim.lr=3e38",
                 root=tmp_path)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2 and "bench: error:" in out and "diverged" in out, out
    (record,) = _runs(tmp_path)
    assert record["status"] == "failed" and "TrainingError" in record["error"]
    # -- each log line printed once (Lightning's own handler and Hydra's root logger both printed it)
    assert out.count("`Trainer.fit` stopped") == 1, out


@pytest.mark.parametrize(("signum", "code"), [("SIGINT", 130), ("SIGTERM", 143)])
def test_an_interrupted_training_is_recorded_as_interrupted(tmp_path, signum, code):
    import signal

    proc = bench(*TINY, "trainer.max_steps=-1", "trainer.max_epochs=1000", "data.batch_size=32", root=tmp_path)
    for line in proc.stdout:
        if "`Trainer.fit`" in line or "Epoch" in line or "GPU available" in line:
            break
    time.sleep(2)
    proc.send_signal(getattr(signal, signum))
    out = proc.communicate(timeout=120)[0]
    assert proc.returncode == code, out
    assert f"bench: interrupted by {signum}" in out and "Traceback" not in out, out
    (record,) = _runs(tmp_path)
    assert record["status"] == "failed" and record["error"].startswith(f"interrupted ({signum})")


# -- resume that works -----------------------------------------------------------------------
# 40 epochs of 4 steps: long enough that the kill (sent within ~10 ms of the first last.ckpt) lands mid-training
# on a fast quiet machine; with 4 epochs it sometimes came after the final epoch's checkpoint, and a run
# resumed from a finished training has nothing left to resume.
RESUMABLE = [*TINY, "trainer.max_steps=-1", "trainer.max_epochs=40", "data.batch_size=64", "task.record_steps=[2,6]"]


def _metrics(root: Path) -> dict:
    (run_dir,) = [d for d in (root / "results" / "runs" / "whitening").iterdir()
                  if read_run(d)[0]["status"] == "completed"]
    return {(r["metric"], json.dumps(r["params"], sort_keys=True)): r["value"] for r in read_run(run_dir)[1]}


@pytest.mark.parametrize("signum", ["SIGKILL", pytest.param("SIGTERM", marks=pytest.mark.slow),
                                    pytest.param("SIGINT", marks=pytest.mark.slow)])  # ~25 s CPU each
def test_a_killed_training_resumes_at_the_next_epoch_with_the_same_metrics(tmp_path, signum):
    import signal

    clean = bench(*RESUMABLE, root=tmp_path / "clean")
    killed_root = tmp_path / "killed"
    killed = bench(*RESUMABLE, root=killed_root)
    ckpts = killed_root / ".cache" / "bench" / "whitening" / "trained"
    deadline = time.monotonic() + 240
    while not list(ckpts.glob("*/last.ckpt")) and killed.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    killed.send_signal(getattr(signal, signum))
    killed.communicate(timeout=120)
    assert killed.returncode != 0 and list(ckpts.glob("*/last.ckpt")), "killed after its first epoch checkpoint"
    resumed = bench(*RESUMABLE, root=killed_root)
    out = resumed.communicate(timeout=300)[0]
    assert resumed.returncode == 0, out
    assert clean.communicate(timeout=300)[0] is not None and clean.returncode == 0
    records = {r["status"]: r for r in _runs(killed_root)}
    assert set(records) == {"failed", "running"} - ({"failed"} if signum == "SIGKILL" else {"running"}) | {"completed"}
    (note,) = records["completed"]["resumed"]
    assert note["step"] % 4 == 0 and 4 <= note["step"] < 160 and note["epoch"] == note["step"] // 4
    assert _metrics(killed_root) == _metrics(tmp_path / "clean")
    assert not list(ckpts.glob("*/last.ckpt")), "checkpoints are removed once the training is cached"


# -- the same numbers whatever the load -------------------------------------------------------
def test_threads_default_to_the_cores_the_process_may_use_never_the_load(monkeypatch):
    from bench.config import default_threads

    monkeypatch.setattr("os.getloadavg", lambda: (3.5, 3.5, 3.5))
    monkeypatch.setattr("os.sched_getaffinity", lambda pid: {0, 1, 2})
    assert default_threads({}) == 3 and default_threads({"OMP_NUM_THREADS": "2"}) == 2
    assert default_threads({"OMP_NUM_THREADS": "0"}) == 3 and default_threads({"OMP_NUM_THREADS": "x"}) == 3


def test_the_same_config_gives_bit_identical_metrics_with_a_busy_neighbour(tmp_path):
    """One thread (OMP_NUM_THREADS=1) on a quiet machine and beside a CPU-bound process: the same bits, each
    run in its own root (nothing shared through a cache); run.json says how many threads and which kernels."""
    quiet = bench(*TINY, root=tmp_path / "quiet")
    assert quiet.communicate(timeout=300)[0] is not None and quiet.returncode == 0
    busy_neighbour = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        busy = bench(*TINY, root=tmp_path / "busy")
        out = busy.communicate(timeout=300)[0]
    finally:
        busy_neighbour.kill()
        busy_neighbour.wait()
    assert busy.returncode == 0, out
    records = [_runs(tmp_path / root)[0] for root in ("quiet", "busy")]
    for record in records:
        assert record["config"]["threads"] == 1 and record["hardware"]["threads"] == 1
        assert record["hardware"]["cpu_capability"] and record["versions"]["torch_blas"]
    assert records[0]["config_hash"] == records[1]["config_hash"]
    assert _metrics(tmp_path / "quiet") == _metrics(tmp_path / "busy")
