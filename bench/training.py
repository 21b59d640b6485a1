"""Training image classifiers with Lightning: one LightningModule and one Trainer factory for
every task, so precision, devices, DDP and logging are configured in exactly one place.
"""
from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import lightning as L
import torch
from hydra.utils import get_class, instantiate
from omegaconf import OmegaConf
from torch import nn
from torch.nn import functional as F

from bench.config import OptimConfig, SchedulerConfig, TrainerConfig, schema_defaults, schema_node
from bench.errors import ConfigError, TrainingError
from bench.resume import ResumeCheckpoint, claim, last_checkpoint, release


def _target_class(cfg: dict, base: type, what: str, key: str, example: str) -> type:
    """The class a ``_partial_`` node's ``_target_`` names; not a ``base`` subclass: one
    :class:`ConfigError` naming the fix."""
    target = cfg.get("_target_")
    try:
        cls = get_class(target)
    except Exception:  # hydra wraps the ImportError/AttributeError
        cls = None
    if not (isinstance(cls, type) and issubclass(cls, base)):
        raise ConfigError(f"{key}._target_={target!r} is not a {what}; use e.g. {key}._target_={example}")
    return cls


def _taken_arguments(node: dict, cls: type, key: str, fix: str) -> dict:
    """``node`` without the keys ``cls`` does not take: a default of the schema that does not apply
    (SGD's ``momentum`` for AdamW, CosineAnnealingLR's ``T_max`` for OneCycleLR) is left out at its
    neutral value (0, null); any other value is one :class:`ConfigError` (``fix``: how to undo it)."""
    accepted = inspect.signature(cls).parameters
    for name in [k for k in node if not k.startswith("_") and k not in accepted]:
        if node[name]:
            raise ConfigError(f"{node['_target_']} takes no {name} ({key}.{name}={node[name]}); "
                              f"{fix.format(key=f'{key}.{name}')}")
        del node[name]
    return node


def optimizer_node(cfg: Any, key: str = "optim") -> dict:
    """The ``_partial_`` node :func:`build_optimizer` instantiates: ``cfg`` on :class:`OptimConfig`'s
    defaults, its target checked; a schema key the optimizer does not take (SGD's ``momentum`` for AdamW)
    is left out at its neutral value 0 and is an error otherwise. Tasks call it at start, so a wrong
    optimizer fails before any data or training. ``key`` names the node in errors."""
    cfg = schema_node(cfg, OptimConfig)
    cls = _target_class(cfg, torch.optim.Optimizer, "torch.optim optimizer", key, OptimConfig._target_)
    return {**_taken_arguments(cfg, cls, key, "set {key}=0 or pick an optimizer that has it"), "_partial_": True}


def _scheduler_defaults(cfg: Any) -> dict:
    """An open scheduler node (:data:`bench.config.SchedulerNode`) on :class:`SchedulerConfig`'s defaults:
    keys beyond the schema are kept (the target's own arguments)."""
    return OmegaConf.to_container(OmegaConf.merge(schema_defaults(SchedulerConfig), cfg))


def scheduler_node(cfg: Any, key: str = "scheduler") -> dict | None:
    """The ``_partial_`` node :func:`build_scheduler` instantiates (``None``: a constant rate): ``cfg`` on
    :class:`SchedulerConfig`'s defaults, its target checked and every key an argument of it (a default
    that does not apply is left out at null/0)."""
    if cfg is None:
        return None
    cfg = _scheduler_defaults(cfg)
    cls = _target_class(cfg, torch.optim.lr_scheduler.LRScheduler, "torch.optim.lr_scheduler scheduler", key,
                        SchedulerConfig._target_)
    node = {**_taken_arguments(cfg, cls, key, "set {key}=null or pick a scheduler that takes it"), "_partial_": True}
    # Built once now on a throwaway optimizer: a missing or wrong argument fails before any data or training.
    _instantiate_scheduler(node, torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0), 1, key)
    return node


def build_optimizer(cfg: Any, params: Any, key: str = "optim") -> torch.optim.Optimizer:
    """The one optimizer factory: ``hydra.utils.instantiate`` of an :class:`OptimConfig` node (a partial,
    see :func:`optimizer_node`) applied to ``params`` (parameters, or param groups whose own settings,
    e.g. ``weight_decay: 0`` for gains and biases, override the node's)."""
    return instantiate(optimizer_node(cfg, key), _convert_="all")(params)


