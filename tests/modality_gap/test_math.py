"""The gap post-processing invariant, the metrics against straightforward loops, and the
vectorised robustness sweep against a per-sample loop."""
import math

import pytest
import torch

from bench.modality_gap.gap import GapShift, gap_orthogonality, gap_vector, pca_basis, permutation_null_gap
from bench.modality_gap.metrics import classification_metrics, nn_scores, recall_at_k
from bench.modality_gap.perturbation import Perturbation
from bench.modality_gap.robustness import robustness_sweep
from bench.seeding import torch_generator


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def _clouds(n=400, m=12, d=32, gap=0.8, seed=0):
    gen = torch.Generator().manual_seed(seed)
    centre = _unit(torch.randn(d, generator=gen, dtype=torch.float64))
    x = _unit(torch.randn(m, d, generator=gen, dtype=torch.float64) * 0.3 - gap / 2 * centre)
    labels = torch.randint(m, (n,), generator=gen)
    y = _unit(x[labels] + 0.4 * torch.randn(n, d, generator=gen, dtype=torch.float64) + gap * centre)
    return y, x, labels


def test_orthogonal_shift_leaves_clean_predictions_identical_for_every_alpha():
    y, x, _ = _clouds()
    shift = GapShift("paper")  # k = rank of centred X: g' is orthogonal to X's affine span
    v = shift.direction(y, x)
    assert torch.allclose((x - x[0]) @ v, torch.zeros(len(x), dtype=x.dtype), atol=1e-12)
    clean = nn_scores(y, x).argmax(-1)
    for alpha in (0.0, 0.25, 0.5, 1.0, 2.0, 10.0):
        moved, same_x = shift.apply(y, x, alpha)
        assert same_x is x
        assert torch.equal(nn_scores(moved, x).argmax(-1), clean), alpha
    # The invariant is not vacuous: shifting along the raw gap (inside X's span) does change predictions.
    g = gap_vector(y, x)
    assert not torch.equal(nn_scores(y - 10.0 * g, x).argmax(-1), clean)


def test_gap_vector_and_orthogonality():
    y, x, _ = _clouds(m=40, d=16)
    g = gap_vector(y, x)
    assert torch.allclose(g, y.mean(0) - x.mean(0))
    basis = pca_basis(x)
    assert basis.shape == (16, 16)  # 40 points in 16 dims: full rank
    assert torch.allclose(basis.T @ basis, torch.eye(16, dtype=basis.dtype), atol=1e-10)
    assert gap_orthogonality(g, x, 0) == pytest.approx(1.0)
    assert gap_orthogonality(g, x, 16) == pytest.approx(0.0, abs=1e-12)
    # A direction built orthogonal to a 3-D cloud's span is entirely outside its PCs.
    flat = torch.zeros(50, 8, dtype=torch.float64)
    flat[:, :3] = torch.randn(50, 3, dtype=torch.float64)
    assert gap_orthogonality(torch.tensor([0, 0, 0, 1.0, 0, 0, 0, 0], dtype=torch.float64), flat, 3) == pytest.approx(1.0)


def test_symmetric_shift_moves_both_and_renormalises():
    y, x, _ = _clouds()
    q, r = GapShift("symmetric").apply(y, x, 1.0)
    q_img, r_img = GapShift("image_only").apply(y, x, 1.0)
    assert r_img is x and torch.allclose(q_img.norm(dim=-1), torch.ones(len(q), dtype=q.dtype))
    assert torch.allclose(q.norm(dim=-1), torch.ones(len(q), dtype=q.dtype))
    assert gap_vector(q, r).norm() < gap_vector(y, x).norm() / 2
    with pytest.raises(ValueError, match="mode"):
        GapShift("sideways")


def test_gap_is_far_above_the_permutation_null():
    y, x, _ = _clouds(m=100, gap=1.2)
    mean_null, max_null = permutation_null_gap(y, x)
    assert float(gap_vector(y, x).norm()) > 2 * max_null
    y_same, x_same, _ = _clouds(m=100, gap=0.0)  # one distribution: the gap is at the null's level
    assert float(gap_vector(y_same, x_same).norm()) < 2 * permutation_null_gap(y_same, x_same)[1]


