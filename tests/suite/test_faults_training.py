"""Faults of a training run: divergence (non-finite or exploding), interruption by a signal, two sweeps of
one config started together, and the same bits whatever the load."""
from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.suite.faults import TINY, bench, metrics_of, runs_of


def test_a_diverged_training_fails_with_one_step_per_epoch(tmp_path):
    """lr=3e38 with a single batch per epoch: the loss of that step is finite, the weights after it are
    not usable (the test logits overflow); the run must fail, not report chance accuracy."""
    proc = bench(*TINY, "trainer.max_steps=-1", "trainer.max_epochs=1", "data.batch_size=256", "task.optim.lr=3e38",
                 root=tmp_path)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2 and "bench: error:" in out and "diverged" in out, out
    (record,) = runs_of(tmp_path)
    assert record["status"] == "failed" and "TrainingError" in record["error"]
    # -- each log line printed once (Lightning's own handler and Hydra's root logger both printed it)
    assert out.count("`Trainer.fit` stopped") == 1, out


def test_an_exploding_but_finite_training_is_failed_not_completed(tmp_path):
    """lr=1e12: the weights explode yet stay finite, and the model scores chance; the loss gate fails the run."""
    proc = bench(*TINY, "trainer.max_steps=-1", "trainer.max_epochs=2", "data.batch_size=64", "task.optim.lr=1e12",
                 root=tmp_path)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2 and "bench: error: training diverged: the loss grew" in out, out
    (record,) = runs_of(tmp_path)
    assert record["status"] == "failed" and "TrainingError" in record["error"]


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
    (record,) = runs_of(tmp_path)
    assert record["status"] == "failed" and record["error"].startswith(f"interrupted ({signum})")


@pytest.mark.slow  # two concurrent bench processes: ~60 s on 2 shared cores
def test_two_identical_sweeps_started_together_run_each_job_once(tmp_path):
    sweeps = [bench("-m", *TINY, "seed=0,1", root=tmp_path) for _ in range(2)]
    outs = [p.communicate(timeout=300)[0] for p in sweeps]
    assert [p.returncode for p in sweeps] == [0, 0], outs
    runs = runs_of(tmp_path)
    assert sorted(r["seed"] for r in runs) == [0, 1] and all(r["status"] == "completed" for r in runs), outs
    assert not list((tmp_path / "results" / "locks").iterdir()), "every lock is released"


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
    records = [runs_of(tmp_path / root)[0] for root in ("quiet", "busy")]
    for record in records:
        assert record["config"]["threads"] == 1 and record["hardware"]["threads"] == 1
        assert record["hardware"]["cpu_capability"] and record["versions"]["torch_blas"]
    assert records[0]["config_hash"] == records[1]["config_hash"]
    assert metrics_of(tmp_path / "quiet") == metrics_of(tmp_path / "busy")
