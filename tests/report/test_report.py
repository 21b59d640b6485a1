"""bench-report on a realistic results folder: aggregation, ranking, unfinished runs, bad files."""
from __future__ import annotations

import json
import re

import pandas as pd
import pytest

from bench.report.aggregate import build_leaderboards, group_hash
from bench.report.cli import main
from bench.report.collect import collect
from bench.shift.card import CARD


@pytest.fixture
def report(reported):
    return reported[1]


def board(boards, task):
    return next(b for b in boards if b.task == task)


def test_seeds_of_one_config_form_one_row_with_mean_std(results):
    boards = build_leaderboards(collect(results.dir).completed)
    whitening = board(boards, "whitening")
    resnet = next(r for r in whitening.rows if r.model == "resnet20")
    assert resnet.n_seeds == 3 and resnet.seeds == [0, 1, 2]
    fit_true = next(c for c in whitening.columns if c.metric == "formula_fit_r" and c.params == {"labels": "true"})
    cell = resnet.cells[fit_true.key]
    assert cell.n == 3
    assert cell.mean == pytest.approx(0.92) and cell.std == pytest.approx(0.02)  # sample std of .90/.92/.94
    # The headline keeps only delta=10 of autocorr; delta=2 stays in the per-condition table.
    autocorr = [c for c in whitening.columns if c.metric == "autocorr"]
    assert [c.params for c in autocorr] == [{"filters": "trained"}]
    assert resnet.cells[autocorr[0].key].mean == pytest.approx(0.21)
    deltas = {json.loads(p)["delta"] for p in whitening.conditions.query("metric == 'autocorr'")["params"]}
    assert deltas == {2, 10}


def test_seed_is_the_only_key_left_out_of_the_group(results):
    runs = collect(results.dir).completed
    by_id = {r.record["run_id"]: r for r in runs}
    seeds = [by_id[results.ids[f"whitening/resnet20/{s}"]] for s in (0, 1, 2)]
    assert len({r.record["config_hash"] for r in seeds}) == 3  # the seed changes the full hash
    assert len({group_hash(r.record) for r in seeds}) == 1
    assert group_hash(by_id[results.ids["whitening/vgg11/0"]].record) != group_hash(seeds[0].record)


def test_rank_follows_each_columns_direction(results):
    boards = build_leaderboards(collect(results.dir).completed)
    whitening = board(boards, "whitening")
    assert whitening.columns[0].label == "formula fit r [labels=true]"  # registry order picks the ranker
    assert [(r.model, r.rank) for r in whitening.rows] == [("vgg11", 1), ("resnet20", 2)]  # higher is better
    toy = board(boards, "toy")  # unregistered: generic columns, direction from the rows
    assert toy.fallback and [c.label for c in toy.columns] == ["loss"]
    assert [(r.model, r.rank) for r in toy.rows] == [("cnn", 1), ("mlp", 2)]  # lower loss ranks first
    gap = board(boards, "modality_gap")
    assert [c.label for c in gap.columns][:2] == ["acc@1 [alpha=0.0, mode=paper]", "acc@1 [alpha=1.0, mode=paper]"]
    assert [r.model for r in gap.rows] == ["ViT-L-14, pretrained=openai", "ViT-B-16, pretrained=openai"]


def test_rows_are_models_under_test_and_claims_are_per_seed_group(reported):
    results, report = reported
    """One shift run trains two classifiers: two rows (the card's ranking unit), one set of claim lines."""
    shift = board(build_leaderboards(collect(results.dir).completed), "shift")
    assert [(r.model, r.rank) for r in shift.rows] == [("resnet20, width=0.5", 1), ("mlp_mixer, width=0.25", 2)]
    assert len(shift.groups) == 1 and all(r.seed_group is shift.groups[0] for r in shift.rows)
    assert [c.label for c in shift.columns] == ["AUC acc-vs-intensity [aug=False, family=overlap]",
                                              "accuracy drop [aug=False, family=overlap]"]
    auc, drop = shift.columns
    assert [round(r.cells[auc.key].mean, 3) for r in shift.rows] == [0.32, 0.28]
    assert [round(r.cells[drop.key].mean, 3) for r in shift.rows] == [0.4, 0.8]
    lines = report.claims["shift"]
    assert len(lines) == len(CARD.claims) and {line.row.group for line in lines} == {shift.groups[0].group}
    # The generator metric names no classifier: it is in the per-condition table once, never a column.
    assert len(shift.conditions.query("metric == 'latent_mmd2'")) == 1


