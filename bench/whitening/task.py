"""task=whitening: first-layer energy profiles, the linear-CNN formula, consistency, whitening evidence.

One run is a *study* on one dataset: it trains (or loads) every model variant listed in
``task.variants``, computes the patch PCA once and reuses it for all of them, then records
  formula_fit_r   per model (params arch, width, seed, labels, dataset, weights, tau), beside the
                  trivial baselines it must beat (lambda_r, power_r, formula_lambda_distance,
                  fit_margin: :mod:`bench.whitening.fits`); with ``task.stopping`` each model at
                  phase half / stop / double of its stopping point, with its train_acc
  consistency_r   per pair of models that differ in one axis (seed/width/arch/labels), and
                  each trained model against its own init (axis=init)
  autocorr        C(delta) of first-layer outputs (filters = input/random/trained)
  label_pca_corr  max |corr| between image-mean PCA coefficients and one-vs-all labels
  test_acc        each model's accuracy on the test split.
Stage B (``task.pretrained``): pretrained first layers as they are, each over the patch PCA of its own
image set (:mod:`bench.whitening.pretrained`), with the same fit rows (stage=pretrained).
"""
from __future__ import annotations

import itertools
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import lightning as L
import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from bench.cache import Cache
from bench.data import real
from bench.errors import ConfigError, DataError
from bench.models import build_model, first_conv, n_params
from bench.provenance import tensors_sha256
from bench.seeding import derive
from bench.store import Run
from bench.training import ClassifierModule, accuracy, build_trainer, fit, optimizer_node, scheduler_node
from bench.whitening import plots, pretrained
from bench.whitening.config import SCHEMAS  # noqa: F401  (the task API)
from bench.whitening.analyses import (first_layer_outputs, label_pca_correlation, pca_energy, quantile_labels,
                                      spatial_autocorrelation, zca_filters)
from bench.whitening.patch_pca import PatchPCA, load_or_compute
from bench.whitening.fits import fit_rows, pooled_over_seeds
from bench.whitening.profile import GRIDS, energy_profile, pearson
from bench.whitening.recording import FirstLayerRecorder, StoppingRule, evaluate

log = logging.getLogger(__name__)
AXES = ("arch", "width", "seed", "labels", "first_layer")
# labels=pca: each image's class is the quantile of its patches' energy along one PCA direction
# (task.pca_labels_component), the paper's counterexample, where labels and PCA coefficients are
# tied and the formula must fail. Built in this task from the true-label data module.
LABELS = ("true", "random", "pca")
FIRST_LAYER = ("learned", "frozen")
LOSSES = ("ce", "mse")
# The formula's own model class (conv -> pool -> linear): reported as kind=linear, a control for the
# theory, apart from the trained nonlinear CNNs (kind=cnn).
LINEAR_MODELS = frozenset({"linear_cnn"})
# metrics also recorded pooled over the seeds of a condition (items = the models): what claims read
POOLED = ("formula_fit_r", "fit_margin", "power_r", "lambda_r", "formula_lambda_distance", "formula_t", "fit_edge",
          "train_acc", "test_acc")


@dataclass(frozen=True)
class Variant:
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

    @property
    def kind(self) -> str:
        return "linear" if self.arch in LINEAR_MODELS else "cnn"

    @property
    def id(self) -> str:
        return f"{self.arch}-w{self.width:g}-s{self.seed}-{self.labels}" + (
            "-frozen" if self.first_layer == "frozen" else "")


@dataclass
class Trained:
    """What the analyses need from a trained model: its first-layer filters over time."""
    snapshots: dict[int, torch.Tensor]  # step -> first conv weight (step 0 = init when trained here)
    test_acc: float
    n_params: int
    # with task.stopping: the stopping point (stop_epoch, rule_<acc|plateau|cap> = 1), and per phase
    # (half/stop/double) its global step and training accuracy (step_<phase>, train_acc_<phase>)
    meta: dict[str, float] = field(default_factory=dict)

    @property
    def phases(self) -> dict[str, int]:
        return {k.removeprefix("step_"): int(v) for k, v in self.meta.items() if k.startswith("step_")}

    @property
    def init(self) -> torch.Tensor | None:
        return self.snapshots.get(0)

    @property
    def final(self) -> torch.Tensor:
        return self.snapshots[max(self.snapshots)]


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
                                 else cfg.task.first_layer_init_scale)))
    for v in out:
        if v.labels not in LABELS:
            raise ConfigError(f"a variant's labels must be one of {', '.join(LABELS)}, not {v.labels!r}")
        if v.loss not in LOSSES:
            raise ConfigError(f"a variant's loss must be one of {', '.join(LOSSES)}, not {v.loss!r}")
        if v.first_layer not in FIRST_LAYER:
            raise ConfigError(f"a variant's first_layer must be one of {', '.join(FIRST_LAYER)}, not {v.first_layer!r}")
    ids = [v.id for v in out]
    if len(set(ids)) != len(ids):
        raise ConfigError(f"task.variants lists the same model twice: {ids}")
    return out


