"""Claims as checks over metric rows: verdicts, figures, intervals, seed groups, card declarations."""
from __future__ import annotations

import pytest

from bench.card import Metric, Paper, TaskCard
from bench.claims import (
    INCONCLUSIVE, INVALID, MAX, MIN, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, AtLeast, AtMost, Claim, Deviation, Difference,
    Monotone, Not, Value)
from bench.tasks import get_task, task_names


def row(metric, value, stderr=None, **params):
    return {"metric": metric, "value": value, "stderr": stderr, "params": params}


def verdict(check, rows, exact=False):
    return Claim("c", "text", "paper", check, exact=exact).evaluate(rows)


def test_threshold_checks_report_value_interval_and_figures():
    rows = [row("r", 0.95, 0.01, kind="cnn", model="a"), row("r", 0.93, 0.01, kind="cnn", model="b"),
            row("r", 0.5, kind="linear")]
    v = verdict(AtLeast(Value("r", kind="cnn"), 0.9), rows)
    assert v.status == REPRODUCED and v.value == pytest.approx(0.94) and v.threshold == 0.9
    # two rows with stderr 0.01 each: the mean's stderr is 0.01/sqrt(2); the 95% interval is ±1.96 of it
    # (within the Monte-Carlo error of 2000 replicates' 2.5% and 97.5% order statistics)
    se = 0.01 * 2 ** 0.5 / 2
    assert v.low == pytest.approx(0.94 - 1.96 * se, abs=0.25 * se) and v.high == pytest.approx(0.94 + 1.96 * se,
                                                                                           abs=0.25 * se)
    assert v.margin == pytest.approx(0.04 / se, rel=0.1)
    assert v.figures[0].startswith("r[kind='cnn'] = 0.94 [95%: 0.92") and v.figures[0].endswith("(2 values, 0.93…0.95)")
    assert verdict(AtLeast(Value("r", kind="linear"), 0.9), rows, exact=True).status == NOT_REPRODUCED
    # a pinned param must be present; nothing matching is "not measured", with the reason
    missing = verdict(AtLeast(Value("r", kind="cnn", labels="random"), 0.9), rows)
    assert missing.status == NOT_MEASURED and "no r[kind='cnn', labels='random'] rows" in missing.note
    # an interval across the threshold is inconclusive, not a pass or a fail
    assert verdict(AtLeast(Value("r", kind="cnn"), 0.94), rows).status == INCONCLUSIVE
    # a value declared exact (no stderr, no items, one seed) is judged as written
    assert verdict(AtMost(Value("r", reduce="min"), 0.5), rows, exact=True).status == REPRODUCED


def test_a_value_without_sampling_units_is_inconclusive_unless_declared_exact():
    """One seed, no items, no stderr: a zero-width interval that measures nothing; judging it as exact would
    pass or fail a claim on a single draw."""
    rows = [row("r", 0.5, kind="linear"), row("r", 0.95, kind="cnn")]
    for check, written in ((AtLeast(Value("r", kind="linear"), 0.9), NOT_REPRODUCED),
                           (AtLeast(Value("r", kind="cnn"), 0.9), REPRODUCED),
                           (AtLeast(Difference(Value("r", kind="cnn"), Value("r", kind="linear")), 0.0), REPRODUCED)):
        v = verdict(check, rows)
        assert v.status == INCONCLUSIVE and v.note.startswith("the value has no sampling units"), v
        assert verdict(check, rows, exact=True).status == written
    # a stderr, items, or a second seed are sampling units: judged on their interval
    assert verdict(AtLeast(Value("r"), 0.9), [row("r", 0.95, 0.01)]).status == REPRODUCED
    seeds = [[row("r", 0.95)], [row("r", 0.96)]]
    assert Claim("c", "t", "p", AtLeast(Value("r"), 0.9)).evaluate_seeds(seeds).status == REPRODUCED
    items = {"metric": "r", "value": 0.95, "stderr": None, "params": {}, "items": [1.0] * 19 + [0.0], "item_set": "s"}
    assert verdict(AtLeast(Value("r"), 0.5), [items]).status == REPRODUCED


