"""The additive robustness path (one query-noise GEMM shared by every alpha) against the per-config
search a user writes, for every shift mode, noise convention and retrieval direction; and the
perturbations it does not apply to still take the direct path."""
import itertools

import pytest
import torch

from bench.modality_gap import robustness
from bench.modality_gap.gap import GapShift
from bench.modality_gap.perturbation import Perturbation
from bench.modality_gap.robustness import robustness_sweep, sweep_predictions
from bench.seeding import torch_generator

ALPHAS = [0.0, 0.25, 1.0, 1.5]
LEVELS = [0.005, 0.04, 0.3]
SHIFTS = [GapShift("paper", "k=3"), GapShift("paper", "k=3", renormalize=True), GapShift("image_only"),
          GapShift("symmetric")]


def _unit(x):
    return x / x.norm(dim=-1, keepdim=True)


def _views(seed=0, n=90, m=15, d=24):
    """Classification (images -> 15 prototypes) and both retrieval directions (images <-> 2 captions each)."""
    gen = torch.Generator().manual_seed(seed)
    images = _unit(torch.randn(n, d, generator=gen, dtype=torch.float64) + 0.8)
    protos = _unit(torch.randn(m, d, generator=gen, dtype=torch.float64) * 0.6 - 0.8)
    labels = torch.randint(m, (n,), generator=gen)
    owner = torch.arange(2 * n) // 2
    captions = _unit(images[owner] + 0.7 * torch.randn(2 * n, d, generator=gen, dtype=torch.float64) - 1.6)
    positives = torch.arange(n).unsqueeze(1) == owner.unsqueeze(0)
    return {"classes": (images, protos, labels), "i2t": (images, captions, positives),
            "t2i": (captions, images, positives.T)}


def _per_config(query, retrieval, shift, convention, dtype, trials=4, seed=1):
    """Per (alpha, level, trial): shift, perturb, ``torch.cdist(...).argmin`` (what a user writes)."""
    v = shift.direction(query, retrieval)
    out = []
    for alpha in ALPHAS:
        q, r = shift.apply(query.to(dtype), retrieval.to(dtype), alpha, v.to(dtype))
        preds = []
        for i, level in enumerate(LEVELS):
            pert = Perturbation("gaussian", level, convention)
            noise = pert.draw(trials, tuple(retrieval.shape), torch_generator(seed, "level", i))["noise"].to(dtype)
            preds.append(torch.stack([torch.cdist(q, r + noise[t]).argmin(-1) for t in range(trials)]))
        out.append((torch.cdist(q, r).argmin(-1), preds))
    return out


def _sweep(query, retrieval, shift, convention, dtype, **kw):
    return sweep_predictions(query, retrieval, alphas=ALPHAS, shift=shift, perturbation="gaussian", levels=LEVELS,
                             trials=4, seed=1, convention=convention, dtype=dtype, **kw)


@pytest.mark.parametrize("shift,convention,view", itertools.product(SHIFTS, ["norm", "coordinate"],
                                                                   ["classes", "i2t", "t2i"]))
def test_additive_path_equals_per_config_cdist_in_float64(shift, convention, view):
    query, retrieval, _ = _views()[view]
    ref = _per_config(query, retrieval, shift, convention, torch.float64)
    got = _sweep(query, retrieval, shift, convention, torch.float64)
    for (clean, preds, ratios), (ref_clean, ref_preds) in zip(got, ref):
        assert torch.equal(clean, ref_clean)
        assert all(torch.equal(p, r) for p, r in zip(preds, ref_preds))
        assert len(ratios) == len(LEVELS) and all(ratio > 0 for ratio in ratios)
    moved = sum(int((p != ref[0][1][i]).sum()) for _, preds, _ in got[1:] for i, p in enumerate(preds))
    assert moved > 0 or shift.mode == "paper"  # the shifts really change predictions (paper mode may keep them)


