"""task=whitening end to end on a tiny config: records validate, plots exist, caches are reused."""
import json

import pytest
import torch

from bench.cli import execute
from bench.store import read_run

TINY = ["task=whitening", "data=digits", "data.n_train=200", "data.n_test=100", "data.batch_size=50",
        "model=linear_cnn", "model.width=0.25", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "task.record_steps=[1,2]", "task.autocorr_max_delta=4", "task.autocorr_images=32",
        "task.variants=[{},{seed_offset:1},{labels:random},{arch:resnet20}]", "task.tau_grid_size=50"]


def _metrics(run_dir):
    return {(r["metric"], json.dumps(r["params"], sort_keys=True)): r["value"] for r in read_run(run_dir)[1]}


def test_whitening_study_end_to_end(compose, bench_root):
    run_dir = execute(compose([*TINY, "logger=wandb"]))
    record, rows = read_run(run_dir)
    assert record["status"] == "completed" and record["task"] == "whitening"
    assert record["dataset"] == {"name": "digits", "split": "train", "n": 200}
    assert record["wandb"]["mode"] == "offline" and record["wandb"]["run_id"]
    assert list((bench_root / "outputs" / "wandb").glob("wandb/offline-run-*")), "W&B offline run directory"
    names = {r["metric"] for r in rows}
    assert names == {"formula_fit_r", "fit_edge", "formula_t", "formula_lambda_distance", "fit_margin", "lambda_r",
                     "power_r", "consistency_r", "autocorr", "autocorr_ratio", "label_pca_corr", "test_acc", "train_acc"}
    # without a stopping rule every model is fitted at the end of its training, its training accuracy beside it
    assert {r["params"]["phase"] for r in rows if r["metric"] in ("formula_fit_r", "train_acc")
            and r["params"].get("weights") != "init"} == {"end"}
    axes = {r["params"]["axis"] for r in rows if r["metric"] == "consistency_r"}
    assert axes == {"seed", "labels", "arch", "init"}
    fits = [r for r in rows if r["metric"] == "formula_fit_r" and r["params"]["over"] == "model"]
    assert len(fits) == 16 and all(-1 <= r["value"] <= 1 for r in fits)  # 4 models x trained/init x 2 grids
    # the two true-label linear_cnn seeds pool into one row per condition, items = the two models
    pooled = [r for r in rows if r["metric"] == "formula_fit_r" and r["params"]["over"] == "seeds"]
    assert {(r["params"]["weights"], r["params"]["grid"]) for r in pooled} == {(w, g) for w in ("trained", "init")
                                                                              for g in ("paper", "wide")}
    assert all(len(r["items"]) == 2 and r["item_set"] == "whitening:seeds[0,1]" for r in pooled)
    paper = [r["params"] for r in fits if r["params"]["grid"] == "paper"]
    assert len(paper) == 8 and all(10_000 <= p["t"] <= 4_999_750 and p["tau"] == pytest.approx(1e-7 * p["t"])
                                   for p in paper)
    assert all(p["edge"] == (p["t"] in (10_000, 4_999_750)) for p in paper)
    assert all(r["params"]["t"] is None for r in fits if r["params"]["grid"] == "wide")
    # every fit has its null baselines beside it, and its margin over them is the bars' minimum
    by_params = {(r["metric"], json.dumps({k: v for k, v in r["params"].items() if k not in ("t", "tau", "edge", "p")},
                                          sort_keys=True)): r for r in rows if r["params"].get("over") == "model"}
    for r in fits:
        p = {k: v for k, v in r["params"].items() if k not in ("t", "tau", "edge")}
        base = {k: v for k, v in p.items() if k != "grid"}
        power = by_params[("power_r", json.dumps(base, sort_keys=True))]["value"]
        lam = by_params[("lambda_r", json.dumps(base, sort_keys=True))]["value"]
        dist = by_params[("formula_lambda_distance", json.dumps(p, sort_keys=True))]["value"]
        margin = by_params[("fit_margin", json.dumps(p, sort_keys=True))]["value"]
        assert power >= lam - 1e-9  # p = 1 is among the powers
        assert margin == pytest.approx(min(r["value"] - power - 0.05, r["value"] - lam - 0.2, dist - 0.2))
    auto = {(r["params"]["filters"], r["params"]["delta"]): r["value"] for r in rows if r["metric"] == "autocorr"}
    assert auto[("input", 0)] == pytest.approx(1.0) and auto[("input", 4)] < 1.0
    ratios = {(r["params"]["filters"], r["params"].get("variant")): r["value"] for r in rows
              if r["metric"] == "autocorr_ratio" and r["params"].get("over") != "seeds"}
    assert ratios[("zca", None)] == pytest.approx(auto[("zca", 4)] / auto[("input", 4)])
    assert ratios[("zca", None)] < 0.5 * ratios[("random", None)]  # a perfect whitening decorrelates
    # the images are the units: each ratio carries a jackknife stderr over groups of them
    assert all(r["stderr"] > 0 for r in rows if r["metric"] == "autocorr_ratio" and r["params"].get("over") != "seeds")
    # the trained banks' ratio pooled per condition over the seeds (items: the two true-label models), and the
    # seed pair's consistency as one row over its pairs
    pooled_ratio = [r for r in rows if r["metric"] == "autocorr_ratio" and r["params"].get("over") == "seeds"]
    assert [len(r["items"]) for r in pooled_ratio] == [2] and pooled_ratio[0]["params"]["labels"] == "true"
    arts = {p.name for p in (run_dir / "artifacts").iterdir()}
    for name in ("profile_vs_formula.png", "consistency_heatmap.png", "autocorrelation.png",
                 "profile_over_time_linear_cnn-w0.25-s0-true.png", "profiles.safetensors", "patch_pca.safetensors"):
        assert name in arts, name

    # A second identical study reuses the PCA and every trained model: same numbers, new run dir.
    again = execute(compose([*TINY, "logger=none"]))
    assert again != run_dir and _metrics(again) == _metrics(run_dir)

    # skip_existing: the same config (logger keys are not part of the hash) is not run a third time.
    assert execute(compose([*TINY, "logger=none", "skip_existing=true"])) in (run_dir, again)


