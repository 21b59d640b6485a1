"""Config schemas of the shift task: the ``generator`` and ``task`` groups."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any, Optional

from bench.config import ModelConfig, OptimConfig, SchedulerConfig, SchedulerNode


class GeneratorKind(StrEnum):
    """See :class:`GeneratorConfig`."""
    vae = "vae"
    unet = "unet"
    dit = "dit"
    edm = "edm"


class Sampler(StrEnum):
    """A deterministic sampler: ``ddim`` (eta=0), ``euler`` and ``heun`` (EDM-style Karras sigmas) for
    unet/dit; ``ctrl_shift``, ``heun`` and ``euler`` for edm (see :class:`GeneratorConfig`)."""
    ddim = "ddim"
    euler = "euler"
    heun = "heun"
    ctrl_shift = "ctrl_shift"


class Unit(StrEnum):
    """A family's intensities as its own parameter (R, t or s) or as the shift angle divided by pi."""
    param = "param"
    angle_pi = "angle_pi"


class Rng(StrEnum):
    """How eps, labels and anchors are drawn (see :mod:`bench.shift.rng`): ``bench``, from the run's
    seed by purpose; ``reference``, the reference scripts' global-seed draws (the paper's exact sets)."""
    bench = "bench"
    reference = "reference"


class Grid(StrEnum):
    """Which classifiers train on each base set (see :class:`ShiftTaskConfig`)."""
    full = "full"
    star = "star"


@dataclass
class GeneratorTrainConfig:
    """Training of an embedded generator on MNIST (ignored when ``source`` is set): Adam at a constant rate
    (``generator=unet`` overrides it with its AdamW); ``scheduler``: an LR scheduler node (null: constant)."""
    epochs: int = 20
    batch_size: int = 128
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(_target_="torch.optim.Adam", lr=2e-3))
    scheduler: SchedulerNode = None
    beta: float = 1.0  # VAE: weight of the KL term


@dataclass
class GeneratorConfig:
    """A deterministic class-conditional decoder ``G(z, y)`` (see :mod:`bench.shift.generators`).

    ``kind``: ``vae`` (embedded conditional VAE decoder), ``unet`` (a class-conditional
    diffusers ``UNet2DModel`` with a deterministic sampler), ``dit`` (diffusers ``DiTPipeline``) or
    ``edm`` (an NVlabs EDM network pickle with bench's EDM sampler: the paper's generator).
    ``source``: a hub id or local directory, ``embedded`` (vae, unet: train on MNIST and cache), or
    the network pickle (edm).
    """
    kind: GeneratorKind = GeneratorKind.vae
    source: Optional[str] = "embedded"
    latent_dim: int = 16  # vae
    hidden: int = 256  # vae: MLP width; unet: base channel count (use ~32)
    image_size: int = 28  # embedded unet: 16 or 28
    # unet/dit: ddim (eta=0) | euler | heun (EDM-style Karras sigmas); edm: ctrl_shift (the Control+Shift
    # reference's sampler: float32, last sigma 1e-5, floored to uint8; the paper's sets) | heun | euler (NVlabs')
    sampler: Sampler = Sampler.ddim
    steps: int = 50
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    rho: float = 7.0
    fp64: Optional[bool] = None  # edm heun/euler: float64 state unless false (NVlabs'); ctrl_shift: float32 only
    edm_src: Optional[str] = None  # edm: the EDM source tree (torch_utils/, dnnlib/) needed to unpickle
    guidance_scale: float = 1.0  # dit: classifier-free guidance (1 = none)
    classes: Optional[list[int]] = None  # dit, edm: the model's class ids used as labels 0..K-1
    batch_size: int = 256  # decoding batch
    device: str = "auto"
    train: GeneratorTrainConfig = field(default_factory=GeneratorTrainConfig)


@dataclass
class FamilyConfig:
    """One shift family's sweep: intensities starting at its training value."""
    values: list[float] = field(default_factory=list)
    unit: Unit = Unit.param


@dataclass
class ClassifierTrainConfig:
    """A classifier's training recipe (length: ``trainer.max_epochs`` of the full training set): SGD with
    momentum and weight decay, the learning rate decayed by a cosine to 0 over the run (``scheduler:
    null``: constant); ``gradient_clip_val``: clip the gradient norm (null: the trainer's setting)."""
    batch_size: int = 128
    optim: OptimConfig = field(default_factory=lambda: OptimConfig(lr=0.05, momentum=0.9, weight_decay=5e-4))
    scheduler: SchedulerNode = field(default_factory=lambda: asdict(SchedulerConfig()))
    hflip: bool = True  # part of the augmentation; off for digits (a mirrored digit is another glyph)
    gradient_clip_val: Optional[float] = None


@dataclass
class ShiftTaskConfig:
    """The controllable-shift benchmark."""
    name: str = "shift"
    families: dict[str, Optional[FamilyConfig]] = field(default_factory=dict)  # null switches a family off
    rng: Rng = Rng.bench
    # the seed of the generator (embedded ones) and the generated sets (rng=bench); null: the run's seed.
    # Fixed, seeds vary only the classifiers' training (the paper's datasets are fixed)
    data_seed: Optional[int] = None
    n_train: int = 4000  # generated base training set (per base distribution)
    n_val: int = 500
    n_test: int = 500  # per intensity (paired across a family's intensities)
    shard_size: int = 1000
    # classifiers and ablations, trained on each base set: ``grid: full`` every combination of classifier,
    # augment and train size; ``star`` each classifier at the base condition (augment[0], the largest size),
    # the ``ablate_augment`` ones also at every other augment value and the ``ablate_sizes`` ones at every
    # other size, one factor at a time (registry names; null: every classifier)
    classifiers: list[ModelConfig] = field(default_factory=list)  # empty: the `model` group
    augment: list[bool] = field(default_factory=lambda: [False])
    train_sizes: list[Optional[int]] = field(default_factory=lambda: [None])  # null: all of n_train
    grid: Grid = Grid.full
    ablate_augment: Optional[list[str]] = None
    ablate_sizes: Optional[list[str]] = None
    augment_families: Optional[list[str]] = None  # star: the augmentation ablation trains on these families' bases only
    train: ClassifierTrainConfig = field(default_factory=ClassifierTrainConfig)
    # per-architecture recipes (registry name -> keys of ``train`` that replace it whole, e.g. an AdamW
    # ``optim`` node): each architecture trains with a recipe that makes it train
    recipes: dict[str, Any] = field(default_factory=dict)
    # generator quality: real held-out data scored by a generated-data classifier (CAS), and vice versa
    real_data: Optional[str] = "mnist"  # a bench.data name with the generator's classes, or null
    real_data_root: Optional[str] = None
    mc_samples: int = 4096  # Monte-Carlo check of the Gaussian closed-form latent KL
    mmd_samples: int = 1024  # latents per side of the sample-based divergences (MMD^2, support shares)
    knn_k: int = 5  # the k-NN support estimate: a base latent's ball reaches its k-th nearest base neighbour
    grid_size: int = 8  # sample grid per intensity: grid_size x grid_size images
    morph_rows: int = 8  # samples shown morphing across each sweep


SCHEMAS = {"task": ShiftTaskConfig, "generator": GeneratorConfig, "model": ModelConfig}
