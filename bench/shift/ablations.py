"""The classifiers of the shift task: the ablation grid (architecture x augmentation x training-set
size, ``full`` or one factor at a time) and each architecture's training recipe."""
from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig, OmegaConf

from bench.config import OptimConfig
from bench.errors import ConfigError
from bench.models import list_models
from bench.training import optimizer_node, scheduler_node


@dataclass(frozen=True)
class Variant:
    """One classifier configuration of the ablation grid."""
    model: dict
    augment: bool
    n_train: int
    ablation: bool = False  # a star grid's augmentation ablation (trains on ``augment_families`` only)

    @property
    def params(self) -> dict:
        return {"arch": self.model["name"], "width": float(self.model.get("width", 1.0)),
                "aug": self.augment, "n_train": self.n_train}

    @property
    def label(self) -> str:
        return f"{self.model['name']} w{self.model.get('width', 1.0):g}{' aug' if self.augment else ''} n={self.n_train}"


def variants(cfg: DictConfig) -> list[Variant]:
    """The classifiers to train on each base set (``task.grid``): ``full``, every combination; ``star``,
    each classifier at the base condition (``augment[0]``, the largest size), the ``ablate_augment`` ones
    also at each other augment value and the ``ablate_sizes`` ones at each other size, one factor at a time
    (the augmentation ablation on the ``augment_families`` base sets only: :func:`trains_on`)."""
    task = cfg.task
    models = [OmegaConf.to_container(m, resolve=True) for m in task.classifiers] or \
        [OmegaConf.to_container(cfg.model, resolve=True)]
    sizes = [int(n if n is not None else task.n_train) for n in task.train_sizes]
    for n in sizes:
        if not 0 < n <= task.n_train:
            raise ConfigError(f"task.train_sizes entries must lie in (0, task.n_train={task.n_train}], got {n}")
    augment = [bool(a) for a in task.augment]
    if task.grid == "full":
        return [Variant(m, a, n) for m in models for a in augment for n in sizes]
    names = [m["name"] for m in models]
    ablated = {}
    for key in ("ablate_augment", "ablate_sizes"):
        ablated[key] = set(names if task[key] is None else task[key])
        if ablated[key] - set(names):
            raise ConfigError(f"task.{key} names {sorted(ablated[key] - set(names))}, which are not in "
                              f"task.classifiers ({names})")
    full = max(sizes)
    out = []
    for m in models:
        out.append(Variant(m, augment[0], full))
        if m["name"] in ablated["ablate_augment"]:
            out += [Variant(m, a, full, ablation=True) for a in augment[1:]]
        if m["name"] in ablated["ablate_sizes"]:
            out += [Variant(m, augment[0], n) for n in sizes if n != full]
    return out


def trains_on(variant: Variant, families: list[str], task: DictConfig) -> bool:
    """Whether ``variant`` trains on the base set of ``families``: a star grid's ablations only on the
    ``augment_families`` base sets (every base set when null). The size ablation trains on every base set:
    its drops are compared with the full set's family by family."""
    return not variant.ablation or task.augment_families is None or bool(set(families) & set(task.augment_families))


def recipe(task: DictConfig, arch: str) -> DictConfig:
    """The training recipe of architecture ``arch``: ``task.train`` with the keys its entry in
    ``task.recipes`` gives replaced whole (an AdamW ``optim`` node does not inherit SGD's momentum)."""
    train = OmegaConf.to_container(task.train, resolve=True)
    override = task.recipes.get(arch)
    override = {} if override is None else OmegaConf.to_container(override, resolve=True)
    unknown = set(override) - set(train)
    if unknown:
        raise ConfigError(f"task.recipes.{arch} has unknown key(s) {sorted(unknown)}; a recipe replaces keys of "
                          f"task.train: {', '.join(train)}")
    if "optim" in override:  # a new optimizer starts from the schema's neutral defaults, not SGD's momentum
        override["optim"] = {**OmegaConf.to_container(OmegaConf.structured(OptimConfig)), **override["optim"]}
    return OmegaConf.create({**train, **override})


def check_recipes(task: DictConfig, grid: list[Variant]) -> None:
    """Every recipe names a registry model and builds (a wrong optimizer fails before the generator trains)."""
    archs = {v.model["name"] for v in grid}
    stray = set(task.recipes) - set(list_models())
    if stray:
        raise ConfigError(f"task.recipes names {sorted(stray)}, which are not registry models "
                          f"({', '.join(list_models())})")
    for arch in archs:
        train = recipe(task, arch)
        key = f"task.recipes.{arch}" if arch in task.recipes else "task.train"
        optimizer_node(train.optim, f"{key}.optim")
        scheduler_node(train.scheduler, f"{key}.scheduler")