#: scheduler arguments that ``null`` sets to the run's number of optimizer steps
RUN_LENGTH_ARGUMENTS = ("T_max", "total_steps")


def build_scheduler(cfg: Any, optimizer: torch.optim.Optimizer, total_steps: int,
                    key: str = "scheduler") -> dict | None:
    """The one LR-scheduler factory: ``hydra.utils.instantiate`` of a scheduler node (a partial, see
    :func:`scheduler_node`) on ``optimizer``, as Lightning's per-step ``lr_scheduler`` entry; ``None``: a
    constant rate. ``T_max``/``total_steps: null`` become ``total_steps`` (the run's optimizer steps),
    ``max_lr: null`` the learning rate of each of the optimizer's param groups."""
    node = scheduler_node(cfg, key)
    if node is None:
        return None
    return {"scheduler": _instantiate_scheduler(node, optimizer, total_steps, key), "interval": "step"}


def _instantiate_scheduler(node: dict, optimizer: torch.optim.Optimizer, total_steps: int,
                           key: str) -> torch.optim.lr_scheduler.LRScheduler:
    """A scheduler node on ``optimizer``, its run-dependent nulls filled in (see :func:`build_scheduler`)."""
    node = dict(node)
    for name in RUN_LENGTH_ARGUMENTS:
        if name in node and node[name] is None:
            node[name] = max(1, int(total_steps))
    if "max_lr" in node and node["max_lr"] is None:
        node["max_lr"] = [group["lr"] for group in optimizer.param_groups]
    try:
        return instantiate(node, _convert_="all")(optimizer)
    except (TypeError, ValueError) as e:  # a missing or wrong argument (types are not checked by an open node)
        raise ConfigError(f"{key}: {node['_target_']} rejects its arguments: {e}") from None


def configure_optimizers(module: L.LightningModule, params: Any, optim: Any, scheduler: Any, key: str = "") -> Any:
    """What ``LightningModule.configure_optimizers`` returns: the :func:`build_optimizer` optimizer of
    ``params`` and, unless ``scheduler`` is ``None``, its :func:`build_scheduler` scheduler over the run's
    optimizer steps. ``key`` is where the nodes live in the config (``clip.train``), for errors."""
    prefix = f"{key}." if key else ""
    opt = build_optimizer(optim, params, f"{prefix}optim")
    sched = build_scheduler(scheduler, opt, module.trainer.estimated_stepping_batches, f"{prefix}scheduler")
    return opt if sched is None else {"optimizer": opt, "lr_scheduler": sched}


class ClassifierModule(L.LightningModule):
    """Supervised training of any registry model.

    ``loss='ce'`` is the usual cross-entropy; ``loss='mse'`` regresses one-hot targets (the
    linear-CNN theory of Chowers & Weiss, ICML 2023, is derived for MSE). A diverged training (a NaN/inf
    loss, or one grown 1e4-fold) stops the run: :class:`FiniteGuard`, on every Trainer. ``augment``: a
    random crop and flip drawn per image (:func:`augmentation`); ``optim``/``scheduler``: partial
    config nodes (:class:`OptimConfig`, :class:`SchedulerConfig`; ``scheduler=None``: a constant
    learning rate) built by :func:`build_optimizer` / :func:`build_scheduler`.
    """

    def __init__(self, model: nn.Module, num_classes: int, optim: Any = None, scheduler: Any = None,
                 loss: str = "ce", augment: bool = False, hflip: bool = True) -> None:
        super().__init__()
        if loss not in ("ce", "mse"):
            raise ValueError(f"loss must be 'ce' or 'mse', not {loss!r}")
        self.model = model
        self.num_classes = num_classes
        optim = schema_node(optim, OptimConfig)
        scheduler = None if scheduler is None else _scheduler_defaults(scheduler)
        self.save_hyperparameters({"optim": optim, "scheduler": scheduler, "loss": loss, "augment": augment,
                                   "hflip": hflip, "num_classes": num_classes})
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
        return configure_optimizers(self, self.parameters(), self.hparams.optim, self.hparams.scheduler)


