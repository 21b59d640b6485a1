"""Config schemas of the modality_gap task: the ``task``, ``clip`` and ``zeroshot`` groups.

Kept apart from :mod:`bench.modality_gap.task` so that ``bench`` validates a command line before it
imports torch (a config error is reported in about a second).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Optional

from bench.config import OptimConfig, SchedulerNode

SMALL_CLIP = "bench-mnist-clip"  # bench's small CLIP architectures (registered in clip_models)
SMALL_CLIP_MINILM = "bench-mnist-clip-minilm"
FASHION_CLIP = "bench-fashion-clip"  # small ResNet image tower (from scratch) + locked MiniLM text tower


class ClipVariant(StrEnum):
    """The embedded CLIP a run trains: both towers from scratch on MNIST (``scratch``), a MiniLM text tower
    kept locked (``locked_text``), or Fashion-MNIST's ResNet image tower under a locked MiniLM (``fashion_lit``)."""
    scratch = "scratch"
    locked_text = "locked_text"
    fashion_lit = "fashion_lit"


class ClipInit(StrEnum):
    """The towers' init: the library's (``default``) or re-centred so the gap starts near 0 (``isotropic``,
    scratch towers only)."""
    default = "default"
    isotropic = "isotropic"


class Batching(StrEnum):
    """See :class:`ClipTrainConfig`."""
    random = "random"
    class_unique = "class_unique"


@dataclass
class ClipTrainConfig:
    variant: ClipVariant = ClipVariant.scratch
    init: ClipInit = ClipInit.isotropic
    epochs: int = 20
    batch_size: int = 128
    # open_clip's recipe: AdamW (gains, biases and the temperature are not decayed: contrastive.py puts them
    # in a param group with weight_decay 0) and a one-cycle rate (max_lr null: optim.lr; total_steps null:
    # the run's optimizer steps)
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(_target_="torch.optim.AdamW", lr=2e-3,
                                                                   weight_decay=0.1))
    scheduler: SchedulerNode = field(default_factory=lambda: {
        "_target_": "torch.optim.lr_scheduler.OneCycleLR", "_partial_": True, "max_lr": None, "total_steps": None,
        "pct_start": 0.15})
    n_train: int = 4000
    # random: the contrastive softmax runs over the whole batch (same-class pairs are negatives of each other);
    # class_unique: over groups of one image per class, so every row and column has one positive, as in
    # CLIP's web-scale batches (a batch holds batch_size // n_classes groups)
    batching: Batching = Batching.random
    init_temperature: float = 0.07  # the learnable temperature's start (CLIP: 0.07; it ends at its 0.01 clamp)
    dynamics_every: int = 10  # the training seed is derive(seed, "clip", variant): a seed sweep trains one CLIP per seed


@dataclass
class ClipConfig:
    """An open_clip model: architecture + pretrained tag or checkpoint path."""
    name: str = SMALL_CLIP
    pretrained: Optional[str] = None
    cache_dir: Optional[str] = None  # open_clip download cache (None = Hugging Face default)
    batch_size: int = 256
    train: ClipTrainConfig = field(default_factory=ClipTrainConfig)  # embedded models only


@dataclass
class ZeroShotConfig:
    """An evaluation set (see :mod:`bench.modality_gap.datasets`)."""
    name: str = "mnist"
    split: str = "test"
    n: Optional[int] = None
    root: Optional[str] = None
    classes: Optional[str] = None
    captions_file: Optional[str] = None
    download: bool = False


class GapMode(StrEnum):
    """How the queries move along the gap (see :class:`bench.modality_gap.gap.GapShift`)."""
    paper = "paper"
    symmetric = "symmetric"
    image_only = "image_only"


class PerturbationKind(StrEnum):
    """A perturbation of the retrieval set (see :class:`bench.modality_gap.perturbation.Perturbation`)."""
    gaussian = "gaussian"
    quantize = "quantize"
    paraphrase = "paraphrase"


class Convention(StrEnum):
    """How a gaussian perturbation's level reads: ``norm``, E||eps||^2 = sigma^2 (the paper's scale), or
    ``coordinate``, sigma^2 per coordinate (see :class:`bench.modality_gap.robustness.Perturbation`)."""
    norm = "norm"
    coordinate = "coordinate"


@dataclass
class ModalityGapTaskConfig:
    name: str = "modality_gap"
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    modes: list[GapMode] = field(default_factory=lambda: [GapMode.paper, GapMode.symmetric])
    subspace: str = "rank"  # PCs of the retrieval set removed from g (paper mode): rank | k=<int> | var=<fraction>
    renormalize: bool = False
    orthogonality_k: list[int] = field(default_factory=lambda: [1, 5, 10])
    perturbations: dict[PerturbationKind, Any] = field(  # kind -> its levels
        default_factory=lambda: {PerturbationKind.gaussian: [0.005, 0.022, 0.04]})
    gaussian_convention: Convention = Convention.norm
    trials: int = 20
    retrieval_ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    device: str = "auto"
    n_scatter: int = 500


SCHEMAS = {"task": ModalityGapTaskConfig, "clip": ClipConfig, "zeroshot": ZeroShotConfig}
