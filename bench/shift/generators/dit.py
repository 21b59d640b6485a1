"""diffusers' ``DiTPipeline`` (class-conditional latent diffusion, ImageNet) as ``G(z, y)``.

The latent ``z`` is the transformer's initial noise (4 x s x s); sampling is a deterministic
ODE (DDIM eta=0 by default) with classifier-free guidance, then the pipeline's VAE decodes.
Labels ``0..K-1`` index ``generator.classes`` (ImageNet ids); images are resized to
``generator.image_size``. Loaded from a local directory or the local HF cache only.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch.nn import functional as F

from bench.errors import ConfigError, ModelError
from bench.shift.config import GeneratorConfig
from bench.device import resolve_device
from bench.shift.generators.base import Generator, weights_hash
from bench.shift.generators.sampling import make_scheduler, ode_sample


class DiTGenerator(Generator):
    def __init__(self, pipe, cfg: GeneratorConfig, tag: str) -> None:
        if not cfg.classes:
            raise ConfigError("generator.classes must list the ImageNet class ids used as labels 0..K-1")
        n_imagenet = pipe.transformer.config.num_embeds_ada_norm
        if any(not 0 <= c < n_imagenet for c in cfg.classes):
            raise ConfigError(f"generator.classes must be ImageNet ids in [0, {n_imagenet})")
        self.device = resolve_device(cfg.device, "generator.device")
        self.transformer = pipe.transformer.eval().to(self.device)
        self.vae = pipe.vae.eval().to(self.device)
        self.scheduler_config = dict(pipe.scheduler.config)
        self.cfg = cfg
        self.class_ids = torch.tensor(cfg.classes, device=self.device)
        self.null_class = n_imagenet  # DiT's unconditional label for classifier-free guidance
        size, chans = self.transformer.config.sample_size, self.transformer.config.in_channels
        self.latent_shape = (chans, size, size)
        self.image_shape = (3, cfg.image_size, cfg.image_size)
        self.num_classes = len(cfg.classes)
        self.weights_hash = weights_hash(self.transformer, self.vae)
        self.id = f"dit-{tag}-{cfg.sampler}{cfg.steps}-g{cfg.guidance_scale:g}"
        make_scheduler(cfg.sampler, self.scheduler_config, cfg.sigma_min, cfg.sigma_max, cfg.rho, cfg.steps)  # fail fast

    def _denoise(self, x: torch.Tensor, t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        guided = self.cfg.guidance_scale > 1
        labels = torch.cat([y, torch.full_like(y, self.null_class)]) if guided else y
        inp = torch.cat([x, x]) if guided else x
        dtype = next(self.transformer.parameters()).dtype
        out = self.transformer(inp.to(dtype), timestep=t.expand(len(inp)).to(x.device), class_labels=labels).sample
        eps = out[:, :x.shape[1]].float()  # DiT also predicts a variance: keep the noise half
        if guided:
            cond, uncond = eps.chunk(2)
            eps = uncond + self.cfg.guidance_scale * (cond - uncond)
        return eps

    def _decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        labels = self.class_ids[y]
        scheduler = make_scheduler(cfg.sampler, self.scheduler_config, cfg.sigma_min, cfg.sigma_max, cfg.rho, cfg.steps)
        latents = ode_sample(lambda x, t: self._denoise(x, t, labels), scheduler, z, cfg.steps)
        dtype = next(self.vae.parameters()).dtype
        images = self.vae.decode((latents / self.vae.config.scaling_factor).to(dtype)).sample.float() / 2 + 0.5
        if images.shape[-1] != cfg.image_size:
            images = F.interpolate(images, size=cfg.image_size, mode="bilinear", antialias=True, align_corners=False)
        return images


def build_dit_generator(cfg: GeneratorConfig) -> DiTGenerator:
    """A DiT pipeline from ``generator.source`` (a local directory or a hub id in the local cache)."""
    from diffusers import DiTPipeline

    if cfg.source == "embedded":
        raise ConfigError("generator=dit needs generator.source=<hub id or local pipeline directory> "
                          "(e.g. facebook/DiT-XL-2-256); bench does not train DiT")
    device = resolve_device(cfg.device, "generator.device")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    try:
        pipe = DiTPipeline.from_pretrained(cfg.source, local_files_only=True, dtype=dtype)
    except (OSError, ValueError, EnvironmentError) as e:
        raise ModelError(f"cannot load a DiTPipeline from {cfg.source!r} without the network "
                         f"({str(e).splitlines()[0]}); pass generator.source=<local directory>, or download it into "
                         f"the Hugging Face cache on a connected machine (huggingface-cli download {cfg.source})") from None
    return DiTGenerator(pipe, cfg, tag=Path(cfg.source).name)
