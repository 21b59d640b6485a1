"""Latent divergences: the Gaussian approximation's closed form and its check, and the
sample-based divergence (unbiased MMD^2, the share outside the base support) valid for every family."""
import math

import pytest
import torch

from bench.shift.card import CARD
from bench.shift.divergence import (
    latent_kl_gauss, latent_kl_gauss_mc, mmd2_unbiased, outside_base_support, sample_divergences)
from bench.shift.families import TRAIN_VALUES, Shift, slerp
from bench.shift.rng import draw_anchors


def test_truncation_kl_matches_paper_formula():
    anchors = draw_anchors(100, 0)
    r = 1.1 ** 2 / 0.81
    expected = 50 * (r - 1 - math.log(r))
    assert latent_kl_gauss(Shift("truncation", 1.1), Shift("truncation", 0.9), anchors) == pytest.approx(expected)
    assert latent_kl_gauss(Shift("truncation", 0.9), Shift("truncation", 0.9), anchors) == 0.0


@pytest.mark.parametrize("family,value", [("truncation", 1.05), ("truncation", 1.1), ("extend", 0.75),
                                          ("extend", 1.0), ("overlap", 0.2), ("overlap", 0.4)])
def test_closed_form_kl_against_monte_carlo(family, value):
    """In a CIFAR-sized latent (d = 3072) the Gaussian forms are accurate: the MC estimate over
    real slerp latents agrees with the closed form within a few standard errors (+0.2%)."""
    anchors = draw_anchors(3072, 0)
    shift, base = Shift(family, value), Shift(family, TRAIN_VALUES[family])
    closed = latent_kl_gauss(shift, base, anchors)
    mc, se = latent_kl_gauss_mc(shift, base, anchors, n=2048, seed=1)
    assert closed > 1.0
    assert abs(mc - closed) < 5 * se + 2e-3 * closed


def test_kl_grows_with_intensity():
    anchors = draw_anchors(16, 0)
    for family, values in [("truncation", [0.9, 1.0, 1.5, 2.0]), ("extend", [0.5, 0.7, 0.9, 1.0]),
                           ("overlap", [0.0, 0.1, 0.2, 0.4])]:
        kls = [latent_kl_gauss(Shift(family, v), Shift(family, values[0]), anchors) for v in values]
        assert kls[0] == pytest.approx(0.0, abs=1e-12)
        assert all(b > a for a, b in zip(kls, kls[1:])), (family, kls)


def test_mmd2_is_unbiased_and_detects_a_shift():
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(400, 8, generator=g, dtype=torch.float64), torch.randn(400, 8, generator=g, dtype=torch.float64)
    same = mmd2_unbiased(x, y, bandwidth=4.0)
    assert abs(same) < 5e-3  # zero in expectation (can be slightly negative)
    assert mmd2_unbiased(x, y + 1.0, bandwidth=4.0) > 20 * abs(same)


@pytest.mark.integration  # a fine grid search: ~5 s
def test_support_of_the_slerp_base_matches_a_brute_force_search():
    """A point is in the support of slerp(c, eps; 1/2) iff some eps maps onto it: search eps in
    the plane of c and z (the only place it can be) on a fine grid of angle and radius."""
    c = torch.tensor([3.0, 0.0], dtype=torch.float64)
    base = Shift("extend", 0.5)
    anchors = torch.stack([c, torch.tensor([0.0, 3.0], dtype=torch.float64)])
    pts = torch.tensor([[-1.0, 1.0], [0.5, 0.5], [1.5, 1.0], [-5.0, 4.0], [2.0, 2.9], [-0.5, 2.0]], dtype=torch.float64)
    out = outside_base_support(pts, base, anchors)
    w = torch.linspace(1e-3, math.pi - 1e-3, 3000, dtype=torch.float64)
    r = torch.logspace(-3, 3, 3000, dtype=torch.float64)
    eps = torch.stack([torch.cos(w)[:, None] * r, torch.sin(w)[:, None] * r], -1).reshape(-1, 2)
    reach = slerp(c.expand_as(eps), eps, 0.5)
    nearest = torch.cdist(pts, reach).min(1).values
    assert torch.equal(out, nearest > 0.05), (out, nearest)
    assert out.any() and (~out).any()


