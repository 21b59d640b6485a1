"""Deterministic ODE sampling with diffusers schedulers: the latent ``z`` *is* the initial noise.

``ddim`` is DDIM with eta = 0; ``euler`` and ``heun`` integrate the probability-flow ODE on the
EDM (Karras) sigma schedule ``sigma_max -> sigma_min`` with exponent ``rho``, without churn.
diffusers' ``HeunDiscreteScheduler`` takes no sigma bounds (it spans the training schedule's range),
so the schedule a scheduler will actually run is checked against the configured bounds.
A fresh scheduler is made for every call (Heun keeps state between its two stages), so a
decode is a pure function of ``z`` and the labels.
"""
from __future__ import annotations

from collections.abc import Callable

import torch

from bench.errors import ConfigError

SAMPLERS = ("ddim", "euler", "heun")


def make_scheduler(sampler: str, train_config: dict, sigma_min: float, sigma_max: float, rho: float,
                   steps: int):
    """A deterministic scheduler built from the model's training-scheduler config; for the
    Karras samplers, one whose ``steps``-step schedule spans ``[sigma_min, sigma_max]``."""
    from diffusers import DDIMScheduler, EulerDiscreteScheduler, HeunDiscreteScheduler

    if sampler == "ddim":
        return DDIMScheduler.from_config(train_config)
    if rho != 7.0:
        raise ConfigError(f"diffusers' Karras schedule fixes rho = 7; generator.rho={rho} is not supported")
    edm = {"use_karras_sigmas": True, "sigma_min": sigma_min, "sigma_max": sigma_max}
    if sampler not in ("euler", "heun"):
        raise ConfigError(f"generator.sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    kind = EulerDiscreteScheduler if sampler == "euler" else HeunDiscreteScheduler
    scheduler = kind.from_config(train_config, **edm)
    scheduler.set_timesteps(steps)
    sigmas = scheduler.sigmas[scheduler.sigmas > 0]
    lo, hi = float(sigmas.min()), float(sigmas.max())
    if abs(hi / sigma_max - 1) > 1e-3 or abs(lo / sigma_min - 1) > 1e-3:
        raise ConfigError(f"diffusers' {kind.__name__} runs sigma from {hi:.4g} down to {lo:.4g} for this model, not "
                          f"the configured generator.sigma_max={sigma_max:g} .. sigma_min={sigma_min:g} (it ignores "
                          f"the bounds): use generator.sampler=euler, which honours them, or an EDM network pickle "
                          f"with generator=edm")
    return scheduler


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