def _train(cfg: DictConfig, run: Run, dm, variant: Variant, ckpt_dir: Path) -> Trained:
    # init and data order: derived by purpose, so two archs at one seed draw independent streams
    L.seed_everything(derive(variant.seed, "classifier", variant.arch, variant.width, variant.labels),
                      workers=True, verbose=False)
    weights = cfg.model.weights if variant.arch == cfg.model.name else None
    model = build_model(cfg.model, name=variant.arch, num_classes=dm.num_classes, in_chans=dm.in_chans,
                        width=variant.width, weights=weights, kwargs=variant.kwargs)
    conv = first_conv(model)
    if conv.kernel_size != (cfg.task.kernel_size,) * 2 or conv.in_channels != dm.in_chans:
        raise ConfigError(f"{variant.arch}'s first conv is {conv.kernel_size} over {conv.in_channels} channels, but "
                          f"task.kernel_size={cfg.task.kernel_size} and the data has {dm.in_chans} channels")
    if not cfg.task.train:
        test_acc = accuracy(model, dm.test_dataloader(), dm.num_classes, cfg.trainer)
        return Trained({-1: conv.weight.detach().clone()}, test_acc, n_params(model))
    with torch.no_grad():
        conv.weight.mul_(variant.init_scale)
    conv.weight.requires_grad_(variant.first_layer == "learned")  # frozen: SGD skips a parameter without grad
    stop = cfg.task.stopping
    if stop.enabled:  # the rule decides the length: up to twice its cap
        recorder = StoppingRule(dm.ordered_train_dataloader(), stop.train_acc, stop.plateau_epochs,
                                stop.plateau_rel, stop.max_epochs)
        epochs = 2 * stop.max_epochs
    else:
        recorder, epochs = FirstLayerRecorder(list(cfg.task.record_steps)), variant.epochs
    # No per-epoch validation: nothing selects on it, and test accuracy is measured once below.
    trainer = build_trainer(cfg.trainer, run, callbacks=[recorder], checkpoint_dir=ckpt_dir,
                            log_prefix=variant.id, limit_val_batches=0, max_epochs=epochs)
    module = ClassifierModule(model, dm.num_classes, optim=variant.optim, scheduler=cfg.task.scheduler,
                              loss=variant.loss, augment=cfg.task.augment, hflip=cfg.task.hflip)
    fit(trainer, module, checkpoint_dir=ckpt_dir, train_dataloaders=dm.train_dataloader(variant.batch_size))
    if stop.enabled:
        accs = {h[0]: h[1] for h in recorder.history}
        meta = {"stop_epoch": float(recorder.stop_epoch), f"rule_{recorder.rule}": 1.0}
        for phase, step in recorder.phases().items():
            meta |= {f"step_{phase}": float(step), f"train_acc_{phase}": accs[step]}
    else:  # the training accuracy at the end: the validity gate of the claims ("the model trained")
        meta = {"step_end": float(max(recorder.snapshots)),
                "train_acc_end": evaluate(module, dm.ordered_train_dataloader())[0]}
    return Trained(recorder.snapshots, accuracy(model, dm.test_dataloader(), dm.num_classes, cfg.trainer),
                   n_params(model), meta)


