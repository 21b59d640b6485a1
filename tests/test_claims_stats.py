"""The claims engine's statistics against published ones (issue 20's acceptance tests).

Expectations come from textbook formulas computed here with numpy/scipy (the normal interval of
a mean, the exact bootstrap distribution of one resampled item, exact McNemar), never from the
code under test.
"""
from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from bench.claims import (
    INCONCLUSIVE, INVALID, MIN, NOT_APPLICABLE, NOT_REPRODUCED, REPRODUCED, AtLeast, AtMost, Claim, Difference,
    Expr, Gate, Monotone, Value, Within)

Z95 = stats.norm.ppf(0.975)


def row(metric, value, items=None, item_set=None, stderr=None, measured=None, **params):
    r = {"metric": metric, "value": float(value), "params": params, "stderr": stderr}
    if items is not None:
        r["items"] = [float(x) for x in items]
        r["item_set"] = item_set
    if measured is not None:
        r["measured"] = measured
    return r


def items_row(metric, items, item_set="test", **params):
    return row(metric, np.mean(items), items=items, item_set=item_set, **params)


def judge(check, *runs, **claim):
    return Claim("c", "text", "paper", check, **claim).evaluate_seeds(list(runs))


# -- Monte-Carlo trials are not items -------------------------------------------------------------
def _robustness(p_flip: np.ndarray, trials: int, rng: np.random.Generator) -> np.ndarray:
    """Per-image robustness: the share of ``trials`` noise draws that leave the prediction unchanged."""
    return rng.binomial(trials, 1 - p_flip) / trials


def test_ten_times_more_trials_does_not_narrow_the_interval_below_the_item_level():
    rng = np.random.default_rng(0)
    n = 500
    p_flip = np.where(rng.random(n) < 0.1, rng.beta(2, 2, n), 0.0)  # a tenth of the images ever flip
    # the item-level interval: the normal interval of the mean of the images' true robustness
    item_width = 2 * Z95 * np.std(1 - p_flip, ddof=1) / math.sqrt(n)
    widths = {}
    for trials in (40, 400):
        rob = _robustness(p_flip, trials, rng)
        v = judge(AtLeast(Value("robustness"), 0.5), [items_row("robustness", rob)])
        widths[trials] = v.high - v.low
        # what a stderr over the trials alone would claim: the trials' binomial error of the mean
        trial_se = math.sqrt(np.mean(rob * (1 - rob)) / trials / n)
        assert 2 * Z95 * trial_se < 0.25 * item_width  # (why counting trials manufactured significance)
    assert widths[400] >= 0.85 * item_width
    assert widths[400] >= 0.85 * widths[40]  # 10x the trials: about the same interval


# -- a fixed perturbation decided by a few images ---------------------------------------------------
def _paired_correctness(n: int, fixed: int, broken: int, base_errors: int = 100):
    """0/1 correctness of ``n`` images before and after a fixed perturbation: ``fixed`` wrong images
    become right, ``broken`` right ones become wrong, every other image keeps its outcome."""
    before = np.ones(n)
    before[:base_errors] = 0
    after = before.copy()
    after[:fixed] = 1
    after[base_errors:base_errors + broken] = 0
    return before, after


def _gain(before, after, item_set="test[0:1000]"):
    return [items_row("acc", before, item_set, alpha=0.0), items_row("acc", after, item_set, alpha=1.0)]


GAIN = AtLeast(Difference(Value("acc", alpha=1.0), Value("acc", alpha=0.0)), 0.0)


def test_one_deciding_image_is_inconclusive_with_the_exact_bootstrap_interval():
    n = 1000
    v = judge(GAIN, _gain(*_paired_correctness(n, fixed=1, broken=0)))
    assert v.status == INCONCLUSIVE and v.n_items == n and v.n_deciding == 1
    # the gain is (times the one fixed image is drawn) / n, that count ~ Binomial(n, 1/n): its 2.5% and
    # 97.5% quantiles are the exact percentile interval
    assert v.low == pytest.approx(stats.binom.ppf(0.025, n, 1 / n) / n, abs=1e-12) and v.low < 1e-12
    assert v.high == pytest.approx(stats.binom.ppf(0.975, n, 1 / n) / n, abs=1e-12)
    # with a declared floor of deciding images the same data are invalid, not merely inconclusive
    assert judge(GAIN, _gain(*_paired_correctness(n, 1, 0)), min_deciding=10).status == INVALID


