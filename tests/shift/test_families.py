"""Shift families: slerp geometry, pairing-friendly latents, closed-form KL vs Monte Carlo."""
import math

import pytest
import torch

from bench.errors import ConfigError
from bench.shift.families import (
    Shift, parse_values, slerp, validate_sweep)
from bench.shift.rng import draw_anchors


def _angle(a, b):
    # clamped: a cosine of (nearly) parallel vectors can round past 1, where arccos is NaN
    return float(torch.arccos(((a @ b) / (a.norm() * b.norm())).clamp(-1.0, 1.0)))


def _angles(z, a):
    """The angle of each row of ``z`` from ``a`` (cosines clamped, as in :func:`_angle`)."""
    return torch.arccos(((z @ a) / (z.norm(dim=1) * a.norm())).clamp(-1.0, 1.0))


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


def test_measured_angle_is_about_half_the_labelled_one():
    """The paper labels overlap pi s and extend pi (t - 0.5); two independent Gaussian vectors are
    ~pi/2 apart, so the latents actually turn about half of that (0.098 pi at s = 0.2, d = 3072)."""
    anchors = draw_anchors(3072, 0)
    eps = torch.randn(512, 3072, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    omega = _angle(anchors[0], anchors[1])
    assert Shift("overlap", 0.0).measured_angle(anchors, eps) == pytest.approx(0.0, abs=1e-6)
    for s in (0.2, 0.4):
        shift = Shift("overlap", s)
        assert shift.measured_angle(anchors, eps) == pytest.approx(_angle(shift.center(anchors), anchors[0]), abs=1e-7)
        # ~ s * angle(a1, a2): exactly so only for anchors of equal norm (slerp does not normalise)
        assert shift.measured_angle(anchors, eps) == pytest.approx(s * omega, rel=0.01, abs=1e-7)
        assert shift.measured_angle(anchors, eps) == pytest.approx(shift.angle / 2, rel=0.05, abs=1e-12)
    # extend: the mean angle of the latents from a1 minus the base's, measured directly
    z1, z0 = Shift("extend", 1.0).latents(eps, anchors), Shift("extend", 0.5).latents(eps, anchors)
    direct = float(torch.stack([_angles(z, anchors[0]) for z in (z1, z0)]).mean(1).diff().neg())
    assert Shift("extend", 1.0).measured_angle(anchors, eps) == pytest.approx(direct, rel=1e-9)
    assert Shift("extend", 1.0).measured_angle(anchors, eps) == pytest.approx(math.pi / 4, rel=0.05)
    assert Shift("truncation", 1.1).measured_angle(anchors, eps) is None


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
