"""The bootstrap's pairing and a gate's point value: rows of one seed and item set share their resampled
items whichever statistic reads them first, and a gate never resamples."""
from __future__ import annotations

import numpy as np
import pytest

from bench.claims import AtLeast, Claim, Deviation, Difference, Expr, Gate, Resampler, Value


def _items(metric: str, items: np.ndarray, item_set: str = "test[0:400]", **params) -> dict:
    return {"metric": metric, "value": float(items.mean()), "stderr": None, "params": params,
            "items": items.tolist(), "item_set": item_set}


@pytest.fixture
def rows() -> list[dict]:
    """Per-image 0/1 correctness at three alphas on the same 400 images; alpha 1 fixes 8 of alpha 0's errors."""
    base = (np.random.default_rng(0).random(400) < 0.9).astype(float)
    fixed = base.copy()
    fixed[np.flatnonzero(base == 0)[:8]] = 1.0
    other = (np.random.default_rng(1).random(400) < 0.8).astype(float)
    return [_items("acc", base, alpha=0.0), _items("acc", fixed, alpha=1.0), _items("acc", other, alpha=0.5)]


def test_rows_of_one_item_set_are_resampled_together_whichever_is_asked_for_first(rows):
    together = Resampler([rows], "claim")
    together.prepare(rows)
    apart = Resampler([rows], "claim")
    for r in rows:  # one at a time, as a gate, a figure or a second statistic would ask
        apart.prepare([r])
    for r in rows:
        assert np.array_equal(apart.pooled([r]), together.pooled([r]))


def test_a_difference_stays_paired_when_one_side_was_read_before(rows):
    """alpha 1 is alpha 0 with 8 errors fixed: paired, no replicate of the difference is below 0."""
    diff = Difference(Value("acc", alpha=1.0), Value("acc", alpha=0.0))
    sample = Resampler([rows], "claim")
    sample.pooled([rows[0]])  # alpha 0 read first, on its own
    draws = diff.draws(sample)
    assert draws[0] == pytest.approx(8 / 400) and draws[1:].min() >= 0.0
    assert np.array_equal(draws, diff.draws(Resampler([rows], "claim")))
    # the claim's verdict: every deciding image says the same, so the interval clears 0
    assert Claim("c", "t", "p", AtLeast(diff, 0.0)).evaluate(rows).low >= 0.0


def test_a_gate_reads_the_point_value_without_a_bootstrap(rows, monkeypatch):
    def no_bootstrap(*args, **kwargs):
        raise AssertionError("a gate resampled")

    monkeypatch.setattr(Resampler, "prepare", no_bootstrap)
    sample = Resampler([rows], "claim")
    acc0 = rows[0]["value"]
    assert Gate(Value("acc", alpha=0.0), at_least=0.95, reason="floor").failure(sample) == \
        f"floor: acc[alpha=0.0] = {acc0:.4g} < 0.95"
    assert Gate(Value("acc", reduce="min"), at_least=0.5).failure(sample) is None
    ratio = Expr(lambda a, b: a / b, Value("acc", alpha=1.0), Value("acc", alpha=0.0), text="ratio")
    assert Gate(ratio, at_most=1.0, reason="no gain").failure(sample).startswith("no gain: ratio = 1.0")
    assert Gate(Deviation("acc", "alpha", 0.0), at_most=0.0).failure(sample) is not None


def test_a_statistics_point_is_element_zero_of_its_draws(rows):
    sample = Resampler([rows], "claim")
    for stat in (Value("acc"), Value("acc", reduce="max"), Difference(Value("acc", alpha=1.0), Value("acc", alpha=0.0)),
                 Expr(lambda a, b: a / b, Value("acc", alpha=1.0), Value("acc", alpha=0.0), text="ratio"),
                 Deviation("acc", "alpha", 0.0)):
        assert stat.point(sample) == stat.draws(sample)[0], stat
