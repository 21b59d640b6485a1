"""Generators: deterministic decoding, shapes, and loading pretrained diffusers models offline."""
import time

import pytest
import torch

from bench.cache import Cache
from bench.context import RunContext
from bench.errors import ConfigError, ModelError
from bench.shift.config import GeneratorConfig, GeneratorTrainConfig
from bench.shift.generators import build_generator


def at(folder):
    """The context of a library call outside a run: the cache under ``folder``."""
    return RunContext(Cache(folder))


def _check_deterministic(gen, n=3):
    g = torch.Generator().manual_seed(0)
    z = torch.randn(n, gen.latent_dim, generator=g)
    y = torch.arange(n) % gen.num_classes
    a, b = gen.decode(z, y), gen.decode(z.clone(), y.clone())
    assert a.shape == (n, *gen.image_shape)
    assert torch.equal(a, b)
    assert 0.0 <= float(a.min()) and float(a.max()) <= 1.0
    # the output depends on both the latent and the label
    assert not torch.equal(a, gen.decode(1.5 * z, y))
    assert not torch.equal(a, gen.decode(z, (y + 1) % gen.num_classes))
    return a


def test_vae_decoder_is_deterministic(tiny_vae):
    _check_deterministic(tiny_vae)
    with pytest.raises(ValueError, match="labels"):
        tiny_vae.decode(torch.zeros(1, 8), torch.tensor([10]))


def test_embedded_vae_trains_caches_and_decodes(tmp_path):
    cfg = GeneratorConfig(kind="vae", latent_dim=4, hidden=16, device="cpu",
                          train=GeneratorTrainConfig(epochs=1, batch_size=256))
    gen = build_generator(cfg, at(tmp_path))
    _check_deterministic(gen)
    t0 = time.monotonic()
    again = build_generator(cfg, at(tmp_path))  # from the cache: same weights, no training
    assert time.monotonic() - t0 < 5 and again.weights_hash == gen.weights_hash
    other = build_generator(GeneratorConfig(**{**cfg.__dict__, "latent_dim": 5}), at(tmp_path))
    assert other.weights_hash != gen.weights_hash


@pytest.fixture
def unet_dir(tmp_path):
    from diffusers import DDPMScheduler

    from bench.shift.generators.diffusers_unet import EMBEDDED_SCHEDULER, tiny_unet

    torch.manual_seed(0)
    tiny_unet(image_size=8, hidden=8).save_pretrained(tmp_path / "unet")
    DDPMScheduler.from_config(EMBEDDED_SCHEDULER).save_pretrained(tmp_path / "scheduler")
    return tmp_path


@pytest.mark.parametrize("sampler", ["ddim", "euler"])
def test_unet_generator_from_local_directory(unet_dir, sampler):
    cfg = GeneratorConfig(kind="unet", source=str(unet_dir), sampler=sampler, steps=4, device="cpu")
    gen = build_generator(cfg, at(unet_dir))
    assert gen.latent_shape == (1, 8, 8) and gen.num_classes == 10
    _check_deterministic(gen)


def test_heun_schedule_outside_the_sigma_bounds_is_a_config_error(unet_dir):
    """diffusers' Heun scheduler has no sigma bounds: on the DDPM training schedule it would run
    sigma 157 -> 0.01 at 50 steps, not EDM's 80 -> 0.002; bench refuses instead of sampling another ODE."""
    with pytest.raises(ConfigError, match=r"runs sigma from .* not the configured generator.sigma_max=80"):
        build_generator(GeneratorConfig(kind="unet", source=str(unet_dir), sampler="heun", steps=4, device="cpu"),
                        at(unet_dir))


def test_unknown_sampler_is_a_config_error(unet_dir):
    with pytest.raises(ConfigError, match="sampler"):
        build_generator(GeneratorConfig(kind="unet", source=str(unet_dir), sampler="dpm++", device="cpu"), at(unet_dir))


@pytest.mark.parametrize("kind", ["unet", "dit"])
def test_uncached_hub_model_offline_is_a_fast_clear_error(kind, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    t0 = time.monotonic()
    with pytest.raises(ModelError, match="generator.source"):
        build_generator(GeneratorConfig(kind=kind, source="nobody/not-a-cached-model", device="cpu",
                                        classes=[1, 2]), at(tmp_path))
    assert time.monotonic() - t0 < 10


def test_dit_generator_from_local_pipeline(tmp_path):
    from diffusers import AutoencoderKL, DDIMScheduler, DiTPipeline, DiTTransformer2DModel

    torch.manual_seed(0)
    transformer = DiTTransformer2DModel(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8,
                                        num_layers=1, sample_size=4, patch_size=2, num_embeds_ada_norm=1000)
    vae = AutoencoderKL(in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 2,
                        up_block_types=("UpDecoderBlock2D",) * 2, block_out_channels=(8, 8), latent_channels=4,
                        norm_num_groups=4, layers_per_block=1, sample_size=8)
    DiTPipeline(transformer=transformer, vae=vae, scheduler=DDIMScheduler()).save_pretrained(tmp_path / "dit")
    cfg = GeneratorConfig(kind="dit", source=str(tmp_path / "dit"), steps=3, guidance_scale=1.5,
                          classes=[1, 2, 3], image_size=8, device="cpu")
    gen = build_generator(cfg, at(tmp_path))
    assert gen.latent_shape == (4, 4, 4) and gen.image_shape == (3, 8, 8) and gen.num_classes == 3
    _check_deterministic(gen)
    with pytest.raises(ConfigError, match="ImageNet ids"):
        build_generator(GeneratorConfig(**{**cfg.__dict__, "classes": [1000]}), at(tmp_path))


@pytest.mark.slow
def test_embedded_unet_trains_and_samples_digits(compose, tmp_path):
    """The tiny MNIST diffusion model as ``generator=unet`` ships it (16x16, 30 epochs of the 4,000
    embedded digits = 1,860 AdamW steps): samples are deterministic and a real-MNIST classifier
    recognises their labels far above chance. The recipe comes from the config, not a copy of it: a copy
    with 15 epochs (930 steps, undertrained: speckled digits) scored 42.5%; the shipped recipe 79.5%."""
    from bench.config import validate
    from bench.data.embedded import load_mnist
    from bench.shift.evaluate import correct, train_classifier
    from bench.tasks import get_task
    from omegaconf import OmegaConf

    cfg = validate(compose(["task=shift", "generator=unet", "generator.steps=25", "generator.device=cpu"]),
                   get_task("shift").schemas())
    gen = build_generator(cfg.generator, at(tmp_path))
    images = _check_deterministic(gen, n=200)
    x, y = load_mnist("train")
    x16 = torch.nn.functional.interpolate(x.float() / 255, size=16, mode="bilinear", antialias=True)
    trainer = OmegaConf.create({"accelerator": "cpu", "devices": 1, "max_epochs": 3, "enable_progress_bar": False})
    train = OmegaConf.create({"batch_size": 128, "optim": {"lr": 0.05, "momentum": 0.9, "weight_decay": 5e-4},
                              "scheduler": None})
    model, norm = train_classifier(RunContext(Cache(tmp_path), trainer_cfg=trainer), (x16 * 255).round().to(torch.uint8),
                                   y, {"name": "resnet20", "width": 0.25}, train, False, 10, seed=0)
    labels = torch.arange(200) % 10
    (hits,) = correct(model, norm, [((images * 255).round().to(torch.uint8), labels)], trainer)
    assert hits.mean() > 0.5
