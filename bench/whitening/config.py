"""Config schemas of the whitening task (the ``task`` group; ``data`` and ``model`` are bench's own).

Kept apart from :mod:`bench.whitening.task` so that ``bench`` validates a command line before it
imports torch (a config error is reported in about a second).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Optional

from bench.config import ImageDataConfig, ModelConfig, OptimConfig, SchedulerNode


class VariantLabels(StrEnum):
    """A model's targets: ``data.labels``' two, and ``pca`` (each image's class is the quantile of its
    patches' energy along one PCA direction: the paper's counterexample)."""
    true = "true"
    random = "random"
    pca = "pca"


class FirstLayer(StrEnum):
    """``learned`` (trained as usual) or ``frozen`` (the random init never trains: the control)."""
    learned = "learned"
    frozen = "frozen"


class Loss(StrEnum):
    """Cross-entropy, or the mean squared error to one-hot targets (the linear theory's loss)."""
    ce = "ce"
    mse = "mse"


class FitGrid(StrEnum):
    """See :class:`FitConfig`."""
    paper = "paper"
    wide = "wide"


class ImageSet(StrEnum):
    """The image sets a pretrained model is measured on (files from scripts/assets/pretrained_weights.sh)."""
    foolbox_imagenet = "foolbox_imagenet"
    foolbox_cifar10 = "foolbox_cifar10"


@dataclass
class VariantConfig:
    """One model of the study; unset fields fall back to ``model.*``, ``seed`` and ``data.labels``.

    ``seed_offset`` is added to the run's ``seed`` (so a ``seed=0,1,2`` sweep moves every model),
    while ``seed`` pins a variant's seed whatever the run's. ``epochs`` overrides
    ``trainer.max_epochs`` for this model (the paper trains random labels 75-100 epochs, true
    labels 30); ``loss``, ``optim``, ``batch_size`` and ``first_layer_init_scale`` override the
    study's recipe for this model."""
    arch: Optional[str] = None
    width: Optional[float] = None
    seed: Optional[int] = None
    seed_offset: int = 0
    labels: Optional[VariantLabels] = None
    epochs: Optional[int] = None
    first_layer: Optional[FirstLayer] = None  # unset: learned
    kwargs: Optional[dict[str, Any]] = None  # model kwargs; unset: model.kwargs if arch is model.name, else none
    # The training recipe of this model when it differs from the study's (unset: task.loss, task.optim,
    # data.batch_size, task.first_layer_init_scale). The linear theory model trains as the formula
    # assumes: MSE, full-batch gradient descent, a small init.
    loss: Optional[Loss] = None
    optim: Optional[dict[str, Any]] = None  # merged onto task.optim
    batch_size: Optional[int] = None
    first_layer_init_scale: Optional[float] = None
    # with task.stopping: train on to 2E (false: stop at E, for a control whose claims read E only)
    double: bool = True


@dataclass
class FitConfig:
    """Which grid the headline ``formula_fit_r`` uses: ``paper`` (the authors' eta, t grid, lambda
    convention and exact formula) or ``wide`` (eta -> 0 over a log-spaced tau grid of
    ``task.tau_grid_size`` points). With ``paper``, the wide fit is also recorded as a diagnostic."""
    grid: FitGrid = FitGrid.paper


@dataclass
class StoppingConfig:
    """Stage C's stopping rule (:class:`bench.whitening.recording.StoppingRule`), fixed before any fit:
    the first epoch E with training accuracy >= ``train_acc``, or a training-loss plateau (no
    ``plateau_rel`` improvement on the best for ``plateau_epochs`` epochs), or ``max_epochs``, read
    every ``check_every`` epochs (each read evaluates the whole training set); every model then trains
    to 2E and is fitted at ceil(E/2), E and 2E. Off (``enabled: false``): each model
    trains ``trainer.max_epochs`` (or its variant's ``epochs``) and is fitted at the end."""
    enabled: bool = False
    train_acc: float = 0.99
    plateau_epochs: int = 10
    plateau_rel: float = 0.01
    max_epochs: int = 100
    check_every: int = 1


@dataclass
class PretrainedConfig:
    """Stage B: a registry model with its pretrained weights file, measured as it is on an image set
    (``foolbox_imagenet`` or ``foolbox_cifar10``: see :mod:`bench.whitening.pretrained`)."""
    name: str = "tv_mobilenet_v2"
    weights: str = ""
    images: ImageSet = ImageSet.foolbox_imagenet


@dataclass
class WhiteningTaskConfig:
    name: str = "whitening"
    kernel_size: int = 3
    subtract_init: bool = True  # profile of W_trained - W_init (the paper's default)
    train: bool = True  # false: evaluate given weights as they are (ImageNet 7x7 case; no W_init)
    variants: list[VariantConfig] = field(default_factory=lambda: [VariantConfig()])
    # The paper's protocol by default: SGD lr 0.01, no momentum, no weight decay, constant rate, cross-entropy.
    optim: OptimConfig = field(default_factory=OptimConfig)
    scheduler: SchedulerNode = None  # null: a constant learning rate; else a scheduler node (SchedulerConfig's keys)
    loss: Loss = Loss.ce
    augment: bool = False
    hflip: bool = True  # with augment: off for digits
    record_steps: list[int] = field(default_factory=lambda: [10, 30, 100, 300, 1000])
    # Multiplies the first conv's init. The formula assumes a small init (sigma -> 0); followed by
    # BatchNorm, a layer's output ignores its scale and a smaller init also raises its effective step.
    first_layer_init_scale: float = 1.0  # multiplies the first conv's init (the formula assumes a small init)
    pca_labels_component: int = 4  # 0-based PCA component that labels=pca ties the classes to
    fit: FitConfig = field(default_factory=FitConfig)
    stopping: StoppingConfig = field(default_factory=StoppingConfig)
    pretrained: list[PretrainedConfig] = field(default_factory=list)  # Stage B (no training)
    assets_dir: str = ".cache/assets/pretrained_weights"  # where pretrained_weights.sh put the images
    tau_grid_size: int = 200
    autocorr_max_delta: int = 10
    autocorr_images: int = 256


SCHEMAS = {"task": WhiteningTaskConfig, "data": ImageDataConfig, "model": ModelConfig}