@pytest.mark.parametrize("fixed, broken", [(3, 1), (1, 1), (4, 4), (9, 0), (30, 2), (20, 1), (2, 25)])
def test_paired_verdicts_agree_with_exact_mcnemar(fixed, broken):
    v = judge(GAIN, _gain(*_paired_correctness(1000, fixed, broken)))
    assert v.n_deciding == fixed + broken
    p = stats.binomtest(fixed, fixed + broken, 0.5).pvalue  # exact McNemar on the discordant pairs
    assert p > 0.5 or p < 0.005  # the cases are chosen far from the 5% line
    if p > 0.5:
        assert v.status == INCONCLUSIVE, (p, v)
    else:
        assert v.status == (REPRODUCED if fixed > broken else NOT_REPRODUCED), (p, v)


def test_pairing_uses_the_same_images_for_both_conditions():
    rng = np.random.default_rng(1)
    n = 800
    hard = rng.random(n)  # per-image difficulty shared by both conditions: a strong positive correlation
    before = (hard > 0.3).astype(float)
    after = (hard > 0.27).astype(float)
    d = after - before
    paired_width = 2 * Z95 * np.std(d, ddof=1) / math.sqrt(n)  # the paired normal interval
    unpaired_width = 2 * Z95 * math.sqrt((np.var(before, ddof=1) + np.var(after, ddof=1)) / n)
    paired = judge(GAIN, _gain(before, after))
    unpaired = judge(GAIN, [items_row("acc", before, "a", alpha=0.0), items_row("acc", after, "b", alpha=1.0)])
    assert paired.high - paired.low == pytest.approx(paired_width, rel=0.15)
    assert unpaired.high - unpaired.low == pytest.approx(unpaired_width, rel=0.15)
    assert paired.status == REPRODUCED and unpaired.status == INCONCLUSIVE


# -- gates and preconditions ----------------------------------------------------------------------------
def _decline(base: float, arch: str):
    return [row("accuracy", base - 0.1 * i, stderr=0.005, intensity=float(i), arch=arch) for i in range(4)]


FLOOR = Gate(Value("accuracy", reduce="min", intensity=MIN), at_least=0.5,
             reason="every classifier's base accuracy >= 0.5")


def test_a_classifier_under_its_floor_reads_invalid_naming_the_gate():
    check = Monotone("accuracy", "intensity", rising=False)
    good = _decline(0.9, "resnet") + _decline(0.8, "densenet")
    assert judge(check, good, gates=FLOOR).status == REPRODUCED
    v = judge(check, good + _decline(0.22, "mixer"), gates=FLOOR)
    assert v.status == INVALID and "every classifier's base accuracy >= 0.5" in v.note and "0.22" in v.note


def test_a_failed_precondition_reads_not_applicable_with_the_measured_reason():
    rows = [row("gap_norm", 0.01), row("rob", 0.9, stderr=0.01, alpha=0.0), row("rob", 0.95, stderr=0.01, alpha=1.0)]
    applies = Gate(Value("gap_norm"), at_least=0.1, reason="a modality gap to close")
    v = judge(Monotone("rob", "alpha"), rows, applies=applies)
    assert v.status == NOT_APPLICABLE and "gap_norm = 0.01 < 0.1" in v.note


# -- seed groups -------------------------------------------------------------------------------------------
def test_three_seeds_pool_into_one_condition_whatever_they_measured():
    rng = np.random.default_rng(2)
    runs = []
    for seed, ratio in enumerate((0.91, 1.07, 0.98)):  # the noise ratio each seed measured
        runs.append([items_row("robustness", (rng.random(300) > 0.1 * (1 + a)).astype(float), level=0.005,
                               alpha=a) | {"measured": {"noise_ratio": ratio}} for a in (0.0, 1.0)])
    v = judge(AtLeast(Value("robustness", alpha=0.0), 0.5), *runs)
    assert v.seeds == 3 and "values" not in " ".join(v.figures)  # one condition, not three
    assert v.value == pytest.approx(np.mean([r[0]["value"] for r in runs]))


