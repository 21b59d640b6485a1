"""A fourth task added outside bench/ (tests/fixture_task), end to end: `bench` finds it through
$BENCH_TASKS, runs it, records its claim verdicts; `bench-report` shows its Paper claims table and
`--check-claims` gates on the claim its preset targets. docs/adding_a_task.md shows the fixture's
files verbatim; this test keeps the page true."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from bench.report.cli import main as report_main

REPO = Path(__file__).resolve().parents[2]
FIXTURE = REPO / "tests" / "fixture_task"
BENCH = Path(sys.executable).parent / "bench"


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> Path:
    """Two runs of the fixture preset: true labels (the claim holds) and shuffled labels (it fails)."""
    root = tmp_path_factory.mktemp("fixture_task")
    env = {**os.environ, "BENCH_ROOT": str(root), "BENCH_TASKS": "tests.fixture_task",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]), "OMP_NUM_THREADS": "1"}
    env.pop("BENCH_RUN_ID", None)
    res = subprocess.run([str(BENCH), "--config-dir", str(FIXTURE / "conf"), "-m", "experiment=lsq_digits/tiny",
                          "task.shuffle_labels=false,true", "logger=none"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return root / "results"


def records(results: Path) -> dict[bool, dict]:
    out = {}
    for path in (results / "runs" / "lsq_digits").glob("*/run.json"):
        record = json.loads(path.read_text())
        out[record["config"]["task"]["shuffle_labels"]] = record
    return out


@pytest.mark.integration  # reads the bench sweep of the fixture task
def test_bench_runs_a_task_found_outside_bench_and_records_its_claims(results):
    by_shuffle = records(results)
    assert set(by_shuffle) == {False, True}
    for shuffled, record in by_shuffle.items():
        assert record["status"] == "completed" and record["schema_version"] == 2
        assert record["preset"] == "lsq_digits/tiny"
        [claim] = record["claims"]
        assert claim["id"] == "linearly_separable" and claim["targeted"] is True
        assert claim["verdict"] == ("not reproduced" if shuffled else "reproduced")
        assert claim["figures"][0].startswith("accuracy = ")
    assert by_shuffle[False]["claims"][0]["value"] > 0.9 and by_shuffle[True]["claims"][0]["value"] < 0.3


@pytest.mark.integration  # reads the bench sweep of the fixture task
def test_bench_report_shows_the_claims_table_and_gates_on_targeted_claims(results, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BENCH_TASKS", "tests.fixture_task")
    assert report_main(["--results-dir", str(results), "--claims", "--check-claims"]) == 1
    out, err = capsys.readouterr()
    assert "### Paper claims: lsq_digits" in out
    assert "check-claims: 1 of 2 targeted claim(s) reproduced, 1 not reproduced" in out
    assert "claim lsq_digits/linearly_separable targeted by lsq_digits/tiny is not reproduced" in err
    md = (results / "leaderboard.md").read_text()
    table = md.split("### Paper claims: lsq_digits")[1]
    assert re.search(r"\| ridge_least_squares / sklearn_digits task\.shuffle_labels=False \| 0\.9\d\d \| "
                     r"reproduced \(\+\d+\.\d se\) \| yes \(lsq_digits/tiny\) \| accuracy = 0\.9", table)
    assert 'id="claims-lsq_digits"' in (results / "leaderboard.html").read_text()
    csv = pd.read_csv(results / "leaderboard_claims.csv")
    assert sorted(csv["verdict"]) == ["not reproduced", "reproduced"] and set(csv["task"]) == {"lsq_digits"}

    # The same folder without the shuffled-label run: every targeted claim holds.
    passing = tmp_path / "results"
    shutil.copytree(results, passing)
    shutil.rmtree(passing / "runs" / "lsq_digits" / records(results)[True]["run_id"])
    assert report_main(["--results-dir", str(passing), "--check-claims"]) == 0
    assert "check-claims: 1 of 1 targeted claim(s) reproduced" in capsys.readouterr().out


def test_no_file_under_bench_names_the_fixture_task():
    named = [p for p in (REPO / "bench").rglob("*") if p.is_file() and p.suffix in (".py", ".yaml", ".json")
             and ("lsq_digits" in p.read_text() or "fixture_task" in p.read_text())]
    assert named == [], "bench/ must not name the fixture task: it is found, not listed"


def test_the_guide_shows_the_fixture_files_verbatim():
    guide = (REPO / "docs" / "adding_a_task.md").read_text()
    blocks = dict(re.findall(r"<!-- file: (\S+) -->\n```\w*\n(.*?)```", guide, re.S))
    expected = ["tests/fixture_task/card.py", "tests/fixture_task/task.py",
                "tests/fixture_task/conf/task/lsq_digits.yaml", "tests/fixture_task/conf/experiment/lsq_digits/tiny.yaml"]
    assert sorted(blocks) == sorted(expected)
    for path, text in blocks.items():
        assert text == (REPO / path).read_text(), f"docs/adding_a_task.md is out of date for {path}"


def _run_embedded(monkeypatch, tmp_path, rc=0):
    """scripts/run_embedded.py's main with every sweep a fake that ends with ``rc``; the calls it made."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("run_embedded", REPO / "scripts" / "run_embedded.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    calls = []

    class Ended:  # a sweep that has ended with rc
        def __init__(self, cmd, **kw):
            calls.append(cmd[1:])

        def poll(self):
            return rc

        wait = poll

    monkeypatch.setenv("BENCH_TASKS", "tests.fixture_task")
    monkeypatch.setenv("BENCH_ROOT", str(tmp_path))
    monkeypatch.setattr(script.subprocess, "Popen", Ended)
    monkeypatch.setattr(script.subprocess, "run", lambda cmd, **kw: calls.append(cmd[1:]) or
                        subprocess.CompletedProcess(cmd, 0, stdout="### Paper claims: lsq_digits\n"))
    return script.main(), calls