def test_corrupt_pca_cache_is_rebuilt(compose, bench_root):
    cfg = compose([*TINY, "logger=none", "task.variants=[{}]"])
    first = execute(cfg)
    caches = list((bench_root / ".cache" / "bench" / "patch_pca").glob("*.safetensors"))
    assert len(caches) == 1
    caches[0].write_bytes(b"garbage")
    second = execute(compose([*TINY, "logger=none", "task.variants=[{}]"]))
    assert read_run(second)[0]["status"] == "completed"
    assert _metrics(first) == _metrics(second)
    assert caches[0].stat().st_size > 100


def test_kernel_size_mismatch_is_a_clear_error(compose):
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="first conv is .*task.kernel_size=5"):
        execute(compose([*TINY, "logger=none", "task.kernel_size=5", "task.variants=[{}]"]))


def test_an_autocorrelation_shift_the_images_cannot_hold_is_a_clear_error(compose):
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="task.autocorr_max_delta=14 does not fit the first layer's 14x14 output"):
        execute(compose([*TINY, "logger=none", "task.autocorr_max_delta=14", "task.variants=[{}]"]))


def test_variant_epochs_override_the_trainer(compose):
    """A variant's ``epochs`` trains that model longer (the paper's random labels) and only it."""
    from safetensors.torch import load_file

    run_dir = execute(compose([*TINY, "logger=none", "task.variants=[{},{labels:random,epochs:2}]"]))
    steps = {}
    for key in load_file(str(run_dir / "artifacts" / "filters.safetensors")):
        model, _, step = key.partition("@step")
        steps[model] = max(steps.get(model, 0), int(step))
    assert steps == {"linear_cnn-w0.25-s0-true": 4, "linear_cnn-w0.25-s0-random": 8}  # 200 / 50 = 4 steps an epoch
    labels_pair = [r for r in read_run(run_dir)[1] if r["metric"] == "consistency_r" and r["params"]["axis"] == "labels"
                   and r["params"]["over"] == "pair"]
    assert len(labels_pair) == 1  # the length differs too, but the pair is still the labels comparison