def test_classification_metrics_match_straightforward_loops():
    gen = torch.Generator().manual_seed(1)
    n, c, d = 300, 7, 16
    img = _unit(torch.randn(n, d, generator=gen))
    protos = _unit(torch.randn(c, d, generator=gen))
    labels = torch.randint(c, (n,), generator=gen)
    logits = 100 * img @ protos.T  # the CLIP convention
    got = classification_metrics(nn_scores(img, protos), labels)
    top1 = sum(int(logits[i].argmax()) == int(labels[i]) for i in range(n)) / n
    top5 = sum(int(labels[i]) in sorted(range(c), key=lambda j: -float(logits[i, j]))[:5] for i in range(n)) / n
    recalls = []
    for cls in range(c):
        idx = [i for i in range(n) if int(labels[i]) == cls]
        if idx:
            recalls.append(sum(int(logits[i].argmax()) == cls for i in idx) / len(idx))
    assert got["acc1"] == pytest.approx(top1)
    assert got["acc5"] == pytest.approx(top5)
    assert got["mean_per_class_recall"] == pytest.approx(sum(recalls) / len(recalls))
    assert math.isnan(classification_metrics(nn_scores(img, protos[:4]), labels.clamp(max=3))["acc5"])


def test_recall_at_k_matches_a_loop():
    gen = torch.Generator().manual_seed(2)
    scores = torch.randn(50, 120, generator=gen)
    positives = torch.zeros(50, 120, dtype=torch.bool)
    for i in range(50):  # 5 captions per image, like COCO
        positives[i, torch.randperm(120, generator=gen)[:5]] = True
    got = recall_at_k(scores, positives, (1, 5, 10))
    for k in (1, 5, 10):
        hits = sum(any(bool(positives[i, j]) for j in scores[i].argsort(descending=True)[:k]) for i in range(50))
        assert got[k] == pytest.approx(hits / 50)
    # Text-to-image: every caption searches the images; its positive is the image it describes.
    got_t2i = recall_at_k(scores.T, positives.T, (1, 5))
    for k in (1, 5):
        hits = sum(any(bool(positives[i, j]) for i in scores[:, j].argsort(descending=True)[:k]) for j in range(120))
        assert got_t2i[k] == pytest.approx(hits / 120)


def _loop_sweep(y, x, targets, alphas, shift, pert_kind, levels, trials, seed, paraphrased=None):
    """Per-sample reference: draw the same randomness, then one query at a time. ``targets`` are
    labels or a positives mask; ``x`` is one set (M x d) or per-query candidates (N x C x d)."""
    out = []
    direction = shift.direction(y, x)
    for i, level in enumerate(levels):
        pert = Perturbation(pert_kind, level)
        t = pert.trials(trials)
        draws = pert.draw(t, tuple(x.shape), torch_generator(seed, "level", i))
        for alpha in alphas:
            q, r = shift.apply(y, x, alpha, direction)
            perturbed = pert.apply(r, draws, paraphrased)
            same = correct = 0
            for trial in range(t):
                for n in range(len(q)):
                    own, own_perturbed = (r[n], perturbed[trial, n]) if x.dim() == 3 else (r, perturbed[trial])
                    clean = int(((own - q[n]) ** 2).sum(-1).argmin())
                    pred = int(((own_perturbed - q[n]) ** 2).sum(-1).argmin())
                    same += pred == clean
                    correct += bool(targets[n, pred]) if targets.dim() == 2 else pred == int(targets[n])
            out.append((same / (t * len(q)), correct / (t * len(q))))
    return out


@pytest.mark.parametrize("kind,levels", [("gaussian", [0.005, 0.04]), ("quantize", [8, 32]),
                                         ("paraphrase", [0.5, 1.0])])
