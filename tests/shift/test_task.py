"""The shift task end to end through the bench CLI: records validate, every metric is there, and
accuracy falls with intensity (the paper's claim) on the embedded MNIST pipeline."""
import json
from pathlib import Path

import pytest

from bench.cli import execute
from bench.errors import ConfigError
from bench.store import read_run

TINY = [
    "experiment=shift/embedded", "logger=none", "trainer.enable_progress_bar=false", "trainer.max_epochs=6",
    "generator.hidden=128", "generator.train.epochs=6",
    "task.n_train=1000", "task.n_val=200", "task.n_test=300", "task.shard_size=500", "task.mc_samples=256",
    "task.families.truncation.values=[0.9,2.5]", "task.families.extend.values=[0.5,1.0]",
    "task.families.overlap.values=[0.0,1.0]",
    "task.classifiers=[{name: mlp_mixer, width: 0.25, kwargs: {num_blocks: 2, img_size: 28, patch_size: 7}}]",
    "task.augment=[false]", "task.train_sizes=[null]", "task.ablate_augment=null", "task.recipes.mlp_mixer.optim.lr=0.003",
    "task.train.batch_size=64",
]


def _rows(run_dir: Path, metric: str) -> list[dict]:
    return [r for r in read_run(run_dir)[1] if r["metric"] == metric]


def _assert_declines(run_dir: Path, sigmas: float) -> None:
    """At the strongest intensity accuracy is below the base value by more than ``sigmas``
    combined standard errors, for every family and classifier."""
    acc = _rows(run_dir, "accuracy")
    for auc_row in _rows(run_dir, "auc"):
        p = auc_row["params"]
        sweep = sorted((r for r in acc if r["split"] == "test" and r["params"]["family"] == p["family"]
                        and r["params"]["arch"] == p["arch"]), key=lambda r: r["params"]["intensity"])
        base, last = sweep[0], sweep[-1]
        margin = sigmas * (base["stderr"] ** 2 + last["stderr"] ** 2) ** 0.5
        assert base["value"] - last["value"] > margin, (p, base["value"], last["value"])
        assert auc_row["value"] < base["value"]
        drop = [r for r in _rows(run_dir, "accuracy_drop") if r["params"]["family"] == p["family"]
                and r["params"]["arch"] == p["arch"]]
        assert drop[0]["value"] == pytest.approx(base["value"] - last["value"])


def test_embedded_pipeline_end_to_end(compose):
    run_dir = execute(compose(TINY))
    record, rows = read_run(run_dir)
    assert record["status"] == "completed"
    metrics = {r["metric"] for r in rows}
    assert {"accuracy", "accuracy_drop", "auc", "base_accuracy", "latent_kl_gauss", "latent_kl_gauss_mc",
            "latent_mmd2", "latent_support_out", "latent_support_out_knn", "cas", "real_accuracy",
            "real_on_generated"} <= metrics
    # the claims' items: per-image 0/1 correctness, item i the same test image at every intensity; the drop's
    # items are the paired per-image differences
    acc = {(r["params"]["family"], r["params"]["intensity"]): r for r in _rows(run_dir, "accuracy")}
    assert {r["item_set"] for r in acc.values()} == {next(iter(acc.values()))["item_set"]}
    for r in acc.values():
        assert len(r["items"]) == 300 and set(r["items"]) <= {0.0, 1.0}
        assert sum(r["items"]) / 300 == pytest.approx(r["value"])
    for drop in _rows(run_dir, "accuracy_drop"):
        f = drop["params"]["family"]
        base, last = acc[(f, min(i for g, i in acc if g == f))], acc[(f, drop["params"]["intensity"])]
        assert drop["items"] == [a - b for a, b in zip(base["items"], last["items"])]
    assert len(_rows(run_dir, "base_accuracy")[0]["items"]) == 200
    # the card's claims are judged on the run: the decline is measured (the ablations are not run here)
    verdicts = {v["id"]: v for v in record["claims"]}
    assert verdicts["monotone_decline"]["verdict"] != "not measured" and verdicts["monotone_decline"]["n_items"]
    # Gaussian KL beside each intensity: zero at the base, positive beyond, the MC check close to it
    for kl, mc in zip(_rows(run_dir, "latent_kl_gauss"), _rows(run_dir, "latent_kl_gauss_mc")):
        assert kl["params"] == mc["params"]
        assert (kl["value"] == 0) == (kl["params"]["intensity"] in (0.9, 0.5, 0.0))
        assert abs(kl["value"] - mc["value"]) < 5 * mc["stderr"] + 0.25 * kl["value"] + 1e-9
    # the sample divergence grows away from the base in every family; extend at t = 1 leaves the support
    for mmd in _rows(run_dir, "latent_mmd2"):
        at_base = mmd["params"]["intensity"] in (0.9, 0.5, 0.0)
        assert (abs(mmd["value"]) < 0.02) if at_base else (mmd["value"] > 0.05), mmd
    out = {(r["params"]["family"], r["params"]["intensity"]): r["value"] for r in _rows(run_dir, "latent_support_out")}
    assert out[("extend", 1.0)] > 0 and out[("truncation", 2.5)] == 0 and out[("extend", 0.5)] == 0
    # generator quality is measured on real MNIST, in both directions
    assert 0.2 < _rows(run_dir, "cas")[0]["value"] <= 1 and _rows(run_dir, "real_accuracy")[0]["value"] > 0.5
    _assert_declines(run_dir, sigmas=2.0)
    art = run_dir / "artifacts"
    for name in ["accuracy_vs_intensity_truncation.png", "morph_overlap.png", "grid_extend_1.png",
                 "accuracy_table.json", "generator.json"]:
        assert (art / name).is_file(), name
    table = json.loads((art / "accuracy_table.json").read_text())
    assert len(table) == 6 and {r["family"] for r in table} == {"truncation", "extend", "overlap"}