def test_a_variant_trains_with_its_own_recipe(compose):
    """The theory model's recipe (one filter per class, MSE, full batch, small init) applies to that
    variant only: one step an epoch for it, four (200 / 50) for the study's model."""
    from safetensors.torch import load_file

    run_dir = execute(compose([*TINY, "logger=none", "task.variants=[{},{width: 1.0, kwargs: {head: none, filters: 10}, "
                               "loss: mse, batch_size: 200, optim: {lr: 0.01}, first_layer_init_scale: 0.001, epochs: 3}]"]))
    filters = load_file(str(run_dir / "artifacts" / "filters.safetensors"))
    steps = {}
    for key in filters:
        model, _, step = key.partition("@step")
        steps[model] = max(steps.get(model, 0), int(step))
    assert steps == {"linear_cnn-w0.25-s0-true": 4, "linear_cnn-w1-s0-true": 3}
    small, study = filters["linear_cnn-w1-s0-true@step0"], filters["linear_cnn-w0.25-s0-true@step0"]
    assert small.abs().max() < 2e-3 * study.abs().max()  # the init scaled by 0.001
    assert not small.equal(filters["linear_cnn-w1-s0-true@step3"])  # and trained


@pytest.mark.slow
def test_embedded_study_records_every_stage(compose):
    """The embedded preset (make run's; ~2 min on one quiet core): the three pretrained first layers with
    their baselines, every CNN at half / at / twice its stopping point with its training accuracy, and a
    verdict for every claim the card targets (whatever it is: the figures are in docs/whitening.md)."""
    from bench.claims import NOT_MEASURED
    from bench.whitening.card import CARD

    _, rows = read_run(execute(compose(["experiment=whitening/embedded", "logger=none",
                                        "trainer.enable_progress_bar=false"])))
    verdicts = {c.id: c.evaluate(rows) for c in CARD.claims}
    assert set(CARD.targets["whitening/embedded"]) == set(verdicts)
    missing = {k: v.note for k, v in verdicts.items() if v.status == NOT_MEASURED}
    assert not missing, missing
    stage_b = {r["params"]["arch"] for r in rows if r["params"].get("stage") == "pretrained"
               and r["metric"] == "fit_margin" and r["params"]["grid"] == "paper"}
    assert stage_b == {"tv_mobilenet_v2", "efficientnet_lite0", "keras_cifar_cnn"}
    phases = {(r["params"]["labels"], r["params"]["seed"], r["params"]["phase"]) for r in rows
              if r["metric"] == "train_acc" and r["params"]["over"] == "model"}
    assert {(labels, seed, phase) for labels in ("true", "random") for seed in (0, 1, 2)
            for phase in ("half", "stop", "double")} <= phases
    for r in rows:  # the wide grid searches a superset of the paper's tau range
        if r["metric"] == "formula_fit_r" and r["params"].get("grid") == "paper":
            assert r["params"]["edge"] == (r["params"]["t"] in (10_000, 4_999_750))


