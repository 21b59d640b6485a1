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
import json
import logging
import math
from pathlib import Path

import numpy as np
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig

from bench.context import RunContext
from bench.data import real
from bench.errors import ConfigError, DataError
from bench.provenance import tensors_sha256
from bench.store import Run
from bench.training import optimizer_node, scheduler_node
from bench.whitening import plots, pretrained
from bench.whitening.config import SCHEMAS  # noqa: F401  (the task API)
from bench.whitening.analyses import (first_layer_outputs, jackknife_se, label_pca_correlation, pca_energy,
                                      quantile_labels, spatial_autocorrelation, zca_filters)
from bench.whitening.fits import fit_rows, pooled_over_seeds
from bench.whitening.patch_pca import PatchPCA, load_or_compute
from bench.whitening.profile import energy_profile, pearson
from bench.whitening.trained import Trained, train_or_load
from bench.whitening.variants import AXES, FIRST_LAYER, LABELS, Variant, resolve_variants

log = logging.getLogger(__name__)
# metrics also recorded pooled over the seeds of a condition (items = the models): what claims read
POOLED = ("formula_fit_r", "fit_margin", "power_r", "lambda_r", "formula_lambda_distance", "formula_t", "fit_edge",
          "train_acc", "test_acc")


def run(ctx: RunContext) -> None:
    """The study (see the module docstring), phase by phase."""
    cfg, run = ctx.cfg, ctx.run
    variants = _checked(cfg)
    # Stage B first: it needs only its own files, so a study whose dataset is not installed still
    # measures it (and says which command installs the dataset).
    _pretrained(cfg, run)
    datamodules = _datamodules(cfg, variants)
    if datamodules is None:
        return
    dm0 = next(iter(datamodules.values()))  # the same pixels in every module: only the labels differ
    run.set_dataset(cfg.data.name, "train", len(dm0.train))
    pca = _patch_pca(ctx, dm0)
    if "pca" in datamodules:
        _tie_labels_to_pca(datamodules["pca"], pca, cfg.task.pca_labels_component)
    trained = {v: train_or_load(ctx, datamodules[v.labels], v) for v in variants}
    first = variants[0]
    run.set_model(first.arch, cfg.model.weights or "trained from scratch by bench", trained[first].n_params,
                  weights="sha:" + tensors_sha256({v.id: t.final for v, t in trained.items()})[:20])
    rows, profiles, fits = _model_rows(cfg, datamodules, trained, pca)
    rows += _consistency_rows(variants, profiles)
    run.log_metrics(rows + pooled_over_seeds(rows, POOLED))
    run.save_tensors("profiles", profiles)
    run.save_tensors("filters", {f"{v.id}@step{s}": w for v, t in trained.items() for s, w in t.snapshots.items()})
    _profile_figures(run, trained, profiles, fits, pca)
    _autocorrelation(ctx, dm0, trained, variants, pca)
    _label_pca(run, datamodules, pca)


def _checked(cfg: DictConfig) -> list[Variant]:
    """The study's variants, every setting checked before any data or training."""
    variants = resolve_variants(cfg)
    optimizer_node(cfg.task.optim, "task.optim")
    scheduler_node(cfg.task.scheduler, "task.scheduler")
    stop = cfg.task.stopping
    if stop.enabled:
        if stop.check_every < 1 or stop.max_epochs < 1:
            raise ConfigError(f"task.stopping.check_every ({stop.check_every}) and max_epochs ({stop.max_epochs}) "
                              "must be >= 1")
        # the rule decides the length: a training cut short by the trainer would end before it fires
        cut = {k: cfg.trainer.get(k) for k in ("max_steps", "fast_dev_run", "limit_train_batches")}
        if cut["max_steps"] not in (None, -1) or cut["fast_dev_run"] or cut["limit_train_batches"] not in (None, 1.0):
            raise ConfigError(f"task.stopping decides each training's length, but trainer sets {cut}: drop the "
                              "trainer limit, or set task.stopping.enabled=false")
    return variants


