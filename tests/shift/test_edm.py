"""The EDM generator: bench's sampler against the probability-flow ODE's closed form for Gaussian
data, and loading a network pickle in the NVlabs format."""
import math

import pytest
import torch

from bench.errors import ConfigError, ModelError
from bench.shift.config import GeneratorConfig
from bench.shift.generators import build_generator
from bench.shift.generators.edm import edm_sample, edm_sigmas

SIGMA_MIN, SIGMA_MAX, S = 0.002, 80.0, 0.5


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
    gen = build_generator(cfg, tmp_path)
    assert gen.latent_shape == (3, 8, 8) and gen.image_shape == (3, 8, 8) and gen.num_classes == 10
    assert gen.id == "edm-edm-tiny-8x8-cond-heun6-fp64"
    z = torch.randn(4, gen.latent_dim, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([0, 1, 2, 3])
    images = gen.decode(z, y)
    assert images.shape == (4, 3, 8, 8) and torch.equal(images, gen.decode(z.clone(), y.clone()))
    assert not torch.equal(images, gen.decode(z, (y + 1) % 10))
    # the generator is exactly the reference sampler on the network: x0 = z * 80, one-hot labels, [-1, 1] -> [0, 1]
    one_hot = torch.eye(10)[y]
    ref = edm_sample(lambda x, s: gen.net(x, s, one_hot), z.view(4, 3, 8, 8), edm_sigmas(6))
    assert torch.allclose(images, ((ref.float() + 1) / 2).clamp(0, 1))
    # labels can index a subset of the network's classes (the paper's 10 ImageNet classes)
    sub = build_generator(GeneratorConfig(**{**cfg.__dict__, "classes": [3, 7]}), tmp_path)
    assert sub.num_classes == 2
    assert torch.equal(sub.decode(z[:2], torch.tensor([0, 1])), gen.decode(z[:2], torch.tensor([3, 7])))


def test_edm_errors_name_the_fix(edm_pickle, tmp_path):
    path, src = edm_pickle
    with pytest.raises(ModelError, match="edm_src"):  # the EDM source tree is not importable
        build_generator(GeneratorConfig(kind="edm", source=str(path), device="cpu"), tmp_path)
    with pytest.raises(ConfigError, match="torch_utils"):
        build_generator(GeneratorConfig(kind="edm", source=str(path), edm_src=str(tmp_path), device="cpu"), tmp_path)
    with pytest.raises(ModelError, match="not a file"):
        build_generator(GeneratorConfig(kind="edm", source=str(tmp_path / "none.pkl"), device="cpu"), tmp_path)
    with pytest.raises(ConfigError, match="sampler"):
        build_generator(GeneratorConfig(kind="edm", source=str(path), edm_src=str(src), sampler="ddim",
                                        device="cpu"), tmp_path)