def test_difference_not_and_extremes():
    rows = [row("drop", 0.4, arch="mixer", n=100), row("drop", 0.1, arch="cnn", n=100),
            row("drop", 0.2, arch="cnn", n=200)]
    v = verdict(AtLeast(Difference(Value("drop", arch="mixer"), Value("drop", arch=Not("mixer"))), 0.0), rows, True)
    assert v.status == REPRODUCED and v.value == pytest.approx(0.25)
    v = verdict(AtMost(Difference(Value("drop", n=MIN), Value("drop", n=MAX)), 0.0), rows, True)
    assert v.value == pytest.approx(0.25 - 0.2) and v.status == NOT_REPRODUCED
    one_size = [r for r in rows if r["params"]["n"] == 100 and r["params"]["arch"] == "cnn"]
    v = verdict(AtMost(Difference(Value("drop", n=MIN), Value("drop", n=MAX)), 0.0), one_size)
    assert v.status == NOT_MEASURED and "same rows" in v.note


def test_deviation_is_exact():
    rows = [row("acc", 0.8, alpha=a, mode="paper") for a in (0.0, 0.5, 1.0)]
    assert verdict(AtMost(Deviation("acc", "alpha", 0.0, mode="paper"), 0.0), rows, exact=True).status == REPRODUCED
    rows[1] = row("acc", 0.8 + 1e-4, alpha=0.5, mode="paper")
    v = verdict(AtMost(Deviation("acc", "alpha", 0.0, mode="paper"), 0.0), rows, exact=True)
    assert v.status == NOT_REPRODUCED and v.value == pytest.approx(1e-4)


def test_monotone_within_noise_and_beyond_it():
    def curve(values, se, **p):
        return [row("rob", v, se, alpha=a, **p) for a, v in zip((0.0, 0.5, 1.0, 1.5), values, strict=True)]
    # a small dip inside the noise is not against the direction; the overall rise clears it; 1.5 is outside the span
    rows = curve([0.5, 0.49, 0.7, 0.1], 0.01, level=1) + curve([0.6, 0.65, 0.8, 0.1], 0.01, level=2)
    v = verdict(Monotone("rob", "alpha", span=(0.0, 1.0)), rows)
    assert v.status == REPRODUCED, v.note
    assert v.value == pytest.approx(0.2) and len(v.figures) == 2 and v.figures[0].startswith("level=1: 0.5 → 0.7")
    dip = curve([0.5, 0.40, 0.7, 0.1], 0.01, level=1)
    v = verdict(Monotone("rob", "alpha", span=(0.0, 1.0)), dip)
    assert v.status == NOT_REPRODUCED and "alpha 0→0.5 moves 0.5→0.4" in v.note
    assert v.margin < -4  # the deciding criterion is the step against the rise (-0.1 over 0.014), not the rise
    # and the value and interval shown are that step's (the first-to-last change, +0.2, clears 0: it decides nothing)
    assert v.value == pytest.approx(-0.1) and v.low < -0.1 < v.high < 0, v
    assert "(value and 97.50% interval: -0.1 [97.5%:" in v.note  # a Bonferroni level shown as it is
    flat = curve([0.5, 0.5, 0.51, 0.5], 0.01)
    assert verdict(Monotone("rob", "alpha", span=(0.0, 1.0)), flat).status == INCONCLUSIVE
    assert verdict(Monotone("rob", "alpha", rising=False), curve([0.9, 0.8, 0.7, 0.6], None),
                   exact=True).status == REPRODUCED
    assert verdict(Monotone("rob", "beta"), flat).status == NOT_MEASURED


def test_seed_groups_pool_by_params_with_the_seeds_spread():
    seeds = [[row("r", v, None, k=1)] for v in (0.90, 0.92, 0.94)]
    v = Claim("c", "t", "p", AtLeast(Value("r", k=1), 0.85)).evaluate_seeds(seeds)
    assert v.status == REPRODUCED and v.value == pytest.approx(0.92) and v.seeds == 3
    # a bootstrap over three seeds spans their means' range, never beyond it
    assert 0.90 - 1e-12 <= v.low < 0.92 < v.high <= 0.94 + 1e-12  # (up to rounding)