def _datamodules(cfg: DictConfig, variants: list[Variant]) -> dict | None:
    """One data module per label kind (the same pixels; labels=pca relabels the true-label module later).
    None: the dataset is not installed and Stage B was measured alone (the trained models' claims read
    'not measured')."""
    datamodules = {}
    # A pretrained torchvision model sees its inputs normalised as its weights were trained (the
    # patch PCA then uses that same normalisation); otherwise the data's own statistics.
    stats = real.pretrained_norm_stats(cfg.model.name, cfg.model.weights)
    try:
        for labels in sorted({v.labels for v in variants}):
            dm = instantiate(cfg.data, labels="true" if labels == "pca" else labels, norm_stats=stats,
                             seed=cfg.seed, _convert_="all")
            dm.setup()
            datamodules[labels] = dm
    except DataError as e:
        if not cfg.task.pretrained:
            raise
        log.warning("whitening: %s; the trained models are not measured (their claims read 'not measured')", e)
        return None
    return datamodules


def _patch_pca(ctx: RunContext, dm) -> PatchPCA:
    """The patch PCA of the training images (cached), saved as an artifact; the autocorrelation's reach is
    checked against the first layer's output first."""
    cfg, k = ctx.cfg, ctx.cfg.task.kernel_size
    out_size = min(dm.train.images.shape[-2:]) - k + 1  # the first layer's output, where C(delta) is measured
    if cfg.task.autocorr_max_delta >= out_size:  # before any training
        raise ConfigError(f"task.autocorr_max_delta={cfg.task.autocorr_max_delta} does not fit the first layer's "
                          f"{out_size}x{out_size} output on {cfg.data.name}'s images; set it below {out_size}")
    pca = load_or_compute(ctx.cache, dm.cache_key, k, (x for x, _ in dm.ordered_train_dataloader()),
                          write=ctx.run.is_writer)
    ctx.run.save_tensors("patch_pca", {"eigvals": pca.eigvals, "eigvecs": pca.eigvecs, "mean": pca.mean})
    return pca


def _profile(trained: Trained, pca: PatchPCA, subtract_init: bool, variant: Variant,
             step: int | None = None) -> torch.Tensor:
    """Profile of W_trained - W_init (or W_trained) at ``step`` (default: the end); a frozen layer never
    moved: its profile is its init's."""
    learned = subtract_init and trained.init is not None and variant.first_layer == "learned"
    w = trained.final if step is None else trained.snapshots[step]
    return energy_profile(w - trained.init if learned else w, pca.eigvecs)


def _model_rows(cfg: DictConfig, datamodules: dict, trained: dict[Variant, Trained],
                pca: PatchPCA) -> tuple[list[dict], dict[str, torch.Tensor], dict]:
    """Each model's fit rows (with a stopping rule: at half, at and at twice the stopping point; without one:
    at the end of the training, phase=end), its training and test accuracy, its init's fit and its
    consistency with its init; with the profiles and headline fits (at the stopping point or the end)."""
    k, subtract = cfg.task.kernel_size, cfg.task.subtract_init

    def rows_of(profile: torch.Tensor, params: dict):
        return fit_rows(profile, pca.eigvals, k, cfg.task.fit.grid, cfg.task.tau_grid_size, params)

    profiles, fits, rows = {}, {}, []
    for v, t in trained.items():
        base = {"arch": v.arch, "kind": v.kind, "width": v.width, "seed": v.seed, "labels": v.labels,
                "first_layer": v.first_layer, "dataset": cfg.data.name}
        for phase, step in (t.phases or {"end": None}).items():
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
    return rows, profiles, fits


def _consistency_rows(variants: list[Variant], profiles: dict[str, torch.Tensor]) -> list[dict]:
    """consistency_r of every pair of models that differ in exactly one axis (over=pair), and per kind
    of pair one row pooled over its pairs (over=pairs) whose items are the pairs: the claims' interval
    is over the pairs of models trained (pairs along the seed axis share models, so theirs is rough)."""
    rows = []
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
                                     "a": a.id, "b": b.id, "over": "pair"}))
    groups: dict[str, list[dict]] = {}
    for r in rows:
        kind = {k: v for k, v in r["params"].items() if k not in ("a", "b", "over")}
        groups.setdefault(json.dumps(kind, sort_keys=True), []).append(r)
    pooled = []
    for kind, pairs in groups.items():
        row = dict(metric="consistency_r", value=math.fsum(r["value"] for r in pairs) / len(pairs),
                   params={**json.loads(kind), "over": "pairs"})
        if len(pairs) > 1:  # one pair is one unit: no spread to draw from (its claim reads inconclusive)
            names = ",".join(f"{r['params']['a']}|{r['params']['b']}" for r in pairs)
            row |= {"items": [r["value"] for r in pairs], "item_set": f"whitening:pairs[{names}]"}
        pooled.append(row)
    return rows + pooled


