"""task=shift: the controllable-shift benchmark (Control+Shift, Friedman & Chowers 2024).

1. Build (or load from the cache) a deterministic generator ``G(z, y)``.
2. Generate, as sharded datasets, each family's base train/val sets and its paired test sets
   (one ``eps`` and label draw decoded at every intensity).
3. Train every classifier variant (architecture x augmentation x training-set size, each architecture
   with its own recipe, every size for the same number of optimizer steps) on each base set, score
   it image by image along each sweep: ``accuracy`` and ``accuracy_drop`` (with per-image items, paired
   across intensities and variants, for the claims), ``base_accuracy`` (the validity gate), ``auc``,
   with the latent divergences (``latent_mmd2``, ``latent_support_out``, ``latent_support_out_knn``, the
   Gaussian ``latent_kl_gauss``) and the labelled and measured angles beside each intensity.
4. Measure the generator instead of assuming it: ``cas`` (generated-trained classifier on real
   held-out images) beside ``real_on_generated`` (real-trained classifier on generated images).
"""
from __future__ import annotations

import logging

import torch
from omegaconf import DictConfig

from bench.atomic import atomic_save
from bench.context import RunContext
from bench.errors import ConfigError, DataError
from bench.seeding import derive, torch_generator
from bench.models import n_params as count_params
from bench.shift import plots
from bench.shift.ablations import Variant, check_recipes, recipe, trains_on, variants
from bench.shift.config import SCHEMAS, GeneratorConfig, ShiftTaskConfig  # noqa: F401  (SCHEMAS: the task API)
from bench.shift.sets import Sets, generate
from bench.shift.evaluate import auc, binomial_stderr, correct, train_classifier, train_steps
from bench.shift.families import (
    FAMILIES, PARAM_NAMES, Shift, parse_values, validate_sweep)
from bench.shift.divergence import latent_kl_gauss, latent_kl_gauss_mc, sample_divergences
from bench.shift.rng import check_reference_sizes
from bench.shift.generators import Generator, build_generator

log = logging.getLogger("bench.shift")



def sweeps(task: DictConfig) -> dict[str, list[float]]:
    """Each configured family's intensities in its own parameter, checked."""
    if not task.families:
        raise ConfigError("task.families is empty; give at least one of "
                          f"{', '.join(FAMILIES)} with its values (e.g. task.families.truncation.values=[0.9,1.1])")
    out = {}
    for family, fam_cfg in task.families.items():
        if fam_cfg is None:  # switched off (the single-family presets)
            continue
        Shift(family, 0.0)  # validates the name
        values = parse_values(family, list(fam_cfg["values"]), fam_cfg["unit"])
        validate_sweep(family, values)
        out[family] = values
    if not out:
        raise ConfigError("every shift family is switched off (null); give one its values")
    return out


def _save_png(run, name: str, image: torch.Tensor) -> None:
    from torchvision.utils import save_image

    if run.is_writer:
        atomic_save(run.artifact_path(f"{name}.png"), lambda tmp: save_image(image, tmp, format="png"))


def _real_data(task: DictConfig, generator: Generator):
    """The real held-out images (uint8) with the generator's classes and size, or None."""
    if task.real_data is None:
        return None
    from bench.data.datamodule import ImageDataModule

    dm = ImageDataModule(task.real_data, root=task.real_data_root, image_size=generator.image_shape[-1],
                         normalize=False)
    dm.setup()
    if tuple(dm.train.images.shape[1:]) != tuple(generator.image_shape) or dm.num_classes != generator.num_classes:
        raise DataError(f"task.real_data={task.real_data} has images {tuple(dm.train.images.shape[1:])} and "
                        f"{dm.num_classes} classes but {generator.id} makes {tuple(generator.image_shape)} with "
                        f"{generator.num_classes}; pick the generator's dataset or set task.real_data=null")
    return (dm.train.images, dm.train.labels), (dm.test.images, dm.test.labels)