def test_make_run_runs_every_task_found_at_once_and_ends_with_the_claims(monkeypatch, capsys, tmp_path):
    code, calls = _run_embedded(monkeypatch, tmp_path)
    assert code == 0
    from bench.tasks import tasks

    # one sweep over the seeds each card declares for its preset (the fixture: 0, 1, 2), all started
    # together, each with the threads its card declares (1 unless declared), whatever the machine's cores
    sweeps = [["-m", f"experiment={t.card.preset}", "seed=" + ",".join(map(str, t.card.seeds_for(t.card.preset))),
               f"threads={t.card.threads_for(t.card.preset)}"] if t.card.seeds_for(t.card.preset)
              else [f"experiment={t.card.preset}", f"threads={t.card.threads_for(t.card.preset)}"]
              for t in tasks().values()]
    assert calls[0][-1] == "threads=1"  # the fixture declares none
    assert calls == [*sweeps, ["--claims"]]
    assert calls[0][:3] == ["-m", "experiment=lsq_digits/tiny", "seed=0,1,2"]
    assert len(list((tmp_path / "results" / "logs").glob("lsq_digits-*.log"))) == 1
    assert capsys.readouterr().out.rstrip().endswith("### Paper claims: lsq_digits")


def test_make_run_reports_a_failed_sweep_and_still_builds_the_leaderboard(monkeypatch, capsys, tmp_path):
    code, calls = _run_embedded(monkeypatch, tmp_path, rc=-9)  # killed by SIGKILL
    assert code == 137 and calls[-1] == ["--claims"]
    assert "failed with exit code -9" in capsys.readouterr().err


def test_outside_its_own_package_no_module_names_a_task():
    """bench/ (outside each task's package) and scripts/ are generic: they find tasks, never name them."""
    from bench.tasks import tasks

    found = {name: REPO.joinpath(*task.package.split(".")) for name, task in tasks().items()}
    own = [d for d in found.values() if REPO / "bench" in d.parents]
    named = []
    for path in [*(REPO / "bench").rglob("*"), *(REPO / "scripts").rglob("*")]:
        if path.suffix not in (".py", ".yaml", ".json", ".sh") or any(d in path.parents for d in own):
            continue
        text = path.read_text()
        named += [f"{path.relative_to(REPO)}: {name}" for name in found if re.search(rf"\b{name}\b", text)]
    assert named == []


@pytest.mark.integration  # reads the bench sweep of the fixture task
def test_a_task_package_without_a_card_is_one_clear_error(results, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_TASKS", "tests.report")  # a package, but not a task
    assert report_main(["--results-dir", str(results)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("bench-report: error: task package 'tests.report' has no card") and "adding_a_task.md" in err
