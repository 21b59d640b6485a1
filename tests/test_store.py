"""The results store: schema v1 on every write and read, atomic writes, unique run ids."""
import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from bench.provenance import config_hash, git_state, hardware, versions
from bench.schema import SchemaError, export_schemas, validate_metric, validate_run
from bench.store import Run, find_completed, new_run_id, read_run


def _run(results_dir, **kw):
    config = {"task": {"name": "toy"}, "seed": 0, "paths": {"results_dir": str(results_dir)}}
    prov = {"git": git_state(), "versions": versions(), "hardware": hardware()}
    return Run(results_dir, "toy", config, config_hash=config_hash(config), overrides=[], seed=0,
               provenance=prov, **kw)


def test_completed_run_validates_and_reads_back(tmp_path):
    with _run(tmp_path) as run:
        run.log_metric("acc", 0.5, params={"arch": "x", "alpha": 0.25}, n=10)
        run.log_metric("acc5", float("nan"))
        run.set_model("m", "scratch", 12)
    record, rows = read_run(run.dir)
    assert record["status"] == "completed" and record["wall_time_s"] >= 0
    assert record["model"] == {"name": "m", "source": "scratch", "n_params": 12, "weights": None}
    assert [r["metric"] for r in rows] == ["acc", "acc5"] and rows[1]["value"] is None
    assert record["versions"]["torch"] and record["hardware"]["hostname"]


def test_failed_run_is_marked_failed(tmp_path):
    with pytest.raises(RuntimeError):
        with _run(tmp_path) as run:
            run.log_metric("acc", 0.1)
            raise RuntimeError("boom")
    record, rows = read_run(run.dir)
    assert record["status"] == "failed" and "boom" in record["error"] and len(rows) == 1
    assert find_completed(tmp_path, "toy", record["config_hash"]) is None


def test_schema_rejects_malformed_records(tmp_path):
    with _run(tmp_path) as run:
        pass
    good = json.loads((run.dir / "run.json").read_text())
    for broken in ({**good, "status": "done"}, {k: v for k, v in good.items() if k != "config_hash"},
                   {**good, "run_id": "x"}, {**good, "surprise": 1}):
        with pytest.raises(SchemaError):
            validate_run(broken)
    row = {"run_id": good["run_id"], "task": "toy", "metric": "acc", "value": 0.5, "params": {},
           "split": "test", "n": 3, "higher_is_better": True}
    validate_metric(row)
    for broken in ({**row, "value": "high"}, {**row, "params": {"a": [1, 2]}}, {**row, "metric": "bad metric"}):
        with pytest.raises(SchemaError):
            validate_metric(broken)
    (run.dir / "run.json").write_text(json.dumps({**good, "status": "maybe"}))
    with pytest.raises(SchemaError, match="run.json"):
        read_run(run.dir)


def test_run_ids_unique_within_one_second():
    ids = {new_run_id() for _ in range(2000)}
    assert len(ids) == 2000


def test_sequential_runs_in_one_process_get_their_own_ids(tmp_path):
    with _run(tmp_path) as a:
        pass
    with _run(tmp_path) as b:
        pass
    assert a.run_id != b.run_id and a.dir != b.dir


def test_export_schemas(tmp_path):
    paths = export_schemas(tmp_path / "schema")
    assert sorted(p.name for p in paths) == ["metric.schema.json", "run.schema.json", "run.v1.schema.json"]
    assert json.loads(paths[0].read_text())["title"]