def test_seed_spread_widens_the_interval_beyond_each_seeds_items():
    rng = np.random.default_rng(3)
    same = [[items_row("acc", (rng.random(2000) < 0.8).astype(float))] for _ in range(3)]
    apart = [[items_row("acc", (rng.random(2000) < p).astype(float))] for p in (0.7, 0.8, 0.9)]
    w_same, w_apart = (judge(AtLeast(Value("acc"), 0.5), *runs) for runs in (same, apart))
    assert w_apart.high - w_apart.low > 3 * (w_same.high - w_same.low)
    assert w_same.high - w_same.low == pytest.approx(2 * Z95 * math.sqrt(0.16 / 6000), rel=0.25)


# -- magnitudes, ratios, determinism, overflow ---------------------------------------------------------------
def test_a_ratio_statistic_is_a_function_of_values_with_its_interval():
    rng = np.random.default_rng(4)
    n = 2000
    p0 = np.where(rng.random(n) < 0.05, 0.4, 0.0)  # per-image flip probability before closing the gap
    rob0, rob1 = 1 - p0, 1 - 0.8 * p0  # closing the gap removes 20% of every image's flips
    f = Expr(lambda r1, r0: 1 - (1 - r1) / (1 - r0), Value("rob", alpha=1.0), Value("rob", alpha=0.0),
             text="F = 1 − (1−Rob₁)/(1−Rob₀)")
    rows = [items_row("rob", rob0, alpha=0.0), items_row("rob", rob1, alpha=1.0)]
    v = judge(Within(f, 0.1, 0.3), rows, kind="magnitude", paper_value=0.2)
    assert v.value == pytest.approx(0.2) and v.status == REPRODUCED and v.kind == "magnitude"
    assert v.low == pytest.approx(0.2) and v.high == pytest.approx(0.2)  # 20% of every image: exact under any resample
    assert judge(Within(f, 0.3, 0.5), rows).status == NOT_REPRODUCED
    assert v.as_record()["paper_value"] == 0.2


def test_verdicts_are_deterministic():
    rng = np.random.default_rng(5)
    rows = _gain((rng.random(1000) < 0.9).astype(float), (rng.random(1000) < 0.91).astype(float))
    first, second = judge(GAIN, rows), judge(GAIN, list(reversed(rows)))
    assert (first.low, first.high) == (second.low, second.high)


def test_a_value_near_the_float_maximum_does_not_crash():
    runs = [[row("r", 1e308)], [row("r", 0.87)], [row("r", 1e308, stderr=1e308)]]
    v = judge(AtMost(Value("r"), 1.0), *runs)
    assert v.status == INVALID and "not finite" in v.note
    record = v.as_record()
    assert record["high"] is None  # stored as null, never as a non-finite float


# -- the rows a task logs ------------------------------------------------------------------------------------
def test_log_metric_records_items_item_set_and_measured(tmp_path):
    from bench.schema import SchemaError
    from bench.store import read_run
    from tests.report.conftest import new_run

    with new_run(tmp_path, "modality_gap", "ViT-B-16", "cifar10", 0) as run:
        run.log_metric("robustness", 0.75, params={"alpha": 0.0}, items=np.array([1.0, 0.5, 1.0, 0.5]),
                       item_set="cifar10:test[0:4]", measured={"noise_ratio": np.float32(0.5)})
        with pytest.raises(ValueError, match="not the mean of its 2 items"):
            run.log_metric("robustness", 0.9, items=[1.0, 0.0])
        with pytest.raises(SchemaError, match="items"):
            run.log_metric("robustness", math.nan, items=[math.nan])
    _, [logged] = read_run(run.dir)
    assert logged["items"] == [1.0, 0.5, 1.0, 0.5] and logged["item_set"] == "cifar10:test[0:4]"
    assert logged["measured"] == {"noise_ratio": 0.5} and "noise_ratio" not in logged["params"]