def test_registry_where_keeps_the_headline_small_and_conditions_complete(results):
    gap = board(build_leaderboards(collect(results.dir).completed), "modality_gap")
    assert [c.params for c in gap.columns if c.metric == "robustness"] == [
        {"alpha": 0.0, "mode": "paper", "perturbation": "gaussian"},
        {"alpha": 1.0, "mode": "paper", "perturbation": "gaussian"}]
    assert not [c for c in gap.columns if c.params.get("mode") == "symmetric" or c.params.get("alpha") == 0.5]
    vit_b = next(r for r in gap.rows if r.model.startswith("ViT-B-16"))
    rob_alpha1 = next(c for c in gap.columns if c.metric == "robustness" and c.params["alpha"] == 1.0)
    assert vit_b.cells[rob_alpha1.key].mean == pytest.approx(0.85)  # mean of levels 0.005 (0.9), 0.04 (0.8)
    acc = gap.conditions.query("metric == 'acc1' and group == @vit_b.seed_group.group")
    assert len(acc) == 6  # every alpha x mode kept apart in the per-condition table


def test_unfinished_runs_are_listed_not_ranked(reported):
    results, report = reported
    c = report.collection
    assert {r.record["run_id"]: r.status for r in c.unfinished} == {
        results.ids["whitening/failed"]: "failed", results.ids["whitening/running"]: "running"}
    md = report.outputs["markdown"].read_text()
    ranked, listed = md.split("## Not ranked: failed or still running")
    assert "cifar10" not in ranked.split("## whitening")[1]  # the failed/running configs have no row
    assert "0.990" not in ranked
    assert results.ids["whitening/failed"] in listed and "RuntimeError: CUDA out of memory" in listed
    assert results.ids["whitening/running"] in listed and "| running |" in listed


def test_bad_files_are_reported_by_path_and_good_runs_kept(reported):
    results, report = reported
    reasons = {p.path: p.reason for p in report.collection.problems}
    assert set(reasons) == set(results.bad_paths.values())
    assert "metrics.jsonl:2: not valid JSON" in reasons[results.bad_paths["corrupt_metrics"]]
    assert "run.json: not valid JSON" in reasons[results.bad_paths["malformed_run_json"]]
    assert "'run_id' is a required property" in reasons[results.bad_paths["invalid_run_json"]]
    assert len(report.collection.completed) == 9  # every good run survives the bad ones
    md = report.outputs["markdown"].read_text()
    skipped = md.split("## Skipped files")[1]
    for path in results.bad_paths.values():
        assert path.relative_to(results.dir).as_posix() in skipped


def test_cli_writes_every_output_and_names_skipped_files(results, capsys):
    assert main(["--results-dir", str(results.dir)]) == 0
    out, err = capsys.readouterr()
    for name in ("leaderboard.md", "leaderboard.csv", "leaderboard.html"):
        path = results.dir / name
        assert path.is_file() and str(path) in out
    assert sorted(p.name for p in (results.dir / "schema").iterdir()) == ["metric.schema.json", "run.schema.json",
                                                                        "run.v1.schema.json"]
    assert "9 completed run(s) ranked, 2 failed/running listed, 6 file(s) skipped" in out
    assert str(results.bad_paths["corrupt_metrics"]) in err


def test_cli_defaults_to_bench_root(results, monkeypatch, capsys):
    monkeypatch.setenv("BENCH_ROOT", str(results.dir.parent))
    assert main([]) == 0
    assert (results.dir / "leaderboard.md").is_file()