def test_frozen_first_layer_and_pca_tied_labels(compose):
    """The paper's controls: a frozen random first layer never moves (its profile is its init's,
    so it fits exactly as well as the init); labels=pca are balanced quantiles of each image's patch
    energy along one PCA direction."""
    from safetensors.torch import load_file

    from bench.whitening.analyses import pca_energy
    from bench.whitening.patch_pca import PatchPCA

    run_dir = execute(compose([*TINY, "logger=none", "task.pca_labels_component=2",
                               "task.variants=[{},{first_layer:frozen},{labels:pca}]"]))
    rows = read_run(run_dir)[1]
    filters = load_file(str(run_dir / "artifacts" / "filters.safetensors"))
    frozen = {k: v for k, v in filters.items() if k.startswith("linear_cnn-w0.25-s0-true-frozen@")}
    assert len(frozen) >= 3 and all(v.equal(frozen["linear_cnn-w0.25-s0-true-frozen@step0"]) for v in frozen.values())
    fit = {(r["params"]["labels"], r["params"]["weights"], r["params"]["arch"]): r for r in rows
           if r["metric"] == "formula_fit_r" and r["params"]["grid"] == "paper"}
    # the frozen variant's profile is its init's: recorded once, as the trained fit, marked first_layer=frozen
    frozen_fits = [r for r in rows if r["metric"] == "formula_fit_r" and r["params"]["first_layer"] == "frozen"]
    assert {r["params"]["weights"] for r in frozen_fits} == {"trained"}
    init_of = {r["params"]["b"] for r in rows if r["metric"] == "consistency_r" and r["params"]["axis"] == "init"}
    assert "linear_cnn-w0.25-s0-true-frozen@init" not in init_of
    assert ("pca", "trained", "linear_cnn") in fit
    axes = {r["params"]["axis"]: r["params"] for r in rows if r["metric"] == "consistency_r"}
    assert {"first_layer", "labels"} <= set(axes)
    assert axes["first_layer"]["first_layer"] == "learned-frozen" and axes["labels"]["first_layer"] == "learned"

    # the pca labels: rebuild them from the saved PCA and the data, as the task does
    from bench.data.datamodule import ImageDataModule
    from bench.whitening.analyses import quantile_labels

    t = load_file(str(run_dir / "artifacts" / "patch_pca.safetensors"))
    pca = PatchPCA(t["eigvals"], t["eigvecs"], t["mean"], 0, 3, 0)
    dm = ImageDataModule(name="digits", n_train=200, n_test=100)
    dm.setup()
    x, _ = dm.train.tensors()
    labels = quantile_labels(pca_energy(x, pca, 2), pca_energy(x, pca, 2), dm.num_classes)
    assert torch.bincount(labels).max() - torch.bincount(labels).min() <= 1  # balanced


@pytest.mark.parametrize("limit", ["trainer.max_steps=3", "trainer.fast_dev_run=true", "task.stopping.check_every=0"])
def test_a_trainer_limit_with_the_stopping_rule_is_a_config_error(compose, limit):
    from bench.errors import ConfigError

    with pytest.raises(ConfigError, match="stopping"):
        execute(compose([*TINY, "task.stopping.enabled=true", limit, "logger=none"]))


@pytest.mark.integration
def test_stopping_rule_in_a_study(compose):
    """With task.stopping each model is read at half / at / twice its stopping point, the rule read every
    few epochs; a control with double=false stops at E and is read there only."""
    run_dir = execute(compose([
        "task=whitening", "data=digits", "data.n_train=64", "data.n_test=50", "data.batch_size=64",
        "model=resnet20", "model.width=0.5", "+model.kwargs={init: kaiming_fan_out}",
        "trainer.enable_progress_bar=false", "task.autocorr_max_delta=4", "task.autocorr_images=16",
        "task.tau_grid_size=20", "task.stopping.enabled=true", "task.stopping.max_epochs=4",
        "task.stopping.check_every=2", "task.stopping.train_acc=1.01",  # never reached: the cap fires at 4
        "task.variants=[{},{first_layer:frozen,double:false}]", "logger=none"]))
    rows = read_run(run_dir)[1]
    stops = {r["params"]["first_layer"]: r["value"] for r in rows if r["metric"] == "stop_epoch"}
    assert stops == {"learned": 4, "frozen": 4}
    phases = {(r["params"]["first_layer"], r["params"]["phase"], r["params"]["step"]) for r in rows
              if r["metric"] == "train_acc" and r["params"].get("over") != "seeds"}
    # one step an epoch (64 images, batch 64): half = the read at epoch 2, stop = 4, double = 8
    assert phases == {("learned", "half", 2), ("learned", "stop", 4), ("learned", "double", 8),
                      ("frozen", "half", 2), ("frozen", "stop", 4)}