@pytest.mark.integration  # 3072-dimensional samples at the paper's size
def test_extend_at_full_prior_is_far_and_partly_outside_the_base_support():
    anchors = draw_anchors(3072, 0)
    base = Shift("extend", 0.5)
    at_base = sample_divergences(base, base, anchors, n=512, seed=0)
    full = sample_divergences(Shift("extend", 1.0), base, anchors, n=512, seed=0)
    assert at_base["latent_support_out"] == 0.0 and abs(at_base["latent_mmd2"]) < 0.01
    assert full["latent_support_out"] > 0.1
    assert full["latent_mmd2"] > 0.1 and full["latent_mmd2"] > 50 * abs(at_base["latent_mmd2"])
    # truncation's base covers R^d; the slerp bases never contain their own samples' complement
    assert sample_divergences(Shift("truncation", 1.1), Shift("truncation", 0.9), anchors, 256, 0)["latent_support_out"] == 0
    mmd = [sample_divergences(Shift("overlap", s), Shift("overlap", 0.0), anchors, 256, 1)["latent_mmd2"]
           for s in (0.0, 0.2, 0.4)]
    assert mmd[0] < mmd[1] < mmd[2]


def test_gaussian_kl_is_labelled_as_the_gaussian_approximation_everywhere():
    """No metric, display name or doc calls the moment-matched KL plain 'latent KL'."""
    from pathlib import Path

    display = {m.name: m.display for m in CARD.metrics}
    assert "latent_kl" not in display
    assert "Gaussian approximation" in display["latent_kl_gauss"] and "Gaussian" in display["latent_kl_gauss_mc"]
    root = Path(__file__).resolve().parents[2]
    for path in [root / "docs" / "shift.md", *sorted((root / "bench" / "shift").rglob("*.py"))]:
        text = path.read_text()
        assert '"latent_kl"' not in text and "`latent_kl`" not in text and "``latent_kl``" not in text, path
    docs = (root / "docs" / "shift.md").read_text()
    assert "latent_kl_gauss" in docs and "moment-matched" in docs


EMBEDDED = {"truncation": [0.9, 1.2, 1.6, 2.0, 2.5], "extend": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
            "overlap": [0.0, 0.25, 0.5, 0.75, 1.0]}
PAPER = {"truncation": [0.9, 0.95, 1.0, 1.05, 1.1], "extend": [0.5, 0.6, 0.7, 0.8, 0.9, 1.0],
         "overlap": [0.0, 0.1, 0.2, 0.3, 0.4]}


@pytest.mark.parametrize("d, sweeps", [(16, EMBEDDED), pytest.param(3072, PAPER, marks=pytest.mark.integration)])
def test_knn_support_share_moves_along_every_family(d, sweeps):
    """The effective-support divergence: where the exact support share is 0 (truncation; overlap over
    the paper's s <= 0.4) the k-NN estimate still grows with every step; it rises above its base value (the
    estimator's own miss
    rate) at the first step of every family and never falls (in d = 3072 it saturates at 1)."""
    anchors = draw_anchors(d, 0)
    for family, values in sweeps.items():
        base = Shift(family, values[0])
        out = [sample_divergences(Shift(family, v), base, anchors, 1024, seed=1)["latent_support_out_knn"]
               for v in values]
        exact = sample_divergences(Shift(family, values[-1]), base, anchors, 256, seed=1)["latent_support_out"]
        assert 0 < out[0] < out[1], (family, out)
        if d == 16:
            assert all(b > a for a, b in zip(out, out[1:])), (family, out)
        else:
            assert all(b >= a for a, b in zip(out, out[1:])) and out[-1] == 1.0, (family, out)
        if family == "truncation":
            assert exact == 0.0  # what the exact share cannot see: its base covers R^d


def test_knn_support_share_against_brute_force():
    """A shifted point is outside iff no base point's ball (its k-th neighbour distance) holds it."""
    from bench.shift.divergence import outside_knn_support

    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(50, 3, generator=g, dtype=torch.float64), 2 * torch.randn(40, 3, generator=g, dtype=torch.float64)
    got = outside_knn_support(y, x, k=3)
    for j in range(len(y)):
        inside = False
        for i in range(len(x)):
            dists = sorted(float((x[i] - x[m]).norm()) for m in range(len(x)) if m != i)
            inside |= float((y[j] - x[i]).norm()) <= dists[2]
        assert bool(got[j]) == (not inside)
    assert 0 < got.double().mean() < 1
