"""Faults a hostile but fair user meets, one case per row of issues 14's and 19's tables, each asserting
the behaviour bench now has (real files, real subprocesses, real signals and real full or read-only
filesystems where the row is about them).
"""
from __future__ import annotations

import contextlib
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
    assert "| 1 | m | — | — | model.name=m | 1 |" in md  # one seed, not two (rank, model, preset, dataset, …)


def test_a_value_beyond_the_float_range_of_a_spread_is_shown_not_ranked(tmp_path, capsys):
    """A hand-edited record of 1e308 (its square overflows) does not rank first above a real 0.87."""
    _record(tmp_path, value=1e308, model="edited")
    _record(tmp_path, value=0.87, model="m")
    _, md = _report(tmp_path, capsys)
    assert "| 1 | m |" in md and "| 1 | edited |" not in md and "| 2 | edited |" not in md
    assert "edited" in md and "1e+308" in md  # shown, not hidden


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


@contextlib.contextmanager
def _read_only(path: Path):
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


@pytest.mark.parametrize("where", ["root", "outputs"])
def test_a_read_only_bench_root_or_outputs_is_one_error_line(tmp_path, where):
    folder = tmp_path / "ro" if where == "root" else tmp_path / "outputs"
    folder.mkdir()
    with _read_only(folder):
        line, _ = _fails(TINY, tmp_path / "ro" if where == "root" else tmp_path)
    assert str(folder) in line and ("Permission denied" in line or "Read-only file system" in line), line
    assert not (tmp_path / "results" / "runs").exists()


@pytest.mark.parametrize("where", ["outputs", "root"])
def test_a_file_where_outputs_or_the_bench_root_should_be_is_one_error_line(tmp_path, where):
    """Hydra creates outputs/ before bench's own error handling: checked before Hydra starts."""
    path = tmp_path / where
    path.write_text("not a folder")
    line, _ = _fails(TINY, path if where == "root" else tmp_path)
    assert str(path) in line and "Not a directory" in line, line


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