def test_embedded_ablations_are_one_factor_at_a_time_with_each_architectures_recipe(compose):
    """The embedded preset's grid: both architectures at the base condition, the CNN also with
    augmentation, the Mixer also with the smaller training set; the Mixer trains with its own paper's recipe."""
    from bench.shift.ablations import recipe, trains_on, variants

    cfg = compose(["experiment=shift/embedded"])
    grid = [(v.model["name"], v.augment, v.n_train) for v in variants(cfg)]
    assert grid == [("mlp_mixer", False, 2000), ("mlp_mixer", False, 500), ("resnet20", False, 2000),
                    ("resnet20", True, 2000)]
    mixer, cnn = recipe(cfg.task, "mlp_mixer"), recipe(cfg.task, "resnet20")
    assert mixer.optim._target_ == "torch.optim.AdamW" and mixer.optim.momentum == 0  # not SGD's 0.9
    assert mixer.scheduler._target_.endswith("OneCycleLR") and mixer.gradient_clip_val == 1.0
    assert cnn.optim._target_ == "torch.optim.SGD" and cnn.optim.momentum == 0.9 and cnn.gradient_clip_val is None
    # the augmentation ablation trains on the extend/overlap base set only; the size ablation on every one
    assert [trains_on(v, ["truncation"], cfg.task) for v in variants(cfg)] == [True, True, True, False]
    assert all(trains_on(v, ["extend", "overlap"], cfg.task) for v in variants(cfg))
    full = [(v.augment, v.n_train) for v in variants(compose(["experiment=shift/embedded", "task.grid=full"]))]
    assert len(full) == 8 and len(set(full)) == 4
    with pytest.raises(ConfigError, match="task.ablate_sizes"):
        variants(compose(["experiment=shift/embedded", "task.ablate_sizes=[vgg11]"]))
    with pytest.raises(ConfigError, match="task.recipes.mlp_mixer has unknown"):
        recipe(compose(["experiment=shift/embedded", "+task.recipes.mlp_mixer.epochs=3"]).task, "mlp_mixer")


def test_bad_sweep_is_a_clear_config_error(compose):
    cfg = compose(["experiment=shift/embedded", "logger=none", "task.families.extend.values=[0.6,1.0]"])
    with pytest.raises(ConfigError, match="must start at its training value"):
        execute(cfg)


def test_cifar_preset_needs_a_generator_source(compose):
    cfg = compose(["experiment=shift/cifar10_overlap", "logger=none", "trainer=cpu"])
    assert list(k for k, v in cfg.task.families.items() if v is not None) == ["overlap"]
    with pytest.raises(ConfigError, match="generator.source is required"):
        execute(cfg)


def test_cifar_preset_runs_on_an_edm_network_pickle(compose, edm_pickle):
    """The paper's CIFAR-10 preset end to end on CPU at a tiny size: a denoiser pickled in the
    NVlabs dict format, loaded through generator=edm, sampled, trained on and scored."""
    path, src = edm_pickle
    run_dir = execute(compose([
        "experiment=shift/cifar10_overlap", "generator=edm", f"generator.source={path}", f"generator.edm_src={src}",
        "generator.steps=3", "generator.device=cpu", "trainer=cpu", "logger=none", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "task.n_train=200", "task.n_val=100", "task.n_test=100",
        "task.shard_size=100", "task.mc_samples=64", "task.families.overlap.values=[0.0,0.4]",
        "task.classifiers=[{name: resnet20, width: 0.25}]", "task.train_sizes=[100,null]", "task.real_data=null"]))
    record, rows = read_run(run_dir)
    assert record["status"] == "completed"
    assert json.loads((run_dir / "artifacts" / "generator.json").read_text())["id"].startswith("edm-edm-tiny-8x8")
    accs = [r for r in rows if r["metric"] == "accuracy" and r["split"] == "test"]
    # the preset's ablations: augmentation off and on, two training-set sizes, each scored along the sweep
    assert sorted({(r["params"]["aug"], r["params"]["n_train"]) for r in accs}) == [(False, 100), (False, 200),
                                                                                    (True, 100), (True, 200)]
    assert sorted({r["params"]["intensity"] for r in accs}) == [0.0, 0.4] and len(accs) == 8
    # the CIFAR presets draw the reference scripts' anchors, labels and noise
    manifests = list((run_dir.parents[3] / ".cache").rglob("manifest.json"))
    assert manifests and all(json.loads(m.read_text())["seeds"]["rng"] == "reference" for m in manifests)


@pytest.mark.slow
def test_embedded_preset_accuracy_declines_in_every_family(compose):
    """The full `bench experiment=shift/embedded` (about 4 minutes on 2 cores): at the strongest
    intensity of every family, every classifier is clearly below its base accuracy."""
    _assert_declines(execute(compose(["experiment=shift/embedded", "logger=none"])), sigmas=3.0)