def augmentation(hflip: bool = True):
    """The CIFAR training augmentation for one (C, H, W) image: a random crop of the image padded by 4
    pixels (reflect) and, unless ``hflip=False`` (digits, text), a random horizontal flip."""
    from torchvision.transforms import v2

    def crop(img: torch.Tensor) -> torch.Tensor:
        return v2.RandomCrop(img.shape[-2:], padding=4, padding_mode="reflect")(img)

    return v2.Compose([v2.Lambda(crop), *([v2.RandomHorizontalFlip()] if hflip else [])])


#: A training loss this many times its first step's has diverged: no recipe bench runs raises its loss by
#: four orders of magnitude (lr=1e12 on digits: from 2.3 to 3.7e19 by step 2, weights finite, chance accuracy).
DIVERGED_LOSS_FACTOR = 1e4


class FiniteGuard(L.Callback):
    """Fail the run when training diverges, however few steps an epoch has: a non-finite loss at any step,
    a loss :data:`DIVERGED_LOSS_FACTOR` times the first step's (exploded but still finite weights), and
    non-finite weights after each epoch (a NaN born in the last step's update shows only there)."""

    def __init__(self) -> None:
        self.first_loss: float | None = None

    def on_train_batch_end(self, trainer: L.Trainer, module: L.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        loss = outputs.get("loss") if isinstance(outputs, dict) else outputs
        if not isinstance(loss, torch.Tensor):
            return
        if not torch.isfinite(loss).all():
            raise TrainingError(f"training loss became {loss.item() if loss.numel() == 1 else 'non-finite'} at "
                                f"step {trainer.global_step}; lower the learning rate or set trainer.gradient_clip_val")
        value = float(loss.detach().mean())
        if self.first_loss is None:
            self.first_loss = value
        elif self.first_loss > 0 and value > DIVERGED_LOSS_FACTOR * self.first_loss:
            raise TrainingError(f"training diverged: the loss grew from {self.first_loss:.4g} to {value:.4g} by step "
                                f"{trainer.global_step}; lower the learning rate or set trainer.gradient_clip_val")

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
    cfg = schema_node(trainer_cfg, TrainerConfig)
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
    """``trainer.fit``, resuming from ``checkpoint_dir/last.ckpt`` when an earlier attempt left one that
    loads with ``weights_only=True`` (else it is discarded with a warning and training starts over).

    The writing process (rank 0) first owns the folder (:func:`bench.resume.claim`): while another live
    process trains the same model there, it waits. A failed training gives the folder up, its checkpoint
    kept for the next attempt; a finished one keeps it until the caller removes the folder."""
    owner = checkpoint_dir is not None and trainer.is_global_zero
    if owner:
        claim(checkpoint_dir)
    try:
        trainer.fit(module, datamodule=datamodule, ckpt_path=last_checkpoint(checkpoint_dir, discard=owner),
                    weights_only=True, **loaders)
    except BaseException:
        if owner:
            release(checkpoint_dir)
        raise


#: The ``trainer`` settings that change trained weights beyond the recipe: numerics (the device kind and
#: strategy included: GPU kernels and a distributed reduction sum in another order than the CPU's), the global
#: batch and the training's length (a ``fast_dev_run`` smoke test is cached apart, never read as the trained
#: model). Part of the cache key of every model bench trains (:meth:`bench.context.RunContext.trained`).
WEIGHT_SETTINGS = ("accelerator", "strategy", "precision", "devices", "num_nodes", "sync_batchnorm", "deterministic",
                   "max_epochs", "max_steps", "limit_train_batches", "fast_dev_run", "gradient_clip_val")


def weight_settings(trainer_cfg: Any = None, overrides: dict | None = None) -> dict:
    """The :data:`WEIGHT_SETTINGS` of ``trainer_cfg`` (partial: :class:`TrainerConfig`'s defaults) under the
    training's ``overrides`` (those of its Trainer arguments)."""
    cfg = schema_node(trainer_cfg, TrainerConfig)
    cfg.update(overrides or {})
    return {k: cfg[k] for k in WEIGHT_SETTINGS}