def _profile_figures(run: Run, trained: dict[Variant, Trained], profiles: dict[str, torch.Tensor], fits: dict,
                     pca: PatchPCA) -> None:
    """Each trained profile against its fitted formula, the consistency heatmap, each profile over time."""
    trained_only = {n: p for n, p in profiles.items() if not n.endswith("@init")}
    run.save_figure("profile_vs_formula", plots.profile_vs_formula(trained_only, fits))
    names = list(profiles)
    matrix = np.array([[pearson(profiles[a], profiles[b]) for b in names] for a in names])
    run.save_figure("consistency_heatmap", plots.consistency_heatmap(names, matrix))
    for v, t in trained.items():
        steps = sorted(s for s in t.snapshots if s > 0)
        if t.init is not None and len(steps) > 1:
            over_time = [energy_profile(t.snapshots[s] - t.init, pca.eigvecs) for s in steps]
            run.save_figure(f"profile_over_time_{v.id}", plots.profile_over_time(steps, over_time, v.id))


JACKKNIFE_GROUPS = 16


def _autocorrelation(ctx: RunContext, dm, trained: dict[Variant, Trained], variants: list[Variant],
                     pca: PatchPCA) -> None:
    """C(delta) of the raw input, of random (init) filters, of a perfect whitening (ZCA of the
    patches) and of each trained bank; the headline ``autocorr_ratio`` is each bank's C(max_delta)
    over the input's (the paper: input > 0.5, random filters about the same, learned ~0.2, ZCA 0)."""
    cfg, run = ctx.cfg, ctx.run
    images = torch.cat([x for x, _ in dm.test_dataloader()])[: cfg.task.autocorr_images]
    d = cfg.task.autocorr_max_delta
    first = trained[variants[0]]
    random = first.init if first.init is not None else torch.nn.init.kaiming_normal_(
        torch.empty_like(first.final), generator=ctx.generator("whitening", "random_filters"))
    banks = {"input": (None, {}), "random": (random, {}), "zca": (zca_filters(pca, first.final.shape[1:]), {})}
    banks |= {f"trained:{v.id}": (t.final, {"kind": v.kind, "arch": v.arch, "width": v.width, "seed": v.seed,
                                            "labels": v.labels, "first_layer": v.first_layer})
              for v, t in trained.items()}
    # the images are the units: each ratio's stderr is a jackknife over JACKKNIFE_GROUPS groups of them
    groups = min(JACKKNIFE_GROUPS, len(images))
    group = torch.arange(len(images)) % groups
    curves, without, rows = {}, {}, []
    with torch.no_grad():
        for name, (weight, extra) in banks.items():
            maps = first_layer_outputs(images, weight)
            c = spatial_autocorrelation(maps, d)
            curves[name] = c
            without[name] = [float(spatial_autocorrelation(maps[group != g], d)[d]) for g in range(groups)]
            kind, _, variant = name.partition(":")
            params = {"filters": kind, **({} if extra else {"variant": None}), **extra}
            rows += [dict(metric="autocorr", value=float(c[i]), higher_is_better=False, n=len(images),
                          params={"delta": i, **params}) for i in range(d + 1)]
            if weight is not None:
                se = jackknife_se([b / a for b, a in zip(without[name], without["input"])])
                rows.append(dict(metric="autocorr_ratio", value=float(c[d] / curves["input"][d]), stderr=se,
                                 higher_is_better=False, n=len(images), params={"delta": d, **params}))
    # the trained banks' ratio per condition, pooled over its seeds (items: the models)
    run.log_metrics(rows + pooled_over_seeds(rows, ("autocorr_ratio",)))
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
        se = pretrained.jackknife_stderr(p, cfg.task.kernel_size, cfg.task.fit.grid, cfg.task.tau_grid_size)
        rows += [{**r, "n": p.n_images, "stderr": se.get((r["metric"], r["params"].get("grid")))} for r in fit_of]
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