def test_csv_is_the_per_condition_table(report):
    table = pd.read_csv(report.outputs["csv"])
    shift_acc = table.query("task == 'shift' and metric == 'accuracy'")
    assert len(shift_acc) == 10  # one line per classifier and intensity (not a headline column, still reported)
    fit = table.query("task == 'whitening' and model == 'resnet20' and metric == 'formula_fit_r'")
    # tau (fitted per seed) is a param: per-combination lines keep seeds apart where it differs.
    assert sorted(fit["n_seeds"]) == [1, 1, 1, 3]
    assert set(table["task"]) == {"whitening", "modality_gap", "shift", "toy"}
    assert table["provenance"].str.startswith("git ").all()


def test_markdown_has_one_table_per_task_with_provenance(report):
    md = report.outputs["markdown"].read_text()
    assert [line[3:] for line in md.splitlines() if line.startswith("## ")][:5] == [
        "Scorecard", "modality_gap", "shift", "toy", "whitening"]
    row = next(line for line in md.splitlines() if line.startswith("| 2 | resnet20 | whitening/embedded | embedded_photos"))
    assert "| 3 | 0.920 ± 0.020 |" in row and "x86_64 ×1" in row and re.search(r"git [0-9a-f]{8}|git unknown", row)
    assert "runs/whitening/" in md and "energy_profiles.png" in md  # plots linked relatively


def test_html_is_offline_small_and_links_its_plots(reported):
    results, report = reported
    page = report.outputs["html"].read_text()
    assert not re.search(r"https?://", page), "the page must work offline: no external references"
    assert page.count('<table class="sortable" id="board-') == 4
    assert "base64" not in page and len(page.encode()) < 2**20  # plots are files beside the page
    images = re.findall(r'<img loading="lazy" alt="[^"]*" src="([^"]+)"', page)
    # a forest plot per task with claims; energy profile, 2× robustness vs alpha, accuracy vs intensity
    assert sorted(i for i in images if i.startswith("forest/")) == [
        "forest/modality_gap.png", "forest/shift.png", "forest/whitening.png"]
    assert len(images) == 7 and all((results.dir / i).is_file() for i in images)
    assert "CUDA out of memory" in page and "old_leaderboard.csv" in page


def test_empty_results_folder_still_writes_a_report(tmp_path, capsys):
    assert main(["--results-dir", str(tmp_path / "results")]) == 0
    md = (tmp_path / "results" / "leaderboard.md").read_text()
    assert "No completed runs yet" in md
    assert "no runs under" in capsys.readouterr().err


def test_whitening_fits_of_the_linear_cnn_head_their_own_columns(tmp_path):
    """kind=linear (the theory model, a control) never averages into the CNNs' ranking column."""
    from tests.report.conftest import new_run

    with new_run(tmp_path, "whitening", "vgg11_bn", "embedded_photos", 0) as run:
        run.log_metrics([{"metric": "formula_fit_r", "value": v, "params": {"arch": a, "kind": k, "labels": "true",
                                                                             "weights": "trained", "tau": 1.0}}
                         for a, k, v in (("vgg11_bn", "cnn", 0.9), ("resnet20", "cnn", 0.96), ("linear_cnn", "linear", 0.6))]
                        # a comparison between the run's models names none of them: the config's own row
                        + [{"metric": "consistency_r", "value": 0.8, "params": {"axis": "arch", "kind": "cnn",
                                                                                "a": "vgg11_bn", "b": "resnet20"}}])
    whitening = board(build_leaderboards(collect(tmp_path).completed), "whitening")
    labels = [c.label for c in whitening.columns]
    assert labels == ["formula fit r [kind=cnn, labels=true]", "formula fit r [kind=linear, labels=true]"]
    # One row per architecture (the card's ranking unit); the linear CNN has no CNN fit: unranked, last.
    cnn, linear = whitening.columns
    assert [(r.model, r.rank) for r in whitening.rows] == [("resnet20", 1), ("vgg11_bn", 2), ("linear_cnn", None)]
    assert [r.cells[cnn.key].mean for r in whitening.rows[:2]] == [0.96, 0.9]
    assert cnn.key not in whitening.rows[2].cells and whitening.rows[2].cells[linear.key].mean == 0.6
    assert [c.label for c in whitening.config_columns] == ["consistency r [axis=arch]"]
    (config,) = whitening.config_rows
    assert config.unit is None and config.cells[whitening.config_columns[0].key].mean == 0.8