def train_or_load(cfg: DictConfig, run: Run, dm, variant: Variant) -> Trained:
    """Train one variant, or reuse an earlier identical training from the cache (resumable)."""
    from safetensors.torch import load_file, save_file

    key = {"data": dm.cache_key, "labels": variant.labels, "variant": asdict(variant),  # its loss, optim, batch
           "model": OmegaConf.to_container(cfg.model),
           "recipe": {k: OmegaConf.to_container(cfg.task)[k] for k in ("scheduler", "augment", "hflip")},
           "pca_labels_component": cfg.task.pca_labels_component if variant.labels == "pca" else None,
           "train": cfg.task.train, "record_steps": list(cfg.task.record_steps),
           "stopping": OmegaConf.to_container(cfg.task.stopping) if cfg.task.stopping.enabled else None,
           # what changes the trained weights (devices and nodes change the global batch)
           "trainer": {k: cfg.trainer[k] for k in ("max_epochs", "max_steps", "precision", "devices",
                                                  "num_nodes", "sync_batchnorm", "fast_dev_run",
                                                  "limit_train_batches")}}
    cache = Cache.from_config(cfg)
    path = cache.path("whitening/trained", key, name=variant.id)
    ckpt_dir = path.with_suffix(".ckpt")  # Lightning's last.ckpt while training (resume), removed once cached

    def save(trained: Trained, tmp: str) -> None:
        tensors = {f"step_{s}": w.contiguous() for s, w in trained.snapshots.items()}
        tensors |= {"test_acc": torch.tensor(trained.test_acc, dtype=torch.float64),
                    "n_params": torch.tensor(trained.n_params)}
        tensors |= {f"meta_{k}": torch.tensor(v, dtype=torch.float64) for k, v in trained.meta.items()}
        save_file(tensors, tmp)

    def load(p: Path) -> Trained:
        t = load_file(str(p))
        snaps = {int(k.removeprefix("step_")): v for k, v in t.items() if k.startswith("step_")}
        meta = {k.removeprefix("meta_"): float(v) for k, v in t.items() if k.startswith("meta_")}
        return Trained(snaps, float(t["test_acc"]), int(t["n_params"]), meta)

    write = run.is_writer and not cfg.trainer.fast_dev_run
    trained = cache.load_or_build(path, lambda: _train(cfg, run, dm, variant, ckpt_dir), save, load, write=write)
    if write:
        shutil.rmtree(ckpt_dir, ignore_errors=True)
    return trained


def _profile(trained: Trained, pca: PatchPCA, subtract_init: bool, variant: Variant,
             step: int | None = None) -> torch.Tensor:
    """Profile of W_trained - W_init (or W_trained) at ``step`` (default: the end); a frozen layer never
    moved: its profile is its init's."""
    learned = subtract_init and trained.init is not None and variant.first_layer == "learned"
    w = trained.final if step is None else trained.snapshots[step]
    return energy_profile(w - trained.init if learned else w, pca.eigvecs)


def _datamodules(cfg: DictConfig, variants: list[Variant]) -> dict:
    """One data module per label kind (the same pixels; labels=pca relabels the true-label module later)."""
    datamodules = {}
    # A pretrained torchvision model sees its inputs normalised as its weights were trained (the
    # patch PCA then uses that same normalisation); otherwise the data's own statistics.
    stats = real.pretrained_norm_stats(cfg.model.name, cfg.model.weights)
    for labels in sorted({v.labels for v in variants}):
        dm = instantiate(cfg.data, labels="true" if labels == "pca" else labels, norm_stats=stats, seed=cfg.seed,
                         _convert_="all")
        dm.setup()
        datamodules[labels] = dm
    return datamodules


