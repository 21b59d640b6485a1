"""Classifiers on generated data: training (the shared ClassifierModule), per-image scoring, and the
per-intensity accuracy table reduced to ``accuracy_drop`` and ``auc``."""
from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from typing import Any

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf
from torch import nn
from torch.utils.data import DataLoader

from bench.context import RunContext, Training
from bench.data.datamodule import TensorImages, batch_as_is, channel_stats
from bench.shift.config import ClassifierTrainConfig
from bench.models import build_model
from bench.seeding import torch_generator
from bench.scoring import predictions
from bench.training import ClassifierModule, build_trainer


@dataclass(frozen=True)
class Normaliser:
    """Per-channel statistics of a training set, applied to every set a classifier sees."""
    mean: torch.Tensor
    std: torch.Tensor

    @classmethod
    def fit(cls, images: torch.Tensor) -> Normaliser:
        return cls(*channel_stats(images))

    def dataset(self, images: torch.Tensor, labels: torch.Tensor) -> TensorImages:
        return TensorImages(images, labels, self.mean, self.std)


def _loader(ds: TensorImages, batch_size: int, shuffle: bool, seed: int = 0) -> DataLoader:
    # TensorImages.__getitems__ returns whole batches, so collation is the identity; the order is its own
    # stream of ``seed`` (the global RNG, reseeded with ``seed``, draws the init and the augmentation)
    return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, collate_fn=batch_as_is,
                      generator=torch_generator(seed, "data_order") if shuffle else None)


def train_steps(n_full: int, epochs: int, batch_size: int) -> int:
    """The optimizer steps of ``epochs`` over ``n_full`` images: every training-set size gets this many
    (a smaller set runs more epochs), so a size ablation compares data, not training length."""
    return epochs * math.ceil(n_full / batch_size)


def train_classifier(ctx: RunContext, images: torch.Tensor, labels: torch.Tensor, model_cfg: dict, train_cfg: Any,
                     augment: bool, num_classes: int, *, seed: int, name: str = "classifier",
                     steps: int | None = None) -> tuple[nn.Module, Normaliser]:
    """Train a registry model on uint8 ``images`` with the shared Lightning module, through the run's
    :meth:`~bench.context.RunContext.trained` (resumable: an interrupted training resumes from its
    checkpoint, keyed by the images, labels and recipe); return it in eval mode with the normalisation it
    was trained under. ``steps``: train exactly this many optimizer steps (enough epochs, then
    ``max_steps``), else ``trainer.max_epochs``. ``name``: the training's name in W&B."""
    train_cfg = OmegaConf.merge(OmegaConf.structured(ClassifierTrainConfig), train_cfg)  # a partial one: defaults
    overrides = {}
    if steps is not None:
        overrides = {"max_steps": steps, "max_epochs": math.ceil(steps / math.ceil(len(labels) / train_cfg.batch_size))}
    if train_cfg.gradient_clip_val is not None:
        overrides["gradient_clip_val"] = train_cfg.gradient_clip_val
    key = {"data": _digest(images, labels), "model": model_cfg, "train": OmegaConf.to_container(train_cfg, resolve=True),
           "augment": augment, "num_classes": num_classes, "seed": seed}

    def train(training: Training) -> tuple[nn.Module, Normaliser]:
        norm = Normaliser.fit(images)
        model = build_model(model_cfg, num_classes=num_classes, in_chans=images.shape[1])
        module = ClassifierModule(model, num_classes, optim=train_cfg.optim, scheduler=train_cfg.scheduler,
                                  augment=augment, hflip=train_cfg.hflip)
        training.fit(module, train_dataloaders=_loader(norm.dataset(images, labels), train_cfg.batch_size, True, seed))
        return model.eval(), norm

    return ctx.trained(name, "shift/classifiers", key, train, seed=seed, trainer=overrides)


def _digest(*tensors: torch.Tensor) -> str:
    """sha256 of the tensors' bytes: a training's data, in its checkpoint's key."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.contiguous().numpy().tobytes())
    return h.hexdigest()


class _Correct(L.LightningModule):
    """``trainer.predict``: whether each image's top-1 class is its label."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def predict_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        return (predictions(self.model, x) == y).cpu()


def correct(model: nn.Module, norm: Normaliser, sets: list[tuple[torch.Tensor, torch.Tensor]],
            trainer_cfg: Any = None, batch_size: int = 512) -> list[torch.Tensor]:
    """Per-image top-1 correctness (0/1 float, in order) of ``model`` on each of ``sets``, in one
    ``trainer.predict`` pass on one device of the configured kind and precision (the items a claim
    resamples)."""
    images = torch.cat([x for x, _ in sets])
    labels = torch.cat([y for _, y in sets])
    trainer = build_trainer(trainer_cfg, enable_progress_bar=False, devices=1, num_nodes=1, strategy="auto")
    out = trainer.predict(_Correct(model.eval()), _loader(norm.dataset(images, labels), batch_size, False))
    model.eval()
    return list(torch.cat(out).double().split([len(y) for _, y in sets]))


def binomial_stderr(acc: float, n: int) -> float:
    """The standard error of an accuracy over ``n`` independent images."""
    return math.sqrt(max(acc * (1 - acc), 0.0) / n)


def normalised_intensity(values: list[float]) -> list[float]:
    """Intensities mapped to [0, 1]: 0 at the base value, 1 at the strongest."""
    lo, hi = values[0], values[-1]
    return [(v - lo) / (hi - lo) if hi > lo else 0.0 for v in values]


def auc(values: list[float], accuracies: list[float]) -> float:
    """Area under accuracy vs normalised intensity (trapezoid): the base accuracy when nothing
    drops, lower the earlier and further accuracy falls along the sweep."""
    if len(values) == 1:
        return float(accuracies[0])
    return float(np.trapezoid(accuracies, normalised_intensity(values)))
