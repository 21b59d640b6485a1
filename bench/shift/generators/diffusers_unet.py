"""A class-conditional diffusers ``UNet2DModel`` as ``G(z, y)``: pixel-space diffusion driven by a
deterministic ODE sampler from the initial noise ``z`` (C x H x W).

``generator.source`` is a hub id (read from the local Hugging Face cache only: this machine is
offline) or a local directory holding a saved ``UNet2DModel`` (or a pipeline folder with
``unet/`` and ``scheduler/``). With ``source: embedded``, bench trains a tiny MNIST UNet (DDPM epsilon
objective, linear betas) and caches it.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.nn import functional as F

from bench.context import RunContext
from bench.errors import ConfigError, ModelError
from bench.shift.config import GeneratorConfig
from bench.device import resolve_device
from bench.shift.generators.base import Generator, weights_hash
from bench.shift.generators.sampling import make_scheduler, ode_sample

#: the training scheduler of the embedded UNet (DDPM, linear betas, epsilon prediction)
EMBEDDED_SCHEDULER = {"num_train_timesteps": 1000, "beta_schedule": "linear", "beta_start": 1e-4,
                      "beta_end": 0.02, "prediction_type": "epsilon", "clip_sample": False}


def tiny_unet(image_size: int, hidden: int, num_classes: int = 10, in_chans: int = 1):
    """A small class-conditional UNet2DModel (two resolutions, no attention): CPU-sized."""
    from diffusers import UNet2DModel

    if image_size % 4:
        raise ConfigError(f"generator.image_size must be a multiple of 4 for the tiny UNet, not {image_size}")
    return UNet2DModel(sample_size=image_size, in_channels=in_chans, out_channels=in_chans, layers_per_block=1,
                       block_out_channels=(hidden, 2 * hidden), down_block_types=("DownBlock2D", "DownBlock2D"),
                       up_block_types=("UpBlock2D", "UpBlock2D"), norm_num_groups=min(8, hidden),
                       num_class_embeds=num_classes)


class DiffusionModule(L.LightningModule):
    """DDPM training of a class-conditional UNet: predict the noise added at a random timestep; ``optim``,
    ``scheduler``: the ``generator.train`` nodes (built by :func:`bench.training.configure_optimizers`)."""

    def __init__(self, optim: dict[str, Any], scheduler: dict[str, Any] | None = None, image_size: int = 16,
                 hidden: int = 32) -> None:
        super().__init__()
        from diffusers import DDPMScheduler

        self.save_hyperparameters()
        self.unet = tiny_unet(image_size, hidden)
        self.noise = DDPMScheduler.from_config(EMBEDDED_SCHEDULER)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        x = x * 2 - 1  # the UNet works in [-1, 1]
        noise = torch.randn_like(x)
        t = torch.randint(0, self.noise.config.num_train_timesteps, (len(x),), device=x.device)
        pred = self.unet(self.noise.add_noise(x, noise, t), t, class_labels=y).sample
        loss = F.mse_loss(pred, noise)
        self.log("unet/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        from bench.training import configure_optimizers

        return configure_optimizers(self, self.unet.parameters(), self.hparams.optim, self.hparams.scheduler,
                                    "generator.train")


class UNetGenerator(Generator):
    """``G(z, y)``: ODE-integrate a class-conditional UNet from noise ``z``; images in [0, 1]."""

    def __init__(self, unet, scheduler_config: dict, cfg: GeneratorConfig, tag: str) -> None:
        if unet.config.num_class_embeds is None:
            raise ModelError(f"the UNet of {tag} is not class-conditional (num_class_embeds is unset); "
                             "the shift benchmark needs G(z, y)")
        self.device = resolve_device(cfg.device, "generator.device")
        self.unet = unet.eval().to(self.device)
        self.scheduler_config = dict(scheduler_config)
        self.cfg = cfg
        size = unet.config.sample_size
        size = size if isinstance(size, int) else size[0]
        self.latent_shape = (unet.config.in_channels, size, size)
        self.image_shape = (unet.config.out_channels, size, size)
        self.num_classes = unet.config.num_class_embeds
        self.weights_hash = weights_hash(unet)
        self.id = f"unet-{tag}-{cfg.sampler}{cfg.steps}"
        make_scheduler(cfg.sampler, self.scheduler_config, cfg.sigma_min, cfg.sigma_max, cfg.rho, cfg.steps)  # fail fast

    def _decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        scheduler = make_scheduler(cfg.sampler, self.scheduler_config, cfg.sigma_min, cfg.sigma_max, cfg.rho, cfg.steps)
        x = ode_sample(lambda x, t: self.unet(x, t, class_labels=y).sample, scheduler, z, cfg.steps)
        return x / 2 + 0.5


def load_pretrained_unet(source: str):
    """``(unet, training-scheduler config)`` from a local directory or the local HF cache."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = Path(source)
    subfolder = "unet" if (path / "unet").is_dir() else None
    try:
        unet = UNet2DModel.from_pretrained(source, subfolder=subfolder, local_files_only=True)
    except (OSError, ValueError, EnvironmentError) as e:
        raise ModelError(f"cannot load a UNet2DModel from {source!r} without the network ({str(e).splitlines()[0]}); "
                         f"pass generator.source=<local directory>, or download the model into the Hugging Face "
                         f"cache on a connected machine (huggingface-cli download {source})") from None
    try:
        scheduler_config = dict(DDPMScheduler.load_config(source, subfolder="scheduler", local_files_only=True))
    except (OSError, ValueError, EnvironmentError):
        scheduler_config = {}  # DDPM defaults: 1000 linear-beta steps, epsilon prediction
    return unet, scheduler_config


def build_unet_generator(cfg: GeneratorConfig, ctx: RunContext, seed: int = 0) -> UNetGenerator:
    """A pretrained UNet (``cfg.source``) or the embedded tiny MNIST one (trained and cached through ``ctx``)."""
    if cfg.source != "embedded":
        unet, scheduler_config = load_pretrained_unet(cfg.source)
        return UNetGenerator(unet, scheduler_config, cfg, tag=Path(cfg.source).name or "pretrained")
    from bench.shift.generators.embedded import mnist_train_tensors, trained_state, training_nodes

    hp = {**training_nodes(cfg), "image_size": cfg.image_size, "hidden": cfg.hidden}
    state = trained_state(ctx, "unet", {**hp, "noise_scheduler": EMBEDDED_SCHEDULER}, lambda: DiffusionModule(**hp),
                          lambda: mnist_train_tensors(cfg.image_size), cfg.train, seed)
    module = DiffusionModule(**hp)
    module.load_state_dict(state)
    return UNetGenerator(module.unet, EMBEDDED_SCHEDULER, cfg, tag="embedded")
