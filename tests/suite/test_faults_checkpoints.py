"""Resume that works: a killed training resumes at the next epoch with the same metrics; a corrupt, foreign
or other-thread-count checkpoint is not resumed; a failed save leaves no temporary file; a checkpoint folder
has one owner."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench.store import read_run
from tests.suite.faults import REPO, RESUMABLE, bench, metrics_of, runs_of, tiny_fit


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
    records = {r["status"]: r for r in runs_of(killed_root)}
    assert set(records) == {"failed", "running"} - ({"failed"} if signum == "SIGKILL" else {"running"}) | {"completed"}
    (note,) = records["completed"]["resumed"]
    assert note["step"] % 4 == 0 and 4 <= note["step"] < 160 and note["epoch"] == note["step"] // 4
    assert metrics_of(killed_root) == metrics_of(tmp_path / "clean")
    assert not list(ckpts.glob("*/last.ckpt")), "checkpoints are removed once the training is cached"


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_corrupt_checkpoint_is_discarded_with_a_warning_and_training_restarts(compose, tmp_path, caplog, damage):
    trainer_cfg = compose(["task=whitening", "trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"
    tiny_fit(trainer_cfg, ckpt, max_epochs=1)  # an interrupted attempt left last.ckpt
    last = ckpt / "last.ckpt"
    data = last.read_bytes()
    last.write_bytes(b"\x80not a checkpoint" * 8 if damage == "garbage" else data[: len(data) // 2])
    steps = []
    counter = type("Count", (__import__("lightning").Callback,), {
        "on_train_batch_end": lambda self, trainer, *a: steps.append(trainer.global_step)})()
    with caplog.at_level("WARNING", logger="bench"):
        trainer = tiny_fit(trainer_cfg, ckpt, max_epochs=2, callbacks=[counter])
    assert trainer.global_step == 8 and len(steps) == 8, "started over (a resume would train 4 steps)"
    assert any("does not load" in r.getMessage() and "discarded" in r.getMessage() for r in caplog.records)
    assert last.is_file() and last.read_bytes() != data[: len(data) // 2], "a new, whole checkpoint"


def test_a_checkpoint_written_with_another_thread_count_is_not_resumed(compose, tmp_path, caplog):
    """Resumed on 2 threads, a training begun on 1 would match neither count's bits: it starts over."""
    import torch

    trainer_cfg = compose(["task=whitening", "trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"
    threads = torch.get_num_threads()
    tiny_fit(trainer_cfg, ckpt, max_epochs=1)
    torch.set_num_threads(threads + 1)
    try:
        with caplog.at_level("WARNING", logger="bench"):
            trainer = tiny_fit(trainer_cfg, ckpt, max_epochs=2)
    finally:
        torch.set_num_threads(threads)
    assert trainer.global_step == 8 and f"'threads': {threads}" in caplog.text and "discarded" in caplog.text


def test_a_checkpoint_that_records_no_numerics_is_not_resumed(compose, tmp_path, caplog):
    """A last.ckpt without bench's numerics record (another tool's, or an older bench's) is not trusted."""
    import torch

    trainer_cfg = compose(["task=whitening", "trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"
    tiny_fit(trainer_cfg, ckpt, max_epochs=1)
    state = torch.load(ckpt / "last.ckpt", weights_only=True)
    state["callbacks"].pop("bench.ResumeCheckpoint")
    torch.save(state, ckpt / "last.ckpt")
    with caplog.at_level("WARNING", logger="bench"):
        trainer = tiny_fit(trainer_cfg, ckpt, max_epochs=2)
    assert trainer.global_step == 8 and "records no numerics" in caplog.text and "discarded" in caplog.text


def test_a_failed_checkpoint_save_leaves_no_temporary_file(compose, tmp_path, monkeypatch):
    """A full disk mid-save: the writer's temporary file is removed; the previous checkpoint stays whole."""
    import errno

    from lightning.fabric.plugins.io.torch_io import TorchCheckpointIO

    trainer_cfg = compose(["task=whitening", "trainer.enable_progress_bar=false"]).trainer
    ckpt = tmp_path / "ckpt"
    tiny_fit(trainer_cfg, ckpt, max_epochs=1)
    before = (ckpt / "last.ckpt").read_bytes()

    def full_disk(self, checkpoint, path, storage_options=None):
        Path(path).write_bytes(b"half a checkpoint")
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(TorchCheckpointIO, "save_checkpoint", full_disk)
    with pytest.raises(OSError, match="No space left"):
        tiny_fit(trainer_cfg, ckpt, max_epochs=2)
    assert sorted(p.name for p in ckpt.iterdir()) == ["last.ckpt"] and (ckpt / "last.ckpt").read_bytes() == before


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
    trainer = tiny_fit(compose(["task=whitening", "trainer.enable_progress_bar=false"]).trainer, ckpt, max_epochs=1)
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
