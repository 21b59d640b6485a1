"""Scoring a trained classifier: top-1 accuracy by ``trainer.test`` on the configured devices and precision
(the same Trainer factory as training, :func:`bench.training.build_trainer`)."""
from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn

from bench.errors import TrainingError
from bench.training import build_trainer


def predictions(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """``model``'s top-1 class of each image of ``x``; non-finite logits (diverged weights, which would score
    as "always class 0") are a :class:`TrainingError`."""
    logits = model(x)
    if not torch.isfinite(logits).all():
        raise TrainingError("a trained classifier outputs non-finite logits (training diverged); lower its "
                            "learning rate or set trainer.gradient_clip_val (or the task recipe's own gradient_clip_val)")
    return logits.argmax(1)


class AccuracyModule(L.LightningModule):
    """Top-1 accuracy of a trained classifier under ``trainer.test`` (torchmetrics: summed over every
    batch and, under DDP, over every process)."""

    def __init__(self, model: nn.Module, num_classes: int) -> None:
        super().__init__()
        from torchmetrics.classification import MulticlassAccuracy

        self.model = model
        self.accuracy = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        x, y = batch
        self.accuracy.update(predictions(self.model, x), y)
        self.log("test/acc", self.accuracy, on_epoch=True)


def accuracy(model: nn.Module, loader: Any, num_classes: int, trainer_cfg: Any = None) -> float:
    """Top-1 accuracy of ``model`` over a loader of ``(x, y)`` batches, by ``trainer.test`` on the
    configured devices and precision (the same Trainer factory as training)."""
    if len(loader) == 0:
        return math.nan
    trainer = build_trainer(trainer_cfg, enable_progress_bar=False, use_distributed_sampler=False)
    loader = _each_item_once(loader, trainer.global_rank, trainer.world_size)
    (result,) = trainer.test(AccuracyModule(model.eval(), num_classes), loader, verbose=False)
    model.eval()
    return float(result["test/acc"])


def _each_item_once(loader: Any, rank: int, world_size: int) -> Any:
    """``loader`` with process ``rank`` scoring every ``world_size``-th item: each item once in all. (Lightning's
    DistributedSampler pads the split with repeats to a multiple of the world size: 397 digits were scored as 398.)"""
    if world_size == 1:
        return loader
    from torch.utils.data import DataLoader

    items = range(rank, len(loader.dataset), world_size)
    return DataLoader(loader.dataset, batch_size=loader.batch_size, sampler=items, num_workers=loader.num_workers,
                      collate_fn=loader.collate_fn)