# -- issue 19: faults that still broke runs ---------------------------------------------------
def _tiny_fit(trainer_cfg, ckpt: Path, max_epochs: int, callbacks=()):
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


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_checkpoint_is_discarded_with_a_warning_and_training_restarts(compose, tmp_path, caplog, damage):
    trainer_cfg = compose(["trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"
    _tiny_fit(trainer_cfg, ckpt, max_epochs=1)  # an interrupted attempt left last.ckpt
    last = ckpt / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(b"\x80not a checkpoint" * 8 if damage == "garbage" else data[: len(data) // 2])
    steps = []
    counter = type("Count", (__import__("lightning").Callback,), {
        "on_train_batch_end": lambda self, trainer, *a: steps.append(trainer.global_step)})()
    with caplog.at_level("WARNING", logger="bench"):
        trainer = _tiny_fit(trainer_cfg, ckpt, max_epochs=2, callbacks=[counter])
    assert trainer.global_step == 8 and len(steps) == 8, "started over (a resume would train 4 steps)"
    assert any("does not load" in r.getMessage() and "discarded" in r.getMessage() for r in caplog.records)
    assert last.is_file() and last.read_bytes() != data[: len(data) // 2], "a new, whole checkpoint"


def test_a_checkpoint_written_with_another_thread_count_is_not_resumed(compose, tmp_path, caplog):
    """Resumed on 2 threads, a training begun on 1 would match neither count's bits: it starts over."""
    import torch

    trainer_cfg = compose(["trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"
    threads = torch.get_num_threads()
    _tiny_fit(trainer_cfg, ckpt, max_epochs=1)
    torch.set_num_threads(threads + 1)
    try:
        with caplog.at_level("WARNING", logger="bench"):
            trainer = _tiny_fit(trainer_cfg, ckpt, max_epochs=2)
    finally:
        torch.set_num_threads(threads)
    assert trainer.global_step == 8 and f"'threads': {threads}" in caplog.text and "discarded" in caplog.text


def test_a_checkpoint_that_records_no_numerics_is_not_resumed(compose, tmp_path, caplog):
    """A last.ckpt without bench's numerics record (another tool's, or an older bench's) is not trusted."""
    import torch

    trainer_cfg = compose(["trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"
    _tiny_fit(trainer_cfg, ckpt, max_epochs=1)
    state = torch.load(ckpt / "last.ckpt", weights_only=True)
    state["callbacks"].pop("bench.ResumeCheckpoint")
    torch.save(state, ckpt / "last.ckpt")
    with caplog.at_level("WARNING", logger="bench"):
        trainer = _tiny_fit(trainer_cfg, ckpt, max_epochs=2)
    assert trainer.global_step == 8 and "records no numerics" in caplog.text and "discarded" in caplog.text


def test_a_failed_checkpoint_save_leaves_no_temporary_file(compose, tmp_path, monkeypatch):
    """A full disk mid-save: the writer's temporary file is removed; the previous checkpoint stays whole."""
    import errno

    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    trainer_cfg = compose(["trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"
    _tiny_fit(trainer_cfg, ckpt, max_epochs=1)
    before = (ckpt / "last.ckpt").read_bytes()

    def full_disk(self, checkpoint, path, storage_options=None):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", full_disk)
    with pytest.raises(OSError, match="No space left"):
        _tiny_fit(trainer_cfg, ckpt, max_epochs=2)
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.ckpt"] and (ckpt / "last.ckpt").read_bytes() == before


def test_a_record_with_no_room_for_an_atomic_copy_is_still_marked_failed(tmp_path, monkeypatch):
    """The last write of a run on a full disk: metrics.jsonl cannot be written, nor a temporary copy of
    run.json; the record is rewritten in place and says failed, and the error reaches the caller."""
    import errno

    import bench.store

    os.environ.pop(RUN_ID_ENV, None)
    config = {"task": {"name": "toy"}, "seed": 0}
    run = Run(tmp_path, "toy", config, config_hash=config_hash(config), overrides=[], seed=0, provenance=PROVENANCE)

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="No space left"), run:
        run.log_metric("acc", 0.5, flush=False)
        monkeypatch.setattr(bench.store, "atomic_write_text", no_space)
        monkeypatch.setattr(bench.store, "atomic_write_json", no_space)
    record = json.loads((run.dir / "run.json").read_text())
    assert record["status"] == "failed" and "No space left" in record["error"] and "metrics.jsonl" in record["error"]


@pytest.mark.skipif(os.geteuid() != 0, reason="a full disk is a small tmpfs mounted as root")
def test_a_full_disk_mid_run_leaves_the_record_failed_and_no_temporary_file(tmp_path):
    root = tmp_path / "small"
    root.mkdir()
    mount = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=120k", "tmpfs", str(root)], capture_output=True, text=True)
    if mount.returncode:
        pytest.skip(f"cannot mount a tmpfs here ({mount.stderr.strip()})")
    try:
        line, _ = _fails([*TINY, "trainer.max_steps=-1", "trainer.max_epochs=3", "data.batch_size=64"], root)
        assert "no space left on device" in line and "recorded as failed" in line, line
        (record,) = _runs(root)
        assert record["status"] == "failed" and "No space left" in record["error"]
        leftovers = [p for p in root.rglob(".*") if p.is_file()]
        assert not leftovers, f"temporary files left behind: {leftovers}"
    finally:
        subprocess.run(["umount", str(root)], check=True)


def test_checkpoint_folders_have_one_owner_a_second_process_waits(compose, tmp_path):
    """A live process owns a checkpoint folder: a second training of the same model waits for it instead
    of resuming, overwriting or deleting its checkpoint, then trains."""
    ckpt = tmp_path / "ckpt"
    ckpt.mkdir()
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from bench.lock import FileLock; "
                               f"assert FileLock({str(ckpt / 'owner.lock')!r}).acquire() is None; "
                               "open(sys.argv[1], 'w').close(); time.sleep(3)", str(tmp_path / "held")],
                              env={**os.environ, "PYTHONPATH": str(REPO)})
    deadline = time.monotonic() + 60
    while not (tmp_path / "held").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    t0 = time.monotonic()
    trainer = _tiny_fit(compose(["trainer.enable_progress_bar=false"]).trainer, ckpt, max_epochs=1)
    waited = time.monotonic() - t0
    assert holder.wait(timeout=60) == 0 and trainer.global_step == 4
    assert waited > 1.5, f"trained into a live process's checkpoint folder after {waited:.1f} s"


def test_two_runs_of_one_config_sharing_a_cache_both_complete_with_the_same_metrics(tmp_path):
    """skip_existing=false: two runs of one config at once, one cache; neither fails, resumes the other's
    checkpoint or deletes its folder."""
    args = [*RESUMABLE, "skip_existing=false"]
    first = bench(*args, root=tmp_path)
    deadline = time.monotonic() + 240  # the second starts once the first has a checkpoint: mid-training
    while not list(tmp_path.glob(".cache/bench/whitening/trained/*/last.ckpt")) and first.poll() is None \
            and time.monotonic() < deadline:
        time.sleep(0.01)
    procs = [first, bench(*args, root=tmp_path)]
    outs = [p.communicate(timeout=300)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs[0][-3000:] + outs[1][-3000:]
    runs = [read_run(d) for d in sorted((tmp_path / "results" / "runs" / "whitening").iterdir())]
    assert [r[0]["status"] for r in runs] == ["completed", "completed"]
    assert not any(r[0].get("resumed") for r in runs), "neither resumed the other's checkpoint"
    values = [{(m["metric"], json.dumps(m["params"], sort_keys=True)): m["value"] for m in rows} for _, rows in runs]
    assert values[0] == values[1]
    assert not list((tmp_path / ".cache" / "bench" / "whitening" / "trained").glob("*.ckpt")), "no checkpoint left"


def test_every_file_bench_writes_follows_the_umask(tmp_path):
    """safetensors writes its own file (0600): artifacts and cache payloads still get the umask's mode."""
    import torch

    from bench.cache import Cache

    old = os.umask(0o022)
    try:
        run = _record(tmp_path)
        paths = [run.dir / "run.json", run.save_tensors("t", {"a": torch.zeros(2)})]
        cache = Cache(tmp_path / "cache")
        cache.tensors("kind", {"k": 1}, lambda: {"a": torch.zeros(2)})
        paths += list((tmp_path / "cache" / "kind").iterdir())
    finally:
        os.umask(old)
    assert {p.name: oct(p.stat().st_mode & 0o777) for p in paths} == {p.name: "0o644" for p in paths}


def test_every_file_of_a_cache_folder_is_hashed(tmp_path, caplog):
    """An open_clip folder is its config and its weights: a torn open_clip_config.json is rebuilt (or an
    error under cache.strict), never loaded."""
    from bench.cache import Cache
    from bench.errors import CacheError

    cache = Cache(tmp_path)
    folder = cache.path("modality_gap/clip", {"arch": "tiny"}, suffix="", name="tiny")
    folder.mkdir(parents=True)
    (folder / "open_clip_config.json").write_text('{"model_cfg": {"embed_dim": 32}}')
    (folder / "checkpoint").mkdir()  # a training in progress is not part of the entry
    (folder / "weights.safetensors").write_bytes(b"weights")
    cache.seal(folder / "weights.safetensors")
    assert cache.verify(folder / "weights.safetensors")
    (folder / "open_clip_config.json").write_text('{"model_cfg": {"embed_d')
    with caplog.at_level("WARNING", logger="bench.cache"):
        assert not cache.verify(folder / "weights.safetensors")
    assert "torn open_clip_config.json" in caplog.text
    with pytest.raises(CacheError, match="open_clip_config.json"):
        Cache(tmp_path, strict=True).verify(folder / "weights.safetensors")


def test_bench_report_on_a_read_only_results_folder_is_one_error_line(tmp_path, capsys):
    _record(tmp_path)
    with _read_only(tmp_path):
        assert report_main(["--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("bench-report: error:") == 1 and "Traceback" not in err and str(tmp_path) in err, err


def test_a_gpu_trainer_without_a_gpu_is_one_error_line_before_any_work(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    line, _ = _fails([*TINY, "trainer=gpu"], tmp_path)
    assert "trainer.accelerator=gpu" in line and "use trainer=cpu" in line
    assert not (tmp_path / "results" / "runs").exists(), "a config error leaves no record"


def test_an_exploding_but_finite_training_is_failed_not_completed(tmp_path):
    """lr=1e12: the weights explode yet stay finite, and the model scores chance; the loss gate fails the run."""
    proc = bench(*TINY, "trainer.max_steps=-1", "trainer.max_epochs=2", "data.batch_size=64", "task.optim.lr=1e12",
                 root=tmp_path)
    out = proc.communicate(timeout=300)[0]
    assert proc.returncode == 2 and "bench: error: training diverged: the loss grew" in out, out
    (record,) = _runs(tmp_path)
    assert record["status"] == "failed" and "TrainingError" in record["error"]
