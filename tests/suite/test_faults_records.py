"""Faults in run records and the report: corrupt, non-finite, duplicated or missing metrics, full disks
and read-only folders at the last write, file modes and cache entries (issues 14 and 19)."""
from __future__ import annotations

import json
import os

import pytest

from bench.provenance import config_hash
from bench.report.cli import main as report_main
from bench.store import RUN_ID_ENV, Run, find_completed, read_run
from tests.suite.faults import PROVENANCE, read_only, record_run, report_of


def test_completed_run_with_corrupt_metrics_is_rerun_and_kept(tmp_path):
    run = record_run(tmp_path)
    digest = read_run(run.dir)[0]["config_hash"]
    (run.dir / "metrics.jsonl").write_text('{"metric": "acc", "val')
    assert find_completed(tmp_path, "toy", digest) is None, "an invalid 'completed' record must not be skipped"
    assert (run.dir / "run.json").is_file() and (run.dir / "INVALID.txt").is_file()


@pytest.mark.parametrize("literal", ["Infinity", "-Infinity", "NaN", "1e400"])
def test_non_finite_metrics_are_refused_and_never_ranked(tmp_path, capsys, literal):
    good = record_run(tmp_path, model="real")
    bad = record_run(tmp_path, model="inf")
    text = (bad.dir / "metrics.jsonl").read_text().replace('"value": 0.5', f'"value": {literal}')
    (bad.dir / "metrics.jsonl").write_text(text)
    out, md = report_of(tmp_path, capsys)
    assert "1 completed run(s) ranked" in out and "1 file(s) skipped" in out
    assert bad.run_id in md and "not a finite number" in md  # listed under skipped files, not ranked
    ranked = [line for line in md.splitlines() if line.startswith("| 1 |")]
    assert len(ranked) == 1 and "real" in ranked[0] and good.run_id


def test_huge_finite_values_do_not_rank_an_overflowed_std(tmp_path, capsys):
    record_run(tmp_path, seed=0, value=1e308, model="big")
    record_run(tmp_path, seed=1, value=-1e308, model="big")
    record_run(tmp_path, seed=0, value=1e308, model="sum")
    record_run(tmp_path, seed=1, value=1e308, model="sum")  # the mean overflows
    _, md = report_of(tmp_path, capsys)
    assert "inf" not in md  # the std of "big" and the mean of "sum" overflow: shown as missing
    assert "| — | sum |" in md  # unranked


def test_two_identical_runs_count_once_and_the_extra_is_listed(tmp_path, capsys):
    first = record_run(tmp_path, seed=0)
    extra = record_run(tmp_path, seed=0)
    out, md = report_of(tmp_path, capsys)
    assert "1 completed run(s) ranked" in out
    kept, dup = sorted([first.run_id, extra.run_id])  # same second: the smaller id counts as the earlier
    assert f"{dup} | duplicate of run {kept}" in md
    assert "| 1 | m | — | — | model.name=m | 1 |" in md  # one seed, not two (rank, model, preset, dataset, …)


def test_a_value_beyond_the_float_range_of_a_spread_is_shown_not_ranked(tmp_path, capsys):
    """A hand-edited record of 1e308 (its square overflows) does not rank first above a real 0.87."""
    record_run(tmp_path, value=1e308, model="edited")
    record_run(tmp_path, value=0.87, model="m")
    _, md = report_of(tmp_path, capsys)
    assert "| 1 | m |" in md and "| 1 | edited |" not in md and "| 2 | edited |" not in md
    assert "edited" in md and "1e+308" in md  # shown, not hidden


def test_run_dir_without_metrics_is_flagged_not_ranked(tmp_path, capsys):
    run = record_run(tmp_path)
    (run.dir / "metrics.jsonl").unlink()
    out, md = report_of(tmp_path, capsys)
    assert "0 completed run(s) ranked" in out and "completed run without metrics" in md


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


def test_every_file_bench_writes_follows_the_umask(tmp_path):
    """safetensors writes its own file (0600): artifacts and cache payloads still get the umask's mode."""
    import torch

    from bench.cache import Cache

    old = os.umask(0o022)
    try:
        run = record_run(tmp_path)
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
    record_run(tmp_path)
    with read_only(tmp_path):
        assert report_main(["--results-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("bench-report: error:") == 1 and "Traceback" not in err and str(tmp_path) in err, err
