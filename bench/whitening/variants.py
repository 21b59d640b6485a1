"""The models of a whitening study: ``task.variants`` resolved against the study's defaults, checked
before any data is loaded or a model trained."""
from __future__ import annotations

from dataclasses import dataclass, field

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench.errors import ConfigError
from bench.training import optimizer_node
from bench.whitening.config import FirstLayer, VariantLabels

# the axes along which two variants are compared (consistency_r of a pair differing in one of them)
AXES = ("arch", "width", "seed", "labels", "first_layer")
# labels=pca: each image's class is the quantile of its patches' energy along one PCA direction
# (task.pca_labels_component), the paper's counterexample, where labels and PCA coefficients are
# tied and the formula must fail. Built in this task from the true-label data module.
LABELS = tuple(VariantLabels)  # the order a pair's labels are named in (true-random: the paper's Table 2)
FIRST_LAYER = tuple(FirstLayer)
# The formula's own model class (conv -> pool -> linear): reported as kind=linear, a control for the
# theory, apart from the trained nonlinear CNNs (kind=cnn).
LINEAR_MODELS = frozenset({"linear_cnn"})


@dataclass(frozen=True)
class Variant:
    """One model of the study (its id: arch, width, seed, labels and first layer)."""
    arch: str
    width: float
    seed: int
    labels: str
    epochs: int  # not part of the id: one model is trained to one length per study
    first_layer: str = "learned"
    kwargs: dict = field(default_factory=dict, compare=False)  # the model's constructor kwargs (part of the cache key)
    # the training recipe, resolved (the variant's own, else the study's); part of the cache key
    loss: str = field(default="ce", compare=False)
    optim: dict = field(default_factory=dict, compare=False)
    batch_size: int = field(default=256, compare=False)
    init_scale: float = field(default=1.0, compare=False)
    # with a stopping rule: train on to twice the stopping point E (False: stop at E, for a control read there)
    double: bool = field(default=True, compare=False)

    @property
    def kind(self) -> str:
        return "linear" if self.arch in LINEAR_MODELS else "cnn"

    @property
    def id(self) -> str:
        return f"{self.arch}-w{self.width:g}-s{self.seed}-{self.labels}" + (
            "-frozen" if self.first_layer == "frozen" else "")


def _variant_kwargs(cfg: DictConfig, i: int, v: DictConfig, arch: str) -> dict:
    """A variant's model kwargs: its own ``kwargs``, else ``model.kwargs`` when it is ``model.name``'s
    architecture. ``model.kwargs`` belong to ``model.name``: another architecture never gets them
    silently, and never silently goes without them."""
    if v.kwargs is not None:
        return OmegaConf.to_container(v.kwargs)
    model_kwargs = OmegaConf.to_container(cfg.model.kwargs)
    if arch == cfg.model.name:
        return model_kwargs
    if model_kwargs:
        raise ConfigError(f"task.variants[{i}] is {arch}, but model.kwargs={model_kwargs} are {cfg.model.name}'s; "
                          f"give the variant its own kwargs (task.variants[{i}].kwargs, {{}} for none)")
    return {}


def resolve_variants(cfg: DictConfig) -> list[Variant]:
    """``task.variants``, each on the study's defaults; a wrong value or a duplicate model is a ConfigError."""
    out = []
    for i, v in enumerate(cfg.task.variants):
        arch = v.arch or cfg.model.name
        key = f"task.variants[{i}].optim" if v.optim else "task.optim"
        try:  # a wrong optimizer fails before any training, named where it was set
            optim = OmegaConf.to_container(OmegaConf.merge(cfg.task.optim, v.optim or {}))
            optimizer_node(optim, key)
        except OmegaConfBaseException as e:  # a key OptimConfig lacks, a value of the wrong type
            raise ConfigError(f"{key}: {str(e).splitlines()[0]}") from None
        if v.batch_size is not None and v.batch_size < 1:
            raise ConfigError(f"task.variants[{i}].batch_size must be >= 1 (or unset: data.batch_size), not {v.batch_size}")
        out.append(Variant(arch, float(v.width if v.width is not None else cfg.model.width),
                           int(v.seed if v.seed is not None else cfg.seed + v.seed_offset),
                           v.labels or cfg.data.labels,
                           int(v.epochs if v.epochs is not None else cfg.trainer.max_epochs),
                           v.first_layer or "learned", _variant_kwargs(cfg, i, v, arch),
                           v.loss or cfg.task.loss, optim,
                           int(v.batch_size if v.batch_size is not None else cfg.data.batch_size),
                           float(v.first_layer_init_scale if v.first_layer_init_scale is not None
                                 else cfg.task.first_layer_init_scale), bool(v.double)))
    ids = [v.id for v in out]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"task.variants lists the same model twice: {ids}")
    return out