@pytest.mark.parametrize("shift", SHIFTS)
def test_chunks_and_stack_groups_do_not_change_predictions(shift, monkeypatch):
    """A stack budget below one level and 7-score chunks (several groups, ragged chunks) give what
    one group and one chunk give: the memory bound costs nothing in results."""
    query, retrieval, _ = _views()["classes"]
    whole = _sweep(query, retrieval, shift, "norm", torch.float64)
    monkeypatch.setattr(robustness._additive_predictions, "__defaults__", (2 * 15 * 24, 7 * 15))
    pieces = _sweep(query, retrieval, shift, "norm", torch.float64)
    for (c1, p1, r1), (c2, p2, r2) in zip(whole, pieces):
        assert torch.equal(c1, c2) and all(torch.equal(a, b) for a, b in zip(p1, p2)) and r1 == r2


@pytest.mark.parametrize("shift", SHIFTS)
def test_float32_rows_equal_the_direct_path(shift):
    """In the task's dtype the additive path reduces to the same rows as the direct path (the
    shift-perturb-search per alpha the sweep used before): a float32 rounding difference could only
    flip a near-exact tie, and none occurs here."""
    query, retrieval, labels = _views()["classes"]
    kw = dict(alphas=ALPHAS, shift=shift, perturbation="gaussian", levels=LEVELS, trials=4, seed=1)
    fast = robustness_sweep(query, retrieval, labels, **kw)
    v = shift.direction(query, retrieval)
    perts = [Perturbation("gaussian", level) for level in LEVELS]
    draws = [{"noise": p.draw(4, tuple(retrieval.shape), torch_generator(1, "level", i))["noise"].float()}
             for i, p in enumerate(perts)]
    direct = robustness._direct_predictions(query.float(), retrieval.float(), shift, ALPHAS, v.float(), perts,
                                            draws, None)
    additive = robustness._additive_predictions(query.float(), retrieval.float(), shift, ALPHAS, v.float(), perts,
                                                draws)
    for (c1, p1, r1), (c2, p2, r2) in zip(direct, additive):
        assert torch.equal(c1, c2) and all(torch.equal(a, b) for a, b in zip(p1, p2)) and r1 == r2
    assert len(fast) == len(ALPHAS) * len(LEVELS)


def test_non_additive_perturbations_take_the_direct_path(monkeypatch):
    calls = []
    monkeypatch.setattr(robustness, "_additive_predictions", lambda *a, **k: calls.append(a) or pytest.fail("additive"))
    query, retrieval, labels = _views()["classes"]
    para = _unit(retrieval + 0.3)
    for kind, levels in (("quantize", [16]), ("paraphrase", [0.5, 1.0])):
        rows = robustness_sweep(query, retrieval, labels, alphas=ALPHAS, shift=GapShift("symmetric"),
                                perturbation=kind, levels=levels, trials=3, paraphrased=para)
        assert len(rows) == len(ALPHAS) * len(levels)
    choices = torch.stack([retrieval[:4]] * len(query))  # per-query candidates (multiple choice)
    rows = robustness_sweep(query, choices, labels % 4, alphas=ALPHAS, shift=GapShift("paper", "k=2"),
                            perturbation="gaussian", levels=[0.01], trials=3)
    assert len(rows) == len(ALPHAS) and not calls


def test_gaussian_on_one_retrieval_set_takes_the_additive_path(monkeypatch):
    calls = []
    monkeypatch.setattr(robustness, "_direct_predictions", lambda *a, **k: calls.append(a) or pytest.fail("direct"))
    query, retrieval, labels = _views()["classes"]
    rows = robustness_sweep(query, retrieval, labels, alphas=ALPHAS, shift=GapShift("symmetric"),
                            perturbation="gaussian", levels=LEVELS, trials=2)
    assert len(rows) == len(ALPHAS) * len(LEVELS) and not calls


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (the GPU path of the same code)")
def test_additive_path_on_cuda_equals_cpu():
    query, retrieval, _ = _views()["classes"]
    for shift in SHIFTS:
        cpu = _sweep(query, retrieval, shift, "norm", torch.float64)
        gpu = _sweep(query, retrieval, shift, "norm", torch.float64, device="cuda")
        for (c1, p1, _), (c2, p2, _) in zip(cpu, gpu):
            assert torch.equal(c1, c2.cpu()) and all(torch.equal(a, b.cpu()) for a, b in zip(p1, p2))
