"""The EDM generator: bench's sampler against the probability-flow ODE's closed form for Gaussian
data, and loading a network pickle in the NVlabs format."""
import math
import pickle
import sys

import numpy as np
import pytest
import torch

from bench.cache import Cache
from bench.context import RunContext
from bench.errors import ConfigError, ModelError
from bench.shift.config import GeneratorConfig
from bench.shift.generators import build_generator
from bench.shift.dataset import SetSpec, ShardedDatasets, to_uint8
from bench.shift.families import Shift
from bench.shift.generators.edm import edm_sample, edm_sigmas
from bench.shift.rng import REFERENCE_ANCHOR_SEED, draw_anchors
from tests.shift.test_rng import _split as _reference_split

SIGMA_MIN, SIGMA_MAX, S = 0.002, 80.0, 0.5


def at(folder):
    """The context of a library call outside a run: the cache under ``folder``."""
    return RunContext(Cache(folder))


@pytest.fixture(scope="module")
def gaussian():
    """Data N(mu, S^2 I): the ideal denoiser D(x; sigma) = (S^2 x + sigma^2 mu) / (S^2 + sigma^2) makes
    the ODE dx/dsigma = sigma (x - mu) / (S^2 + sigma^2), solved by x - mu ∝ sqrt(S^2 + sigma^2)."""
    g = torch.Generator().manual_seed(0)
    mu = torch.randn(256, generator=g, dtype=torch.float64)
    z = torch.randn(8, 256, generator=g, dtype=torch.float64)

    def denoise(x, sigma):
        return (S ** 2 * x + sigma ** 2 * mu) / (S ** 2 + sigma ** 2)

    def exact(sigma):  # the ODE's solution at sigma, from x = z * SIGMA_MAX at SIGMA_MAX
        return mu + (z * SIGMA_MAX - mu) * math.sqrt(S ** 2 + sigma ** 2) / math.sqrt(S ** 2 + SIGMA_MAX ** 2)

    return denoise, exact, mu, z