def run(ctx: RunContext) -> None:
    """The benchmark (see the module docstring), phase by phase."""
    cfg, run = ctx.cfg, ctx.run
    sweep, grid = _checked(cfg)
    # the generator and the sets derive from the data seed; classifiers from the run's seed
    data_seed = cfg.seed if cfg.task.data_seed is None else cfg.task.data_seed
    generator = build_generator(cfg.generator, ctx, seed=derive(data_seed, "generator", cfg.generator.kind))
    log.info("generator %s (weights %s), latent dim %d", generator.id, generator.weights_hash[:12], generator.latent_dim)
    run.save_json("generator", generator.describe())
    sets = generate(ctx, generator, sweep, data_seed)
    run.set_dataset(f"shift:{generator.id}", "test", cfg.task.n_test)
    latent = _latent_divergences(ctx, sets, data_seed)
    real = _real_data(cfg.task, generator)
    table, n_params = _classifiers(ctx, sets, grid, latent, real)
    if real is not None:
        _real_classifier(ctx, sets, grid, real)
    run.set_model("+".join(dict.fromkeys(v.model["name"] for v in grid)), f"trained on {generator.id}",
                  n_params if len({v.model["name"] for v in grid}) == 1 else None)
    run.save_json("accuracy_table", table)
    for family in sweep:
        run.save_figure(f"accuracy_vs_intensity_{family}", plots.accuracy_vs_intensity(table, family))
    _log_table(table)


def _checked(cfg: DictConfig) -> tuple[dict[str, list[float]], list[Variant]]:
    """Each family's sweep and the classifier grid, every setting checked before any generator or data."""
    task = cfg.task
    sweep = sweeps(task)
    grid = variants(cfg)
    for family in task.augment_families or ():
        if family not in sweep:
            raise ConfigError(f"task.augment_families names {family}, which is not a swept family ({', '.join(sweep)})")
    if task.rng == "reference":
        check_reference_sizes(n_train=task.n_train, n_val=task.n_val, n_test=task.n_test)
    check_recipes(task, grid)
    return sweep, grid


def _latent_divergences(ctx: RunContext, sets: Sets, data_seed: int) -> dict[Shift, dict]:
    """The latent divergences and angles beside each intensity (rows, and per shift for the accuracy table);
    the sample grids and the morph of each family as artifacts."""
    run, task = ctx.run, ctx.cfg.task
    rows, latent = [], {}
    for family, specs in sets.test.items():
        angle_eps = torch.randn(task.mmd_samples, sets.generator.latent_dim, dtype=torch.float64,
                                generator=torch_generator(data_seed, "shift", "latent_angle"))
        base = sets.base[family]
        for spec in specs:
            s = spec.shift
            measured = s.measured_angle(sets.anchors, angle_eps)
            params = {"family": family, "intensity": s.value, "param": PARAM_NAMES[family], "angle": s.angle,
                      "angle_measured": measured}
            mc, se = latent_kl_gauss_mc(s, base, sets.anchors, task.mc_samples,
                                        seed=derive(data_seed, "shift", "latent_kl_gauss_mc"))
            latent[s] = {"angle": s.angle, "angle_measured": measured,
                         "latent_kl_gauss": latent_kl_gauss(s, base, sets.anchors),
                         **sample_divergences(s, base, sets.anchors, task.mmd_samples,
                                              seed=derive(data_seed, "shift", "latent_mmd2", family), k=task.knn_k)}
            rows += [dict(metric=m, value=latent[s][m], params=params, higher_is_better=False,
                          n=None if m == "latent_kl_gauss" else task.mmd_samples)
                     for m in ("latent_kl_gauss", "latent_mmd2", "latent_support_out", "latent_support_out_knn")]
            rows.append(dict(metric="latent_kl_gauss_mc", value=mc, stderr=se, params=params, n=task.mc_samples,
                             higher_is_better=False))
            _save_png(run, f"grid_{family}_{s.value:g}", sets.store.grid(spec, task.grid_size))
        _save_png(run, f"morph_{family}", sets.store.morph(specs, task.morph_rows))
    run.log_metrics(rows)
    return latent