def run(cfg: DictConfig, run: Run) -> None:
    variants = resolve_variants(cfg)
    optimizer_node(cfg.task.optim, "task.optim")  # a wrong optimizer fails before any data or training
    scheduler_node(cfg.task.scheduler, "task.scheduler")
    if cfg.task.fit.grid not in GRIDS:  # before any data or training
        raise ConfigError(f"task.fit.grid must be one of {', '.join(GRIDS)}, not {cfg.task.fit.grid!r}")
    # Stage B first: it needs only its own files, so a study whose dataset is not installed still
    # measures it (and says which command installs the dataset).
    _pretrained(cfg, run)
    try:
        datamodules = _datamodules(cfg, variants)
    except DataError as e:
        if not cfg.task.pretrained:
            raise
        log.warning("whitening: %s; the trained models are not measured (their claims read 'not measured')", e)
        return
    dm0 = next(iter(datamodules.values()))  # the same pixels in every module: only the labels differ
    run.set_dataset(cfg.data.name, "train", len(dm0.train))
    k = cfg.task.kernel_size
    out_size = min(dm0.train.images.shape[-2:]) - k + 1  # the first layer's output, where C(delta) is measured
    if cfg.task.autocorr_max_delta >= out_size:  # before any training
        raise ConfigError(f"task.autocorr_max_delta={cfg.task.autocorr_max_delta} does not fit the first layer's "
                          f"{out_size}x{out_size} output on {cfg.data.name}'s images; set it below {out_size}")
    pca = load_or_compute(Cache.from_config(cfg), dm0.cache_key, k, (x for x, _ in dm0.ordered_train_dataloader()),
                          write=run.is_writer)
    run.save_tensors("patch_pca", {"eigvals": pca.eigvals, "eigvecs": pca.eigvecs, "mean": pca.mean})
    if "pca" in datamodules:
        _tie_labels_to_pca(datamodules["pca"], pca, cfg.task.pca_labels_component)

    trained = {v: train_or_load(cfg, run, datamodules[v.labels], v) for v in variants}
    first = variants[0]
    run.set_model(first.arch, cfg.model.weights or "trained from scratch by bench", trained[first].n_params,
                  weights="sha:" + tensors_sha256({v.id: t.final for v, t in trained.items()})[:20])
    dataset = cfg.data.name
    subtract = cfg.task.subtract_init

    def rows_of(profile: torch.Tensor, params: dict):
        return fit_rows(profile, pca.eigvals, k, cfg.task.fit.grid, cfg.task.tau_grid_size, params)

    profiles, fits, rows = {}, {}, []
    for v, t in trained.items():
        base = {"arch": v.arch, "kind": v.kind, "width": v.width, "seed": v.seed, "labels": v.labels,
                "first_layer": v.first_layer, "dataset": dataset}
        # with a stopping rule: the fit at half, at and at twice the stopping point (consistency at the
        # point); without one: at the end of the training (phase=end)
        points = t.phases or {"end": None}
        for phase, step in points.items():
            prof = _profile(t, pca, subtract, v, step)
            fit_of, headline = rows_of(prof, {**base, "phase": phase, "weights": "trained"})
            rows += fit_of
            if phase in ("end", "stop"):
                profiles[v.id], fits[v.id] = prof, headline
            if f"train_acc_{phase}" in t.meta:
                rows.append(dict(metric="train_acc", value=t.meta[f"train_acc_{phase}"], split="train",
                                 params={**base, "phase": phase, "step": step},
                                 n=len(datamodules[v.labels].train)))
        if "stop_epoch" in t.meta:
            rule = next(r.removeprefix("rule_") for r in t.meta if r.startswith("rule_"))
            rows.append(dict(metric="stop_epoch", value=t.meta["stop_epoch"], higher_is_better=None,
                             params={**base, "rule": rule}))
        rows.append(dict(metric="test_acc", value=t.test_acc, params=base, n=len(datamodules[v.labels].test)))
        if t.init is not None and v.first_layer == "learned":  # a frozen layer *is* its init
            init_prof = energy_profile(t.init, pca.eigvecs)
            profiles[f"{v.id}@init"] = init_prof
            rows += rows_of(init_prof, {**base, "weights": "init"})[0]
            rows.append(dict(metric="consistency_r", value=pearson(profiles[v.id], init_prof),
                             params={"axis": "init", "kind": v.kind, "a": v.id, "b": f"{v.id}@init"}))
    for a, b in itertools.combinations(variants, 2):
        differs = [ax for ax in AXES if getattr(a, ax) != getattr(b, ax)]
        if len(differs) == 1:
            rows.append(dict(metric="consistency_r", value=pearson(profiles[a.id], profiles[b.id]),
                             params={"axis": differs[0], "kind": a.kind if a.kind == b.kind else "mixed",
                                     # which labels the pair compares (true-random is the paper's Table 2)
                                     "labels": "-".join(sorted({a.labels, b.labels}, key=LABELS.index)),
                                     # two frozen layers are two random inits: not a learned profile's consistency
                                     "first_layer": "-".join(sorted({a.first_layer, b.first_layer},
                                                                    key=FIRST_LAYER.index)),
                                     "a": a.id, "b": b.id}))
    run.log_metrics(rows + pooled_over_seeds(rows, POOLED))
    run.save_tensors("profiles", profiles)
    run.save_tensors("filters", {f"{v.id}@step{s}": w for v, t in trained.items() for s, w in t.snapshots.items()})

    trained_only = {n: p for n, p in profiles.items() if not n.endswith("@init")}
    run.save_figure("profile_vs_formula", plots.profile_vs_formula(trained_only, fits))
    names = list(profiles)
    matrix = np.array([[pearson(profiles[a], profiles[b]) for b in names] for a in names])
    run.save_figure("consistency_heatmap", plots.consistency_heatmap(names, matrix))
    _autocorrelation(cfg, run, dm0, trained, variants, pca)
    _label_pca(run, datamodules, pca)
    for v, t in trained.items():
        steps = sorted(s for s in t.snapshots if s > 0)
        if t.init is not None and len(steps) > 1:
            over_time = [energy_profile(t.snapshots[s] - t.init, pca.eigvecs) for s in steps]
            run.save_figure(f"profile_over_time_{v.id}", plots.profile_over_time(steps, over_time, v.id))