def test_schedule_is_karras_rho7():
    sigmas = edm_sigmas(50)
    assert len(sigmas) == 51 and sigmas[-1] == 0
    assert sigmas[0].item() == pytest.approx(80.0) and sigmas[-2].item() == pytest.approx(0.002)
    assert (sigmas[1:] < sigmas[:-1]).all()
    i = 10
    ref = (80 ** (1 / 7) + i / 49 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert sigmas[i].item() == pytest.approx(ref, rel=1e-12)


def test_sampler_reaches_the_closed_form_solution(gaussian):
    denoise, exact, _, z = gaussian
    x = edm_sample(denoise, z, edm_sigmas(256, SIGMA_MIN, SIGMA_MAX))
    assert (x - exact(0.0)).abs().max() < 1e-3


def test_sampler_error_falls_at_second_order(gaussian):
    """Against the exact solution at sigma_min followed by the sampler's own last (Euler) step to 0,
    only Heun's error remains: doubling the steps divides it by ~4."""
    denoise, exact, mu, z = gaussian
    x_min = exact(SIGMA_MIN)
    target = x_min - SIGMA_MIN * SIGMA_MIN * (x_min - mu) / (S ** 2 + SIGMA_MIN ** 2)
    errors = [(edm_sample(denoise, z, edm_sigmas(n, SIGMA_MIN, SIGMA_MAX)) - target).abs().max().item()
              for n in (32, 64, 128, 256)]
    orders = [math.log2(a / b) for a, b in zip(errors, errors[1:])]
    assert all(1.8 < p < 2.4 for p in orders), (errors, orders)
    # Euler alone is first order: the correction is what buys the second
    euler = [(edm_sample(denoise, z, edm_sigmas(n, SIGMA_MIN, SIGMA_MAX), heun=False) - target).abs().max().item()
             for n in (128, 256)]
    assert 0.8 < math.log2(euler[0] / euler[1]) < 1.3


def test_network_pickle_loads_through_generator_edm(edm_pickle, tmp_path):
    path, src = edm_pickle
    cfg = GeneratorConfig(kind="edm", source=str(path), edm_src=str(src), sampler="heun", steps=6, device="cpu")
    gen = build_generator(cfg, at(tmp_path))
    assert gen.latent_shape == (3, 8, 8) and gen.image_shape == (3, 8, 8) and gen.num_classes == 10
    assert gen.id == "edm-edm-tiny-8x8-cond-heun6-fp64"
    z = torch.randn(4, gen.latent_dim, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    images = gen.decode(z, y)
    assert images.shape == (4, 3, 8, 8) and torch.equal(images, gen.decode(z.clone(), y.clone()))
    assert not torch.equal(images, gen.decode(z, (y + 1) % 10))
    # the generator is exactly NVlabs' sampler on the network: x0 = z * 80, one-hot labels, [-1, 1] -> [0, 1]
    ref = _nvlabs_sampler(_unpickled(path, src), z.view(4, 3, 8, 8), torch.eye(10)[y], steps=6)
    assert torch.equal(to_uint8(images), torch.from_numpy(ref))
    # labels can index a subset of the network's classes (the paper's 10 ImageNet classes)
    sub = build_generator(GeneratorConfig(**{**cfg.__dict__, "classes": [3, 7]}), at(tmp_path))
    assert sub.num_classes == 2
    assert torch.equal(sub.decode(z[:2], torch.tensor([0, 1])), gen.decode(z[:2], torch.tensor([3, 7])))


def _unpickled(path, src):
    """The pickle's 'ema' network, loaded here with plain pickle (the source tree on sys.path)."""
    sys.path.insert(0, str(src))
    try:
        with open(path, "rb") as f:
            return pickle.load(f)["ema"]
    finally:
        sys.path.remove(str(src))


def _levels(net, steps):
    """EDM's rho = 7 schedule between 0.002 and 80, clipped to the network's range (float64)."""
    lo, hi = max(0.002, net.sigma_min), min(80.0, net.sigma_max)
    i = torch.arange(steps, dtype=torch.float64)
    return (hi ** (1 / 7) + i / (steps - 1) * (lo ** (1 / 7) - hi ** (1 / 7))) ** 7


@torch.no_grad()
def _heun(net, x, t, labels, steps, dtype):
    """Heun's method down the levels t (Euler on the last step), as both published samplers step."""
    x = x.to(dtype) * t[0]
    for i in range(steps):
        t_cur, t_next = net.round_sigma(t[i]), t[i + 1]
        d = (x - net(x, t_cur, labels).to(dtype)) / t_cur
        x_next = x + (t_next - t_cur) * d
        if i < steps - 1:
            d_next = (x_next - net(x_next, t_next, labels).to(dtype)) / t_next
            x_next = x + (t_next - t_cur) * (0.5 * d + 0.5 * d_next)
        x = x_next
    return x


def _nvlabs_sampler(net, latents, labels, steps):
    """NVlabs generate.py (S_churn = 0): rounded levels ending at 0, float64, rounded to uint8 (NCHW)."""
    t = torch.cat([net.round_sigma(_levels(net, steps)), torch.zeros(1, dtype=torch.float64)])
    x = _heun(net, latents, t, labels, steps, torch.float64)
    return (x * 127.5 + 128).clip(0, 255).to(torch.uint8).numpy()


def _ctrl_shift_sampler(net, latents, labels, steps):
    """Control+Shift's sampling.py: unrounded levels ending at 1e-5, float32; images scaled to [0, 255]
    (the script stores them with astype(uint8): floored)."""
    t = torch.cat([_levels(net, steps), torch.ones(1, dtype=torch.float64) * 1e-5])
    x = _heun(net, latents, t, labels, steps, torch.float32)
    return ((x * .5 + .5).clamp(0, 1) * 255).numpy()


def test_ctrl_shift_sets_are_byte_equal_to_the_reference(edm_pickle, tmp_path):
    """The paper's sets: reference draws and latents, Control+Shift's sampler and floor rounding,
    end to end through bench's dataset build, byte-equal to the script's procedure on an EDM pickle."""
    path, src = edm_pickle
    cfg = GeneratorConfig(kind="edm", source=str(path), edm_src=str(src), sampler="ctrl_shift", steps=5,
                          batch_size=100, device="cpu")
    gen = build_generator(cfg, at(tmp_path))
    assert gen.id == "edm-edm-tiny-8x8-cond-ctrl_shift5-fp32" and gen.quantize == "floor"
    net, d, n = _unpickled(path, src), gen.latent_dim, 200
    anchors = draw_anchors(d, REFERENCE_ANCHOR_SEED, "reference")
    store = ShardedDatasets(gen, tmp_path / "sets", anchors, REFERENCE_ANCHOR_SEED, shard_size=100, batch_size=100,
                            progress=False, rng="reference")
    specs = [SetSpec("test", Shift("overlap", 0.3), n, 0), SetSpec("test", Shift("truncation", 1.1), n, 0)]
    store.build(specs)
    for spec, (exp, value) in zip(specs, [("overlap", 30), ("truncation", 110)]):
        with torch.random.fork_rng(devices=[]):
            state = np.random.get_state()
            labels, _, z = _reference_split(0, n, d, exp, value)
            np.random.set_state(state)
        scaled = np.concatenate([_ctrl_shift_sampler(net, z[i:i + 100].view(100, 3, 8, 8),
                                                     torch.eye(10)[labels[i:i + 100]], 5)
                                   for i in range(0, n, 100)])
        images, y = store.load(spec)
        assert torch.equal(y, labels)
        assert np.array_equal(images.numpy(), scaled.astype(np.uint8))
        # rounding to nearest would store other bytes: the floor is part of the reference
        assert (images.numpy() != np.round(scaled).astype(np.uint8)).mean() > 0.2
    with pytest.raises(ConfigError, match="fp64"):
        build_generator(GeneratorConfig(**{**cfg.__dict__, "fp64": True}), at(tmp_path))


def test_edm_errors_name_the_fix(edm_pickle, tmp_path):
    path, src = edm_pickle
    with pytest.raises(ModelError, match="edm_src"):  # the EDM source tree is not importable
        build_generator(GeneratorConfig(kind="edm", source=str(path), device="cpu"), at(tmp_path))
    with pytest.raises(ConfigError, match="torch_utils"):
        build_generator(GeneratorConfig(kind="edm", source=str(path), edm_src=str(tmp_path), device="cpu"), at(tmp_path))
    with pytest.raises(ModelError, match="not a file"):
        build_generator(GeneratorConfig(kind="edm", source=str(tmp_path / "none.pkl"), device="cpu"), at(tmp_path))
    with pytest.raises(ConfigError, match="sampler"):
        build_generator(GeneratorConfig(kind="edm", source=str(path), edm_src=str(src), sampler="ddim",
                                        device="cpu"), at(tmp_path))