@pytest.mark.integration  # a bench -m sweep
def test_a_seed_sweep_is_one_group_with_an_interval_over_seeds_and_items(tmp_path, monkeypatch):
    """What `make run` does with a card's declared seeds, on the fixture task: one `bench -m` sweep,
    per-run verdicts in run.json, one claims line for the group in leaderboard_claims.csv."""
    import json
    import os
    import subprocess
    import sys
    from pathlib import Path

    import pandas as pd

    from bench.report.cli import main as report_main

    repo = Path(__file__).resolve().parents[1]
    env = {**os.environ, "BENCH_ROOT": str(tmp_path), "BENCH_TASKS": "tests.fixture_task", "OMP_NUM_THREADS": "1",
           "PYTHONPATH": os.pathsep.join([str(repo), os.environ.get("PYTHONPATH", "")])}
    env.pop("BENCH_RUN_ID", None)
    res = subprocess.run([str(Path(sys.executable).parent / "bench"), "--config-dir", str(repo / "tests/fixture_task/conf"),
                          "-m", "experiment=lsq_digits/tiny", "seed=0,1,2", "logger=none"],
                         cwd=repo, env=env, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    results = tmp_path / "results"
    records = [json.loads(p.read_text()) for p in results.glob("runs/lsq_digits/*/run.json")]
    assert sorted(r["seed"] for r in records) == [0, 1, 2]
    for record in records:
        [claim] = record["claims"]
        assert claim["seeds"] == 1 and claim["n_items"] == 797 and claim["low"] < claim["value"] < claim["high"]
    monkeypatch.setenv("BENCH_TASKS", "tests.fixture_task")
    assert report_main(["--results-dir", str(results), "--check-claims"]) == 0
    [line] = pd.read_csv(results / "leaderboard_claims.csv").to_dict("records")
    assert line["seeds"] == 3 and line["n_items"] == 797 and line["verdict"] == REPRODUCED
    per_seed = [r["claims"][0]["value"] for r in records]
    assert line["value"] == pytest.approx(np.mean(per_seed))
    # three seeds' digits narrow one seed's item-level interval by at most sqrt(3); the seeds' spread only adds
    one_seed = np.mean([r["claims"][0]["high"] - r["claims"][0]["low"] for r in records])
    assert line["low"] < line["value"] < line["high"] and line["high"] - line["low"] >= 0.8 * one_seed / math.sqrt(3)


def test_monotone_steps_are_tested_together_bonferroni():
    se = 0.01
    se_step = se * math.sqrt(2)
    z_bonferroni = stats.norm.ppf(1 - 0.05 / 2 / 8)  # 8 steps: 2.73 stderr, against 1.96 for one step

    def curve(dip):
        values = [0.5 + 0.05 * i for i in range(9)]
        values[4] = values[3] - dip * se_step  # one step against the rise
        values[5] = values[4] + 0.1
        return [row("rob", v, stderr=se, alpha=float(i)) for i, v in enumerate(values)]

    dip_between = (1.96 + z_bonferroni) / 2  # beyond a single 95% interval, within the family's
    assert judge(Monotone("rob", "alpha"), curve(dip_between)).status == REPRODUCED
    v = judge(Monotone("rob", "alpha"), curve(z_bonferroni + 1.5))
    assert v.status == NOT_REPRODUCED and "(8 steps)" in v.note and "alpha 3→4" in v.note


def test_deciding_items_are_counted_within_what_the_claim_compares():
    rng = np.random.default_rng(6)
    n = 400
    rows = []
    for level in (1, 2):  # the two noise levels differ image by image; along alpha only two images change
        base = (rng.random(n) < 0.9).astype(float)
        for alpha in (0.0, 0.5, 1.0):
            items = base.copy()
            if level == 1 and alpha == 1.0:
                items[:2] = 1 - items[:2]
            rows.append(items_row("rob", items, alpha=alpha, level=level))
    assert judge(Monotone("rob", "alpha"), rows).n_deciding == 2
    # a difference compares its two conditions; a single condition's items all count
    assert judge(GAIN, _gain(*_paired_correctness(n, fixed=3, broken=2))).n_deciding == 5
    assert judge(AtLeast(Value("rob", alpha=0.0, level=1), 0.5), rows).n_deciding == n
