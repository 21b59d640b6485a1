"""The shift card's claims on rows in the task's format: per-image items paired across intensities and
classifiers, base-accuracy gates that make a comparison "invalid" (naming the gate), and the paper's
drop sizes judged only on its protocol."""
import numpy as np
import pytest

from bench.claims import INVALID, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED
from bench.shift.card import CARD

CLAIMS = {c.id: c for c in CARD.claims}
N = 400
ITEMS = "shift:test-seed1[0:400]"


def _rows(seed, mixer_base=0.95, drops=None, width=0.25):
    """One seed's rows: two architectures, the Mixer also with 100 images, the CNN also with augmentation.
    Accuracy falls linearly from 0.95 by ``drops[arch]`` over 3 intensities (the same images fail first)."""
    drops = drops or {"mlp_mixer": 0.3, "resnet20": 0.2}
    conditions = [("mlp_mixer", False, 400), ("mlp_mixer", False, 100), ("resnet20", False, 400),
                  ("resnet20", True, 400)]
    rows = []
    for arch, aug, n in conditions:
        variant = {"arch": arch, "width": width, "aug": aug, "n_train": n}
        base = mixer_base if arch == "mlp_mixer" and n == 400 else 0.95
        rows.append({"metric": "base_accuracy", "value": base, "params": {"base": "truncation", **variant}})
        order = np.random.default_rng([seed, len(arch)]).permutation(N)  # one architecture fails the same images
        hits = []
        for k, x in enumerate((0.9, 1.0, 1.1)):
            h = np.zeros(N)
            h[order[:round(N * (0.95 - drops[arch] * k / 2))]] = 1.0
            hits.append(h)
            rows.append({"metric": "accuracy", "value": h.mean(), "items": list(h), "item_set": ITEMS,
                         "params": {"family": "truncation", "intensity": x, **variant}})
        drop = hits[0] - hits[-1]
        rows.append({"metric": "accuracy_drop", "value": drop.mean(), "items": list(drop), "item_set": ITEMS,
                     "params": {"family": "truncation", "intensity": 1.1, **variant}})
    return rows


def _verdict(claim, runs):
    return CLAIMS[claim].evaluate_seeds(runs, n_boot=400)


def test_findings_are_judged_over_images_and_seeds():
    runs = [_rows(s) for s in range(3)]
    assert _verdict("monotone_decline", runs).status == REPRODUCED
    assert _verdict("decline_with_augmentation", runs).status == REPRODUCED
    v = _verdict("mixer_least_robust", runs)
    assert v.status == REPRODUCED and v.value == pytest.approx(0.1) and v.low < 0.1 < v.high and v.seeds == 3
    assert _verdict("more_data_no_help", runs).status == REPRODUCED  # the same drop at both sizes: 0 < 0.03
    less = [_rows(s, drops={"mlp_mixer": 0.1, "resnet20": 0.2}) for s in range(3)]
    assert _verdict("mixer_least_robust", less).status == NOT_REPRODUCED


def test_a_classifier_under_its_floor_makes_the_comparison_invalid():
    runs = [_rows(s, mixer_base=0.6) for s in range(3)]
    v = _verdict("mixer_least_robust", runs)
    assert v.status == INVALID and "base_accuracy" in v.note and "0.8" in v.note
    assert _verdict("monotone_decline", runs).status == REPRODUCED  # 0.6 is a trained classifier (>= 0.5)
    assert _verdict("monotone_decline", [_rows(s, mixer_base=0.3) for s in range(3)]).status == INVALID


def test_paper_drop_sizes_only_on_the_papers_full_width_classifiers():
    runs = [_rows(s) for s in range(3)]
    assert _verdict("truncation_drop_resnet20", runs).status == NOT_MEASURED  # width 0.25: not the paper's
    v = _verdict("truncation_drop_resnet20", [_rows(s, drops={"mlp_mixer": 0.3, "resnet20": 0.44}, width=1.0)
                                              for s in range(3)])
    assert v.status == REPRODUCED and v.value == pytest.approx(0.44)
    assert CARD.targets["shift/cifar10_truncation"][-1] == "truncation_drop_resnet20"
    assert "truncation_drop_resnet20" in CARD.cannot_test["shift/embedded"]