def _autocorrelation(cfg: DictConfig, run: Run, dm, trained: dict[Variant, Trained], variants: list[Variant],
                     pca: PatchPCA) -> None:
    """C(delta) of the raw input, of random (init) filters, of a perfect whitening (ZCA of the
    patches) and of each trained bank; the headline ``autocorr_ratio`` is each bank's C(max_delta)
    over the input's (the paper: input > 0.5, random filters about the same, learned ~0.2, ZCA 0)."""
    images = torch.cat([x for x, _ in dm.test_dataloader()])[: cfg.task.autocorr_images]
    d = cfg.task.autocorr_max_delta
    first = trained[variants[0]]
    random = first.init if first.init is not None else torch.nn.init.kaiming_normal_(
        torch.empty_like(first.final), generator=torch.Generator().manual_seed(cfg.seed))
    banks = {"input": (None, {}), "random": (random, {}), "zca": (zca_filters(pca, first.final.shape[1:]), {})}
    banks |= {f"trained:{v.id}": (t.final, {"kind": v.kind, "labels": v.labels, "first_layer": v.first_layer})
              for v, t in trained.items()}
    curves, rows = {}, []
    with torch.no_grad():
        for name, (weight, extra) in banks.items():
            c = spatial_autocorrelation(first_layer_outputs(images, weight), d)
            curves[name] = c
            kind, _, variant = name.partition(":")
            params = {"filters": kind, "variant": variant or None, **extra}
            rows += [dict(metric="autocorr", value=float(c[i]), higher_is_better=False, n=len(images),
                          params={"delta": i, **params}) for i in range(d + 1)]
            if weight is not None:
                rows.append(dict(metric="autocorr_ratio", value=float(c[d] / curves["input"][d]),
                                 higher_is_better=False, n=len(images), params={"delta": d, **params}))
    run.log_metrics(rows)
    run.save_figure("autocorrelation", plots.autocorr_curves(curves))


def _pretrained(cfg: DictConfig, run: Run) -> None:
    """Stage B: each pretrained first layer as it is, over its own image set's patch PCA (stage=pretrained)."""
    rows, profiles, fits = [], {}, {}
    for entry in cfg.task.pretrained:
        p = pretrained.measure(cfg.model, entry, Path(cfg.task.assets_dir), cfg.task.kernel_size)
        if p is None:
            continue
        params = {"stage": "pretrained", "arch": entry.name, "images": entry.images, "weights": "pretrained"}
        prof = pretrained.profile(p)
        profiles[entry.name] = prof
        fit_of, fits[entry.name] = fit_rows(prof, p.pca.eigvals, cfg.task.kernel_size, cfg.task.fit.grid,
                                            cfg.task.tau_grid_size, params)
        rows += fit_of
        # the weights are the right ones: they classify the image set's own (file-name) labels
        rows.append(dict(metric="pretrained_acc", value=p.accuracy, params=params, n=p.n_images))
    if rows:
        run.log_metrics(rows)
        run.save_tensors("pretrained_profiles", profiles)
        run.save_figure("pretrained_profile_vs_formula", plots.profile_vs_formula(profiles, fits))


def _tie_labels_to_pca(dm, pca: PatchPCA, component: int) -> None:
    """Relabel train and test: class = quantile bin of the image's patch energy along u_component
    (bins from the training set, as many classes as the true labels, balanced)."""
    if not 0 <= component < len(pca.eigvals):
        raise ConfigError(f"task.pca_labels_component={component} is not a component of the "
                          f"{len(pca.eigvals)}-dimensional patch PCA")
    train = pca_energy(dm.train.tensors()[0], pca, component)
    test = pca_energy(dm.test.tensors()[0], pca, component)
    dm.train.labels = quantile_labels(train, train, dm.num_classes)
    dm.test.labels = quantile_labels(test, train, dm.num_classes)


def _label_pca(run: Run, datamodules: dict, pca: PatchPCA) -> None:
    for labels, dm in datamodules.items():
        x, y = dm.train.tensors()
        corr = label_pca_correlation(x, y, pca)
        run.log_metric("label_pca_corr", float(corr.max()), params={"labels": labels}, split="train",
                       n=len(y), higher_is_better=False)
