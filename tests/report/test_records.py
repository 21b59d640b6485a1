"""Claim verdicts in run records: results schema v2, the v1 migration, and the W&B mirror."""
from __future__ import annotations

import json

import pytest

from bench.report import write_report
from bench.schema import SchemaError, upgrade_run
from bench.store import read_run
from bench.tasks import get_task, record_claims
from tests.report.conftest import new_run


class FakeTracker:
    """Records what the run mirrors (the real Tracker needs a W&B run)."""
    mode, run_id = "offline", "fake"

    def __init__(self) -> None:
        self.claims, self.rows = None, []

    def log_row(self, row): self.rows.append(row)  # noqa: E704
    def log_claims(self, claims): self.claims = claims  # noqa: E704
    def log_table(self, name, rows): pass  # noqa: E704
    def finish(self, exit_code=0): pass  # noqa: E704


def _gap_run(results_dir, tracker=None):
    run = new_run(results_dir, "modality_gap", "ViT-B-16", "cifar10", 0)
    run.tracker = tracker
    with run:
        run.log_metrics([{"metric": "acc1", "value": 0.9, "params": {"alpha": a, "mode": "paper"}} for a in (0, 1)])
        record_claims(get_task("modality_gap"), run)
    return run


def test_a_run_records_its_verdicts_and_mirrors_them_to_wandb(tmp_path):
    tracker = FakeTracker()
    run = _gap_run(tmp_path, tracker)
    record, _ = read_run(run.dir)
    assert record["schema_version"] == 2 and record["preset"] == "modality_gap/embedded"
    by_id = {c["id"]: c for c in record["claims"]}
    assert by_id["clean_accuracy_unchanged"]["verdict"] == "reproduced" and by_id["clean_accuracy_unchanged"]["targeted"]
    assert by_id["robustness_rises"]["verdict"] == "not measured" and by_id["robustness_rises"]["targeted"]
    assert by_id["gap_forms_from_isotropic_init"]["targeted"] is False
    assert tracker.claims == record["claims"]


def _as_v1(run_dir):
    path = run_dir / "run.json"
    record = json.loads(path.read_text())
    for key in ("preset", "claims"):
        del record[key]
    record["schema_version"] = 1
    path.write_text(json.dumps(record))
    return record


def test_v1_records_are_read_migrated_and_checked_by_the_report(tmp_path):
    run = _gap_run(tmp_path)
    _as_v1(run.dir)
    record, rows = read_run(run.dir)
    assert record["schema_version"] == 2 and record["preset"] == "modality_gap/embedded" and record["claims"] is None
    report = write_report(tmp_path)
    [line] = [line for line in report.claims["modality_gap"] if line.claim.id == "clean_accuracy_unchanged"]
    assert line.verdict.status == "reproduced" and line.targeted  # the report checks the metrics itself


def test_a_v1_record_must_follow_v1_and_a_newer_version_asks_for_an_upgrade(tmp_path):
    run = _gap_run(tmp_path)
    v1 = _as_v1(run.dir)
    with pytest.raises(SchemaError, match="run.v1.schema.json"):
        upgrade_run({**v1, "claims": []})  # v2 keys are not part of v1
    with pytest.raises(SchemaError, match="schema_version 3 is newer than this bench reads"):
        upgrade_run({**v1, "schema_version": 3})
    with pytest.raises(SchemaError, match="run.schema.json"):
        upgrade_run({**v1, "schema_version": 2})  # v2 without its required keys