def _classifiers(ctx: RunContext, sets: Sets, grid: list[Variant], latent: dict[Shift, dict],
                 real: tuple | None) -> tuple[list[dict], int | None]:
    """Every classifier variant trained on each base set and scored image by image along each sweep (and on
    the real held-out images: ``cas``); the accuracy table and the first model's size."""
    cfg, run, task = ctx.cfg, ctx.run, ctx.cfg.task
    table: list[dict] = []
    n_params = None
    for families in sets.bases().values():
        images, labels = sets.store.load(sets.train[families[0]])
        val_set = sets.store.load(sets.val[families[0]])
        base_name = "+".join(families)
        for variant in (v for v in grid if trains_on(v, families, task)):
            log.info("training %s on the %s base set", variant.label, base_name)
            train = recipe(task, variant.model["name"])
            # every size trains for the steps the full set takes in trainer.max_epochs
            steps = train_steps(task.n_train, cfg.trainer.max_epochs, train.batch_size)
            model, norm = train_classifier(ctx, images[:variant.n_train], labels[:variant.n_train], variant.model,
                                           train, variant.augment, sets.generator.num_classes,
                                           seed=ctx.derive("classifier", base_name, variant.model, variant.augment,
                                                           variant.n_train),
                                           name=f"{base_name}/{variant.label}", steps=steps)
            n_params = count_params(model) if n_params is None else n_params
            scored = [val_set, *([real[1]] if real is not None else []),
                      *(sets.load(spec) for family in families for spec in sets.test[family])]
            hits = iter(correct(model, norm, scored, cfg.trainer))
            rows = [_accuracy_row("base_accuracy", next(hits), {"base": base_name, **variant.params},
                                  sets.item_set["val"], split="val")]
            if real is not None:
                rows.append(_accuracy_row("cas", next(hits), {"base": base_name, **variant.params}))
            for family in families:
                sweep_hits = [next(hits) for _ in sets.test[family]]
                values = [spec.shift.value for spec in sets.test[family]]
                rows += _sweep_rows(family, values, sweep_hits, variant.params, sets.item_set["test"])
                table += [{"family": family, "intensity": v, **latent[spec.shift], "classifier": variant.label,
                           **variant.params, "accuracy": float(h.mean()), "stderr": binomial_stderr(float(h.mean()), len(h)),
                           "n": len(h)} for v, spec, h in zip(values, sets.test[family], sweep_hits)]
            run.log_metrics(rows)
    return table, n_params


def _real_classifier(ctx: RunContext, sets: Sets, grid: list[Variant], real: tuple) -> None:
    """The other direction of the generator check: a real-trained classifier on generated data (the same
    recipe and optimizer steps as the generated-data classifiers)."""
    cfg, task = ctx.cfg, ctx.cfg.task
    variant = Variant(grid[0].model, False, len(real[0][1]))
    train = recipe(task, variant.model["name"])
    model, norm = train_classifier(ctx, *real[0], variant.model, train, False, sets.generator.num_classes,
                                   seed=ctx.derive("classifier", "real", variant.model), name="real",
                                   steps=train_steps(task.n_train, cfg.trainer.max_epochs, train.batch_size))
    bases = sets.bases()
    gen_tests = [sets.load(sets.test[families[0]][0]) for families in bases.values()]
    hits = correct(model, norm, [real[1], *gen_tests], cfg.trainer)
    rows = [_accuracy_row("real_accuracy", hits[0], variant.params)]
    rows += [_accuracy_row("real_on_generated", h, {"base": "+".join(families), **variant.params})
             for families, h in zip(bases.values(), hits[1:])]
    ctx.run.log_metrics(rows)


def _accuracy_row(metric: str, hits: torch.Tensor, params: dict, item_set: str | None = None,
                  split: str = "test") -> dict:
    """An accuracy row; with ``item_set``, its per-image 0/1 items (what the claims resample)."""
    acc = float(hits.mean())
    row = dict(metric=metric, value=acc, stderr=binomial_stderr(acc, len(hits)), n=len(hits), split=split,
               params=params)
    if item_set is not None:
        row.update(items=hits, item_set=item_set)
    return row


def _sweep_rows(family: str, values: list[float], hits: list[torch.Tensor], variant: dict, item_set: str) -> list[dict]:
    """One classifier's rows along a family's sweep: ``accuracy`` per intensity, the paired per-image drop
    from the base to the strongest intensity (``accuracy_drop``; per-intensity drops: the accuracy
    table) and ``auc``. Item i of every row is test image i (one eps and label, decoded at each intensity)."""
    rows = [_accuracy_row("accuracy", h, {"family": family, "intensity": v, **variant}, item_set)
            for v, h in zip(values, hits)]
    drop = hits[0] - hits[-1]
    rows.append(dict(metric="accuracy_drop", value=float(drop.mean()), n=len(drop), higher_is_better=False,
                     params={"family": family, "intensity": values[-1], **variant}, items=drop, item_set=item_set))
    rows.append(dict(metric="auc", value=auc(values, [float(h.mean()) for h in hits]),
                     params={"family": family, **variant}))
    return rows


def _log_table(table: list[dict]) -> None:
    """The per-intensity accuracies, one line per (family, classifier), in the log."""
    lines: dict[tuple, list[str]] = {}
    for r in table:
        lines.setdefault((r["family"], r["classifier"]), []).append(f"{r['intensity']:g}:{100 * r['accuracy']:.1f}")
    for (family, classifier), pts in lines.items():
        log.info("%-10s %-28s %s", family, classifier, "  ".join(pts))
