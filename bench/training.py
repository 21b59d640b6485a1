"""Training image classifiers with Lightning: one LightningModule and one Trainer factory for
every task, so precision, devices, DDP and logging are configured in exactly one place.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from bench.config import TrainerConfig
from bench.errors import TrainingError
from bench.resume import ResumeCheckpoint, last_checkpoint


class ClassifierModule(L.LightningModule):
    """Supervised training of any registry model.

    ``loss='ce'`` is the usual cross-entropy; ``loss='mse'`` regresses one-hot targets (the
    linear-CNN theory of Chowers & Weiss, ICML 2023, is derived for MSE). A NaN/inf loss stops the
    run with a :class:`TrainingError` instead of silently training on garbage. ``augment``: a
    random crop and flip drawn per image (:func:`augmentation`); ``schedule``: a constant
    learning rate or cosine decay over the run.
    """

    def __init__(self, model: nn.Module, num_classes: int, lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0, optimizer: str = "sgd", loss: str = "ce",
                 augment: bool = False, hflip: bool = True, schedule: str = "constant") -> None:
        super().__init__()
        if optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', not {optimizer!r}")
        if loss not in ("ce", "mse"):
            raise ValueError(f"loss must be 'ce' or 'mse', not {loss!r}")
        if schedule not in ("constant", "cosine"):
            raise ValueError(f"schedule must be 'constant' or 'cosine', not {schedule!r}")
        self.model = model
        self.num_classes = num_classes
        self.save_hyperparameters(ignore=["model"])
        self._augmentation = augmentation(hflip) if augment else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def _loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.hparams.loss == "ce":
            return F.cross_entropy(logits, y)
        return F.mse_loss(logits, F.one_hot(y, self.num_classes).to(logits.dtype))

    def augment_batch(self, x: torch.Tensor) -> torch.Tensor:
        """The batch with the training augmentation drawn per image (its own crop offset and flip)."""
        if self._augmentation is None:
            return x
        return torch.stack([self._augmentation(img) for img in x])

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = batch
        x = self.augment_batch(x)
        loss = self._loss(self(x), y)
        if not torch.isfinite(loss):
            raise TrainingError(f"training loss became {loss.item()} at step {self.global_step}; "
                                f"lower optim.lr (now {self.hparams.lr}) or add trainer.gradient_clip_val")
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def _eval_step(self, batch: Any, prefix: str) -> None:
        x, y = batch
        logits = self(x)
        self.log(f"{prefix}/loss", self._loss(logits, y), sync_dist=True)
        self.log(f"{prefix}/acc", (logits.argmax(1) == y).float().mean(), prog_bar=True, sync_dist=True)

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "val")

    def test_step(self, batch: Any, batch_idx: int) -> None:
        self._eval_step(batch, "test")

    def configure_optimizers(self):
        hp = self.hparams
        if hp.optimizer == "sgd":
            opt = torch.optim.SGD(self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay)
        else:
            opt = torch.optim.AdamW(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.get("schedule", "constant") == "constant":
            return opt
        # cosine decay to 0 over the whole run, stepped per batch
        cosine = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=max(1, self.trainer.estimated_stepping_batches))
        return {"optimizer": opt, "lr_scheduler": {"scheduler": cosine, "interval": "step"}}


def augmentation(hflip: bool = True):
    """The CIFAR training augmentation for one (C, H, W) image: a random crop of the image padded by 4
    pixels (reflect) and, unless ``hflip=False`` (digits, text), a random horizontal flip."""
    from torchvision.transforms import v2

    def crop(img: torch.Tensor) -> torch.Tensor:
        return v2.RandomCrop(img.shape[-2:], padding=4, padding_mode="reflect")(img)

    return v2.Compose([v2.Lambda(crop), *([v2.RandomHorizontalFlip()] if hflip else [])])


class FiniteGuard(L.Callback):
    """Fail the run when training goes non-finite, however few steps an epoch has: the loss of every
    step, and the weights after each epoch (a NaN born in the last step's update shows only there)."""

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if isinstance(loss, torch.Tensor) and not torch.isfinite(loss).all():
            raise TrainingError(f"training loss became {loss.item() if loss.numel() == 1 else 'non-finite'} at "
                                f"step {trainer.global_step}; lower the learning rate or set trainer.gradient_clip_val")

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        bad = next((n for n, p in module.named_parameters() if not torch.isfinite(p).all()), None)
        if bad is not None:
            raise TrainingError(f"weight {bad} became non-finite by step {trainer.global_step} (epoch "
                                f"{trainer.current_epoch}); lower the learning rate or set trainer.gradient_clip_val")


def build_trainer(trainer_cfg: Any = None, run: Any = None, callbacks: Sequence[L.Callback] = (),
                  checkpoint_dir: str | Path | None = None, log_prefix: str = "", **overrides: Any) -> L.Trainer:
    """The one ``lightning.Trainer`` factory: ``hydra.utils.instantiate`` of the ``trainer`` group
    (``_target_: lightning.Trainer``), so every ``trainer.*`` setting (accelerator, devices,
    strategy, precision) takes effect in every training and inference bench runs.

    ``trainer_cfg`` may be partial (a dict of a few keys; the rest are :class:`TrainerConfig`'s
    defaults). With ``checkpoint_dir`` the trainer keeps ``last.ckpt`` there after every epoch (and
    every ``trainer.checkpoint_every_n_steps`` steps), so :func:`fit` resumes an interrupted training.
    ``log_prefix`` names this training in W&B (and in the run's resume notes) when one bench run
    trains several models (no ``run``: no logger).
    """
    cfg = OmegaConf.to_container(OmegaConf.merge(OmegaConf.structured(TrainerConfig), trainer_cfg or {}))
    every_n_steps = cfg.pop("checkpoint_every_n_steps")  # bench's, not a Trainer argument
    callbacks = [*callbacks, FiniteGuard()]
    if checkpoint_dir is not None and not overrides.get("fast_dev_run", cfg["fast_dev_run"]):
        callbacks.append(ResumeCheckpoint(checkpoint_dir, every_n_steps, run, log_prefix))
    tracker = getattr(run, "tracker", None)
    logger = tracker.lightning_logger(log_prefix) if tracker is not None else False
    return instantiate(cfg, logger=logger, callbacks=callbacks, enable_checkpointing=False,
                       default_root_dir=str(checkpoint_dir) if checkpoint_dir else None,
                       enable_model_summary=False, **overrides)


def fit(trainer: L.Trainer, module: L.LightningModule, datamodule: L.LightningDataModule | None = None,
        checkpoint_dir: str | Path | None = None, **loaders: Any) -> None:
    """``trainer.fit``, resuming from ``checkpoint_dir/last.ckpt`` when an earlier attempt left one."""
    trainer.fit(module, datamodule=datamodule, ckpt_path=last_checkpoint(checkpoint_dir), **loaders)


def weight_settings(trainer_cfg: Any = None) -> dict:
    """The ``trainer`` settings that change trained weights beyond the recipe (numerics and the global
    batch): part of the cache key of every model bench trains and caches."""
    cfg = OmegaConf.merge(OmegaConf.structured(TrainerConfig), trainer_cfg or {})
    return {k: OmegaConf.to_container(cfg)[k] for k in ("precision", "devices", "num_nodes", "sync_batchnorm")}


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
        logits = self.model(x)
        if not torch.isfinite(logits).all():  # diverged weights would score as "always class 0"
            raise TrainingError("the trained model outputs non-finite logits (training diverged); lower the "
                                "learning rate or set trainer.gradient_clip_val")
        self.accuracy.update(logits.argmax(1), y)
        self.log("test/acc", self.accuracy, on_epoch=True)


def accuracy(model: nn.Module, loader: Any, num_classes: int, trainer_cfg: Any = None) -> float:
    """Top-1 accuracy of ``model`` over a loader of ``(x, y)`` batches, by ``trainer.test`` on the
    configured devices and precision (the same Trainer factory as training)."""
    if len(loader) == 0:
        return math.nan
    trainer = build_trainer(trainer_cfg, enable_progress_bar=False)
    (result,) = trainer.test(AccuracyModule(model.eval(), num_classes), loader, verbose=False)
    model.eval()
    return float(result["test/acc"])