@pytest.mark.integration  # a second Python killed mid-write
def test_kill_mid_write_leaves_no_partial_record(tmp_path):
    """SIGKILL a process while it rewrites metrics.jsonl over and over: whatever is on disk parses."""
    script = textwrap.dedent(f"""
        import sys; sys.path.insert(0, {str(os.getcwd())!r})
        from tests.test_store import _run
        from pathlib import Path
        with _run(Path({str(tmp_path)!r})) as run:
            print(run.dir, flush=True)
            for i in range(1_000_000):
                run.log_metric("m", float(i), params={{"i": i, "pad": "x" * 2000}})
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    run_dir = proc.stdout.readline().strip()
    import time

    time.sleep(3)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    from pathlib import Path

    record = json.loads((Path(run_dir) / "run.json").read_text())
    assert record["status"] == "running"  # never mistaken for a finished run
    lines = (Path(run_dir) / "metrics.jsonl").read_text().splitlines()
    assert lines and all(json.loads(line)["metric"] == "m" for line in lines)
    leftovers = [p for p in Path(run_dir).iterdir() if p.suffix == ".tmp"]
    for p in leftovers:  # an orphaned temp file is never mistaken for a record
        assert p.name.startswith(".")


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_reads_refuse_non_finite_numbers(tmp_path, literal):
    with _run(tmp_path) as run:
        run.log_metric("acc", 0.5)
    line = (run.dir / "metrics.jsonl").read_text().replace('"value": 0.5', f'"value": {literal}')
    (run.dir / "metrics.jsonl").write_text(line)
    with pytest.raises(SchemaError, match="is not a finite number|: not a finite number"):
        read_run(run.dir)


def test_writes_refuse_non_finite_numbers(tmp_path):
    with _run(tmp_path) as run:
        good = run.log_metric("acc", 1e308)  # finite, if large: accepted
        for bad in ({**good, "value": float("inf")}, {**good, "stderr": float("nan")},
                    {**good, "params": {"alpha": float("-inf")}}):
            with pytest.raises(SchemaError, match="is not a finite number|: not a finite number"):
                validate_metric(bad)
    assert read_run(run.dir)[1][0]["value"] == 1e308


def test_skip_existing_revalidates_and_marks_an_invalid_completed_record(tmp_path):
    from bench.store import INVALID_MARK

    with _run(tmp_path) as run:
        run.log_metric("acc", 0.5)
    digest = read_run(run.dir)[0]["config_hash"]
    assert find_completed(tmp_path, "toy", digest) == run.dir
    (run.dir / "metrics.jsonl").write_text('{"truncated": ')
    assert find_completed(tmp_path, "toy", digest) is None  # re-run it...
    assert (run.dir / "run.json").is_file() and "not valid" in (run.dir / INVALID_MARK).read_text()  # ...kept, marked
    (run.dir / "metrics.jsonl").unlink()
    with pytest.raises(SchemaError, match="completed run without metrics"):
        read_run(run.dir)


def test_config_lock_is_exclusive_and_breaks_only_a_dead_holders_lock(tmp_path):
    import socket

    from bench.lock import ConfigLock

    first, second = ConfigLock(tmp_path, "toy", "abc"), ConfigLock(tmp_path, "toy", "abc")
    assert first.acquire() is None
    holder = second.acquire()
    assert holder["pid"] == os.getpid() and holder["host"] == socket.gethostname()
    first.release()
    assert second.acquire() is None
    second.release()
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    first.path.write_text(json.dumps({"pid": int(dead.stdout), "host": socket.gethostname()}))  # killed holder
    assert second.acquire() is None and json.loads(second.path.read_text())["pid"] == os.getpid()
    second.release()
    first.path.write_text(json.dumps({"pid": 1, "host": "another-node"}))  # cannot be checked: respected
    assert ConfigLock(tmp_path, "toy", "abc").acquire()["host"] == "another-node"


def test_files_respect_the_umask(tmp_path):
    from bench.atomic import atomic_save, atomic_write_text

    old = os.umask(0o022)
    try:
        atomic_write_text(tmp_path / "a.txt", "x")
        atomic_save(tmp_path / "b.bin", lambda p: open(p, "wb").write(b"x"))
        os.umask(0o077)
        atomic_write_text(tmp_path / "c.txt", "x")
    finally:
        os.umask(old)
    assert [(tmp_path / n).stat().st_mode & 0o777 for n in ("a.txt", "b.bin", "c.txt")] == [0o644, 0o644, 0o600]
