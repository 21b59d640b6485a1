"""Shift families: slerp geometry, pairing-friendly latents, closed-form KL vs Monte Carlo."""
import math

import pytest
import torch

from bench.errors import ConfigError
from bench.shift.families import (
    TRAIN_VALUES, Shift, latent_kl, latent_kl_mc, parse_values, slerp, validate_sweep)
from bench.shift.rng import draw_anchors


def _angle(a, b):
    return float(torch.arccos((a @ b) / (a.norm() * b.norm())))


def test_slerp_endpoints_and_angle():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, generator=g, dtype=torch.float64), torch.randn(64, generator=g, dtype=torch.float64)
    assert torch.allclose(slerp(a, b, 0.0), a) and torch.allclose(slerp(a, b, 1.0), b)
    a, b = a / a.norm(), b / b.norm()  # the constant-speed property holds on the unit sphere
    omega = _angle(a, b)
    for t in (0.25, 0.5, 0.8):
        mid = slerp(a, b, t)
        # the interpolant sweeps the plane of a and b at a constant angular speed
        assert _angle(a, mid) == pytest.approx(t * omega, abs=1e-9)
        assert _angle(mid, b) == pytest.approx((1 - t) * omega, abs=1e-9)
        assert float(mid.norm()) == pytest.approx(1.0)


def test_slerp_batched_and_parallel_fallback():
    a = torch.ones(3, 8, dtype=torch.float64)
    assert torch.allclose(slerp(a, 2 * a, 0.5), 1.5 * a)  # parallel vectors: the linear limit
    eps = torch.randn(5, 8, dtype=torch.float64)
    rows = torch.stack([slerp(a[0], e, 0.3) for e in eps])
    assert torch.allclose(slerp(a[0], eps, 0.3), rows)


def test_family_latents_follow_the_paper():
    anchors = draw_anchors(32, 7)
    eps = torch.randn(10, 32, dtype=torch.float64)
    assert torch.allclose(Shift("truncation", 1.1).latents(eps, anchors), 1.1 * eps)
    assert torch.allclose(Shift("extend", 1.0).latents(eps, anchors), eps)  # t = 1 is the full prior
    assert torch.allclose(Shift("extend", 0.7).latents(eps, anchors), slerp(anchors[0], eps, 0.7))
    c = slerp(anchors[0], anchors[1], 0.3)
    assert torch.allclose(Shift("overlap", 0.3).latents(eps, anchors), slerp(c, eps, 0.5))
    # extend and overlap share their base distribution (one base training set serves both)
    assert Shift("extend", 0.5).key == Shift("overlap", 0.0).key
    assert torch.allclose(Shift("extend", 0.5).latents(eps, anchors), Shift("overlap", 0.0).latents(eps, anchors))
    assert Shift("overlap", 0.1).key != Shift("overlap", 0.2).key != Shift("truncation", 0.9).key
    assert Shift("extend", 1.0).angle == pytest.approx(math.pi / 2)
    assert Shift("overlap", 0.4).angle == pytest.approx(0.4 * math.pi)


def test_truncation_kl_matches_paper_formula():
    anchors = draw_anchors(100, 0)
    r = 1.1 ** 2 / 0.81
    expected = 50 * (r - 1 - math.log(r))
    assert latent_kl(Shift("truncation", 1.1), Shift("truncation", 0.9), anchors) == pytest.approx(expected)
    assert latent_kl(Shift("truncation", 0.9), Shift("truncation", 0.9), anchors) == 0.0


@pytest.mark.parametrize("family,value", [("truncation", 1.05), ("truncation", 1.1), ("extend", 0.75),
                                          ("extend", 1.0), ("overlap", 0.2), ("overlap", 0.4)])
def test_closed_form_kl_against_monte_carlo(family, value):
    """In a CIFAR-sized latent (d = 3072) the Gaussian forms are accurate: the MC estimate over
    real slerp latents agrees with the closed form within a few standard errors (+0.2%)."""
    anchors = draw_anchors(3072, 0)
    shift, base = Shift(family, value), Shift(family, TRAIN_VALUES[family])
    closed = latent_kl(shift, base, anchors)
    mc, se = latent_kl_mc(shift, base, anchors, n=2048, seed=1)
    assert closed > 1.0
    assert abs(mc - closed) < 5 * se + 2e-3 * closed


def test_kl_grows_with_intensity():
    anchors = draw_anchors(16, 0)
    for family, values in [("truncation", [0.9, 1.0, 1.5, 2.0]), ("extend", [0.5, 0.7, 0.9, 1.0]),
                           ("overlap", [0.0, 0.1, 0.2, 0.4])]:
        kls = [latent_kl(Shift(family, v), Shift(family, values[0]), anchors) for v in values]
        assert kls[0] == pytest.approx(0.0, abs=1e-12)
        assert all(b > a for a, b in zip(kls, kls[1:])), (family, kls)


def test_sweep_config_checks():
    assert parse_values("extend", [0, 0.25, 0.5], "angle_pi") == [0.5, 0.75, 1.0]
    assert parse_values("overlap", [0, 0.4], "angle_pi") == [0.0, 0.4]
    with pytest.raises(ConfigError, match="no angle"):
        parse_values("truncation", [0.1], "angle_pi")
    with pytest.raises(ConfigError, match="must start at its training value"):
        validate_sweep("truncation", [1.0, 1.1])
    with pytest.raises(ConfigError, match="increase"):
        validate_sweep("overlap", [0.0, 0.3, 0.2])
    with pytest.raises(ConfigError, match="unknown shift family"):
        Shift("rotation", 1.0)