def test_vectorised_sweep_equals_per_sample_loop(kind, levels):
    y, x, labels = _clouds(n=120, m=10, d=16)
    paraphrased = _unit(x + 0.3 * torch.randn(*x.shape, dtype=x.dtype)) if kind == "paraphrase" else None
    shift = GapShift("paper")
    rows = robustness_sweep(y, x, labels, alphas=[0.0, 0.5, 1.0], shift=shift, perturbation=kind, levels=levels,
                            trials=4, seed=3, paraphrased=paraphrased, dtype=torch.float64)
    ref = _loop_sweep(y, x, labels, [0.0, 0.5, 1.0], shift, kind, levels, 4, 3, paraphrased)
    got = [v for r in rows for v in (r["robustness"], r["accuracy"])]
    assert got == pytest.approx([v for pair in ref for v in pair], abs=1e-12)
    assert all(r["clean_accuracy"] == rows[0]["clean_accuracy"] for r in rows)  # the invariant again


def test_closing_the_gap_increases_gaussian_robustness_on_a_toy():
    y, x, labels = _clouds(n=600, m=10, d=32, gap=4.0)
    rows = robustness_sweep(y, x, labels, alphas=[0.0, 1.0], shift=GapShift("paper"), perturbation="gaussian",
                            levels=[0.005], trials=20, seed=0, dtype=torch.float64, convention="coordinate")
    assert rows[1]["robustness"] > rows[0]["robustness"] + 3 * max(rows[0]["robustness_stderr"], 1e-3)


def test_bad_perturbations_fail_clearly():
    with pytest.raises(ValueError, match="bins"):
        Perturbation("quantize", 1.5)
    with pytest.raises(ValueError, match="perturbation must be one of"):
        Perturbation("blur", 1)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("m,d", [(10, 64), (100, 512), (40, 16)])
def test_rank_is_exact_for_float32_and_float64_inputs(dtype, m, d):
    gen = torch.Generator().manual_seed(m)
    points = _unit(torch.randn(m, d, generator=gen, dtype=torch.float64)).to(dtype)
    basis = pca_basis(points)  # subspace=rank
    assert basis.dtype == torch.float64
    assert basis.shape == (d, min(m - 1, d))  # m centred points span m - 1 directions (at most d)
    # A float32 input gives the same basis (up to sign) and the same direction as its float64 copy.
    ref = pca_basis(points.double())
    assert torch.allclose((basis.T @ ref).abs().diagonal(), torch.ones(basis.shape[1], dtype=torch.float64), atol=1e-9)


