"""Deterministic class-conditional generators ``G(z, y)``: ``build_generator(cfg, cache, seed)``.

- ``vae``: the embedded conditional VAE decoder (trained on MNIST and cached; the fast default);
- ``unet``: a class-conditional diffusers ``UNet2DModel`` driven by a deterministic ODE sampler
  (DDIM eta=0, Euler or Heun on the EDM schedule); a hub id / local directory, or the embedded
  tiny one trained on MNIST;
- ``dit``: diffusers' ``DiTPipeline`` (ImageNet classes) from a hub id / local directory;
- ``edm``: an NVlabs EDM network pickle (the paper's generator) with bench's EDM sampler.
"""
from __future__ import annotations

from bench.context import RunContext
from bench.errors import ConfigError
from bench.shift.config import GeneratorConfig, GeneratorKind
from bench.device import resolve_device
from bench.shift.generators.base import Generator, weights_hash

KINDS = tuple(GeneratorKind)
EMBEDDED = "embedded"  # generator.source of the generators bench trains itself

__all__ = ["Generator", "KINDS", "build_generator", "weights_hash"]


def _vae(cfg: GeneratorConfig, ctx: RunContext, seed: int) -> Generator:
    from bench.shift.generators.embedded import mnist_train_tensors, trained_state, training_nodes
    from bench.shift.generators.vae import ConditionalVAE, VAEGenerator

    if cfg.source != EMBEDDED:
        raise ConfigError("the vae generator is trained by bench on MNIST: set generator.source=embedded "
                          "(or use generator=unet / generator=dit for a pretrained model)")
    hp = {**training_nodes(cfg), "latent_dim": cfg.latent_dim, "num_classes": 10, "hidden": cfg.hidden,
          "beta": cfg.train.beta}
    state = trained_state(ctx, "vae", hp, lambda: ConditionalVAE(**hp), mnist_train_tensors, cfg.train, seed)
    vae = ConditionalVAE(**hp)
    vae.load_state_dict(state)
    return VAEGenerator(vae.decoder, cfg.latent_dim, 10, tag=EMBEDDED, device=resolve_device(cfg.device, "generator.device"))


def build_generator(cfg: GeneratorConfig, ctx: RunContext, seed: int = 0) -> Generator:
    """The generator a ``generator`` config describes (training and caching embedded ones with ``seed``
    through ``ctx``: the task passes ``ctx.derive("generator", kind)`` of its data seed)."""
    if not cfg.source:
        raise ConfigError(f"generator.source is required for generator.kind={cfg.kind}: a hub id (in the local "
                          f"Hugging Face cache), a local directory, an EDM network pickle (edm), or 'embedded' "
                          f"(vae, unet: trained on MNIST)")
    if cfg.kind == "vae":
        return _vae(cfg, ctx, seed)
    if cfg.kind == "unet":
        from bench.shift.generators.diffusers_unet import build_unet_generator

        return build_unet_generator(cfg, ctx, seed)
    if cfg.kind == "dit":
        from bench.shift.generators.dit import build_dit_generator

        return build_dit_generator(cfg)
    if cfg.kind == "edm":
        from bench.shift.generators.edm import build_edm_generator

        return build_edm_generator(cfg)
    raise ConfigError(f"unknown generator.kind {cfg.kind!r}; choose one of: {', '.join(KINDS)}")
