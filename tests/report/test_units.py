"""Models under test: which model a metric row belongs to (a card's ranking_unit)."""
from __future__ import annotations

from bench.report.units import belongs, row_unit, run_units, unit_label

CONFIG = {"clip": {"name": "ViT-B-16", "pretrained": None, "train": {"epochs": 20}}, "model": {"name": "vgg11_bn"}}


def test_a_rows_unit_comes_from_its_params_first_then_its_runs_config():
    assert row_unit(("arch", "width"), {"arch": "resnet20", "width": 0.5, "t": 1}, CONFIG) == \
        {"arch": "resnet20", "width": 0.5}
    assert row_unit(("clip.name", "clip.pretrained"), {"alpha": 0.0}, CONFIG) == \
        {"clip.name": "ViT-B-16", "clip.pretrained": None}
    assert row_unit(("clip.train",), {}, CONFIG) == {}  # a config section is not a model's name
    assert row_unit(("arch",), {"family": "overlap"}, CONFIG) == {}  # a run-level figure names none


def test_a_run_holds_each_complete_unit_and_partial_rows_belong_to_every_model_that_agrees():
    named = [{"arch": "resnet20", "width": 0.5}, {}, {"arch": "mlp_mixer", "width": 0.25}, {"width": 0.5},
             {"arch": "resnet20", "width": 0.5}]
    units = run_units(named)
    assert units == [{"arch": "resnet20", "width": 0.5}, {"arch": "mlp_mixer", "width": 0.25}]
    assert [belongs({"width": 0.5}, u) for u in units] == [True, False]
    assert all(belongs({}, u) for u in units)
    assert run_units([{}, {}]) == [{}]  # no key named anywhere: one model, the run itself


def test_a_units_label_reads_like_the_model():
    assert unit_label({"arch": "resnet20", "width": 0.5}) == "resnet20, width=0.5"
    assert unit_label({"clip.name": "ViT-B-16", "clip.pretrained": "openai"}) == "ViT-B-16, pretrained=openai"
    assert unit_label({"clip.name": "bench-mnist-clip", "clip.pretrained": None}) == "bench-mnist-clip"
    assert unit_label({}) == ""