def test_subspace_forms_and_their_errors():
    x = torch.randn(30, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    assert pca_basis(x, subspace="k=3").shape == (8, 3)
    assert pca_basis(x, subspace="var=1.0").shape == (8, 8)
    one = pca_basis(x, subspace="var=0.01")
    assert one.shape == (8, 1) and torch.allclose(one, pca_basis(x, 1))
    for bad in ("k=-1", "var=0", "var=1.5", "half", "k=two"):
        with pytest.raises(ValueError, match="subspace must be"):
            GapShift("paper", bad)


def test_paper_mode_on_a_gallery_larger_than_d_needs_k_below_rank():
    """n > d gallery items span every direction: with subspace=rank (= d), g' = 0 and nothing moves;
    with k < rank the gap moves and some clean predictions change (g' is no longer orthogonal to the
    gallery's affine span, so the invariant does not hold)."""
    y, x, _ = _clouds(n=300, m=60, d=16, gap=1.5)
    clean = nn_scores(y, x).argmax(-1)
    full = GapShift("paper", "rank")
    assert float(full.direction(y, x).norm()) < 1e-12
    moved, _ = full.apply(y, x, 1.0)
    assert torch.equal(nn_scores(moved, x).argmax(-1), clean)
    partial = GapShift("paper", "k=4")
    moved, _ = partial.apply(y, x, 1.0)
    assert gap_vector(moved, x).norm() < gap_vector(y, x).norm() - 0.1
    assert int((nn_scores(moved, x).argmax(-1) != clean).sum()) > 0


@pytest.mark.parametrize("convention,ratio", [("norm", 0.005 ** 0.5), ("coordinate", (0.005 * 64) ** 0.5)])
def test_gaussian_conventions_and_measured_noise_ratio(convention, ratio):
    y, x, labels = _clouds(n=50, m=10, d=64)
    rows = robustness_sweep(y, x, labels, alphas=[0.0], shift=GapShift("paper"), perturbation="gaussian",
                            levels=[0.005], trials=50, convention=convention, dtype=torch.float64)
    assert rows[0]["convention"] == convention
    assert rows[0]["noise_ratio"] == pytest.approx(ratio, rel=0.05)


def test_paraphrase_table_is_one_paraphrase_per_template():
    from bench.modality_gap.zeroshot import load_class_set

    for name in ("mnist", "cifar10", "cifar100"):
        cs = load_class_set(name)
        assert len(cs.paraphrase_templates) == len(cs.templates)
        assert all(p != t and "{c}" in p for p, t in zip(cs.paraphrase_templates, cs.templates))


def test_paraphrase_at_full_level_is_deterministic_and_swaps_every_prototype():
    y, x, labels = _clouds(n=80, m=10, d=16)
    para = _unit(x + 0.5 * torch.randn(*x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(1)))
    rows = robustness_sweep(y, x, labels, alphas=[0.0], shift=GapShift("paper"), perturbation="paraphrase",
                            levels=[1.0], trials=10, paraphrased=para, dtype=torch.float64)
    assert rows[0]["trials"] == 1
    assert rows[0]["accuracy"] == pytest.approx(float((nn_scores(y, para).argmax(-1) == labels).double().mean()))


def test_retrieval_sweeps_in_both_directions_equal_plain_loops():
    gen = torch.Generator().manual_seed(5)
    images = _unit(torch.randn(30, 16, generator=gen, dtype=torch.float64) + 1.0)
    owner = torch.arange(60) // 2  # two captions per image, like COCO's five
    captions = _unit(images[owner] + 0.6 * torch.randn(60, 16, generator=gen, dtype=torch.float64) - 2.0)
    positives = torch.arange(30).unsqueeze(1) == owner.unsqueeze(0)
    shift = GapShift("paper", "k=4")
    for query, gallery, mask in ((images, captions, positives), (captions, images, positives.T)):
        rows = robustness_sweep(query, gallery, mask, alphas=[0.0, 1.0], shift=shift, perturbation="gaussian",
                                levels=[0.05], trials=3, seed=1, dtype=torch.float64)
        ref = _loop_sweep(query, gallery, mask, [0.0, 1.0], shift, "gaussian", [0.05], 3, 1)
        assert [v for r in rows for v in (r["robustness"], r["accuracy"])] == \
            pytest.approx([v for pair in ref for v in pair], abs=1e-12)


@pytest.mark.parametrize("kind,levels", [("gaussian", [0.02, 0.2]), ("quantize", [16])])
def test_multiple_choice_sweep_equals_a_plain_loop_and_keeps_clean_accuracy(kind, levels):
    gen = torch.Generator().manual_seed(6)
    n, c, d = 40, 4, 16
    images = _unit(torch.randn(n, d, generator=gen, dtype=torch.float64) + 1.0)
    labels = torch.randint(c, (n,), generator=gen)
    choices = _unit(torch.randn(n, c, d, generator=gen, dtype=torch.float64) - 1.0)
    choices[torch.arange(n), labels] = _unit(images - 2.0 + 0.5 * torch.randn(n, d, generator=gen, dtype=torch.float64))
    shift = GapShift("paper", "k=6")  # 160 pooled choices in d=16: full rank, so k below it
    rows = robustness_sweep(images, choices, labels, alphas=[0.0, 1.0], shift=shift, perturbation=kind,
                            levels=levels, trials=3, seed=2, dtype=torch.float64)
    ref = _loop_sweep(images, choices, labels, [0.0, 1.0], shift, kind, levels, 3, 2)
    assert [v for r in rows for v in (r["robustness"], r["accuracy"])] == \
        pytest.approx([v for pair in ref for v in pair], abs=1e-12)
    exact = robustness_sweep(images, choices, labels, alphas=[0.0, 0.5, 1.0], shift=GapShift("paper", "rank"),
                             perturbation=kind, levels=levels, trials=2, dtype=torch.float64)
    assert len({r["clean_accuracy"] for r in exact}) == 1