def test_a_failing_check_is_invalid_with_the_error():
    v = Claim("c", "t", "p", check=AtLeast(Value("r"), "not a number")).evaluate([row("r", 1.0)])
    assert v.status == INVALID and v.note.startswith("check failed: ")


def test_seeds_that_read_an_item_set_at_different_lengths_count_deciding_items_by_index():
    """Seed 0 evaluated 4 units, seed 1 only 3: the deciding items are the union by index (no error)."""
    def items(values, alpha):
        return {"metric": "acc", "value": sum(values) / len(values), "stderr": None, "params": {"alpha": alpha},
                "items": values, "item_set": "test"}
    seeds = [[items([1.0, 0.0, 1.0, 1.0], 0), items([1.0, 1.0, 1.0, 1.0], 1)],
             [items([1.0, 1.0, 0.0], 0), items([1.0, 1.0, 1.0], 1)]]
    v = Claim("c", "t", "p", AtLeast(Difference(Value("acc", alpha=1), Value("acc", alpha=0)), 0.0)).evaluate_seeds(seeds)
    assert v.n_deciding == 2 and v.n_items == 4 and v.status != INVALID, v


def test_card_validates_its_targets_and_names():
    paper = Paper("T", "A", "V")
    with pytest.raises(ValueError, match="targets unknown claim"):
        TaskCard("t", "1", paper, "t/p", targets={"t/p": ("nope",)})
    with pytest.raises(ValueError, match="duplicate metric m"):
        TaskCard("t", "1", paper, "t/p", metrics=(Metric("m", "m"), Metric("m", "m")))


def test_a_preset_that_declares_seeds_declares_every_claim():
    paper = Paper("T", "A", "V")
    claims = tuple(Claim(i, "t", "p", AtLeast(Value("r"), 0.5)) for i in ("a", "b"))

    def card(**kw):
        return TaskCard("t", "1", paper, "t/p", claims=claims, **kw)

    with pytest.raises(ValueError, match="neither targets nor says why it cannot test b"):
        card(targets={"t/p": ("a",)}, seeds={"t/p": (0, 1, 2)})
    ok = card(targets={"t/p": ("a",)}, seeds={"t/p": (0, 1, 2)}, items={"t/p": 500},
              cannot_test={"t/p": {"b": "one model size only"}})
    assert ok.seeds_for("t/p") == (0, 1, 2) and ok.seeds_for("t/other") == () and ok.min_items("t/p") == 500
    with pytest.raises(ValueError, match="cannot_test needs a reason for b"):
        card(targets={"t/p": ("a",)}, cannot_test={"t/p": {"b": " "}})
    with pytest.raises(ValueError, match="a both targeted and in cannot_test"):
        card(targets={"t/p": ("a", "b")}, cannot_test={"t/p": {"a": "why"}})
    with pytest.raises(ValueError, match="cannot_test unknown claim"):
        card(cannot_test={"t/p": {"c": "why"}})
    with pytest.raises(ValueError, match="seeds must be distinct"):
        card(targets={"t/p": ("a", "b")}, seeds={"t/p": (0, 0)})


def test_fewer_items_than_the_preset_declares_is_invalid():
    rows = [{"metric": "acc", "value": 0.95, "params": {}, "stderr": None, "items": [1.0] * 19 + [0.0],
             "item_set": "test"}]
    claim = Claim("c", "t", "p", AtLeast(Value("acc"), 0.5))
    assert claim.evaluate(rows, min_items=20).status == REPRODUCED
    v = claim.evaluate(rows, min_items=500)
    assert v.status == "invalid" and "read 20 item(s)" in v.note


@pytest.mark.parametrize("name", task_names())
def test_every_card_names_known_presets(name):
    task = get_task(name)
    from tests.conftest import conf_roots

    for preset in {task.card.preset, *task.card.targets, *task.card.seeds, *task.card.items, *task.card.cannot_test}:
        assert any((root / "experiment" / f"{preset}.yaml").is_file() for root in conf_roots()), preset


def test_integer_formats_show_counts_and_fall_back_for_fractional_means():
    from bench.report.metrics import format_mean_std, format_value

    assert format_value(3.0, "d") == "3" and format_value(2.5, "d") == "2.5"
    assert format_mean_std(2.0, 1.0, "d") == "2 ± 1"
