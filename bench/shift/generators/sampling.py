"""Deterministic ODE sampling with diffusers schedulers: the latent ``z`` *is* the initial noise.

``ddim`` is DDIM with eta = 0; ``euler`` and ``heun`` integrate the probability-flow ODE on the
EDM (Karras) sigma schedule ``sigma_max -> sigma_min`` with exponent ``rho``, without churn.
A fresh scheduler is made for every call (Heun keeps state between its two stages), so a
decode is a pure function of ``z`` and the labels.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from bench.errors import ConfigError

SAMPLERS = ("ddim", "euler", "heun")


def make_scheduler(sampler: str, train_config: dict, sigma_min: float, sigma_max: float, rho: float):
    """A deterministic scheduler built from the model's training-scheduler config."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler

    if sampler == "ddim":
        return DDIMScheduler.from_config(train_config)
    if rho != 7.0:
        raise ConfigError(f"diffusers' Karras schedule fixes rho = 7; generator.rho={rho} is not supported")
    edm = {"use_karras_sigmas": True, "sigma_min": sigma_min, "sigma_max": sigma_max}
    if sampler == "euler":
        return EulerDiscreteScheduler.from_config(train_config, **edm)
    if sampler == "heun":
        return HeunDiscreteScheduler.from_config(train_config, **edm)
    raise ConfigError(f"generator.sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")


def ode_sample(denoise: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], scheduler, z: torch.Tensor,
               steps: int) -> torch.Tensor:
    """Integrate from noise ``z`` (scaled by the scheduler's initial sigma) to a clean sample.
    ``denoise(x, t)`` returns the model's prediction (epsilon, or whatever the scheduler expects)."""
    scheduler.set_timesteps(steps, device=z.device)
    x = z * scheduler.init_noise_sigma
    for t in scheduler.timesteps:
        prediction = denoise(scheduler.scale_model_input(x, t), t)
        x = scheduler.step(prediction, t, x).prev_sample  # DDIM's eta defaults to 0: no noise added
    return x
