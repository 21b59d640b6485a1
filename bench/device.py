"""The one device resolver: a config's ``device`` setting (``auto``, ``cpu``, ``cuda``, ``cuda:<index>``) as
the torch device work runs on, for the computations bench runs outside a Lightning Trainer (a generator's
sampling, the modality-gap sweeps), and whether a Trainer's ``trainer.accelerator`` puts it on CUDA."""
from __future__ import annotations

import torch

from bench.errors import ConfigError


def resolve_device(device: str, key: str) -> torch.device:
    """``auto``: CUDA when a GPU is visible, else the CPU. A CUDA device without a visible GPU, or a name
    torch does not know, is one :class:`ConfigError` naming the setting ``key`` and the fix."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(device).startswith("cuda") and not torch.cuda.is_available():
        raise ConfigError(f"{key}={device} but no CUDA device is visible; use {key}=auto or {key}=cpu")
    try:
        return torch.device(device)
    except RuntimeError:
        raise ConfigError(f"{key}={device} is not a device; use auto, cpu, cuda or cuda:<index>") from None


def trainer_on_cuda(accelerator: str) -> bool:
    """Whether a Trainer with ``trainer.accelerator`` runs on CUDA GPUs (``auto`` picks them when visible)."""
    return str(accelerator) in ("gpu", "cuda", "auto") and torch.cuda.is_available()
