"""One registry for every classifier: ``create_model('resnet20', num_classes=10)``.

A model family is one file that decorates its constructors with :func:`register_model`.
Every constructor takes ``num_classes``, ``in_chans`` and ``width`` (a channel multiplier,
so each architecture has a CPU-sized variant) and returns an ``nn.Module`` mapping
``(N, in_chans, H, W)`` images to ``(N, num_classes)`` logits.
"""
from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from bench.errors import ModelError

_REGISTRY: dict[str, Callable[..., nn.Module]] = {}


def register_model(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
    """Register a model constructor under its function name (the public model name)."""
    if fn.__name__ in _REGISTRY:
        raise ValueError(f"model {fn.__name__!r} is registered twice")
    _REGISTRY[fn.__name__] = fn
    return fn


def list_models() -> list[str]:
    """Every registered model name."""
    return sorted(_REGISTRY)


def create_model(name: str, num_classes: int = 10, in_chans: int = 3, width: float = 1.0,
                 weights: str | None = None, kwargs: dict | None = None) -> nn.Module:
    """Build a registered model; ``weights`` is a local state-dict/checkpoint path or a
    family-specific tag (torchvision models accept ``'torchvision'``)."""
    if name not in _REGISTRY:
        raise ModelError(f"unknown model {name!r}; registered models: {', '.join(list_models())}")
    model = _REGISTRY[name](num_classes=num_classes, in_chans=in_chans, width=width,
                            weights=weights, **dict(kwargs or {}))
    if weights is not None and not getattr(model, "weights_loaded", False):
        load_weights(model, weights)
    return model


def load_weights(model: nn.Module, path: str | Path) -> None:
    """Load a local state dict (a ``.pt``/``.pth`` state dict, a Lightning ``.ckpt`` or ``.safetensors``)."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"weights file {path} does not exist; pass model.weights=<path to a state dict>")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise ModelError(f"cannot read weights {path}: {e}; re-save it with torch.save(model.state_dict())") from None
    if isinstance(state, dict) and "state_dict" in state:  # Lightning checkpoint: strip the 'model.' prefix
        state = {k.removeprefix("model."): v for k, v in state["state_dict"].items()}
    try:
        missing, unexpected = model.load_state_dict(state, strict=False)
    except RuntimeError as e:  # shape mismatches raise even with strict=False
        raise ModelError(f"weights {path} do not fit this model: {str(e).splitlines()[-1].strip()}") from None
    if missing or unexpected:
        raise ModelError(f"weights {path} do not fit this model: missing {missing[:5]}, unexpected {unexpected[:5]}")
    model.weights_loaded = True


def first_conv(model: nn.Module) -> nn.Conv2d:
    """The first convolution applied to the image: the filter bank a first-layer analysis studies."""
    conv = getattr(model, "first_conv", None)
    if isinstance(conv, nn.Conv2d):
        return conv
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            return module
    raise ModelError(f"{type(model).__name__} has no Conv2d layer, so it has no first-layer filter bank")


def n_params(model: nn.Module) -> int:
    """Number of parameters."""
    return sum(p.numel() for p in model.parameters())


def scaled(channels: int, width: float) -> int:
    """Channels after the width multiplier (at least 1)."""
    return max(1, int(round(channels * width)))
