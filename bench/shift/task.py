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
from pathlib import Path

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
from bench.shift.dataset import SetSpec, ShardedDatasets
from bench.shift.evaluate import auc, binomial_stderr, correct, train_classifier, train_steps
from bench.shift.families import (
    FAMILIES, PARAM_NAMES, Shift, parse_values, validate_sweep)
from bench.shift.divergence import latent_kl_gauss, latent_kl_gauss_mc, sample_divergences
from bench.shift.rng import REFERENCE_ANCHOR_SEED, REFERENCE_SEEDS, check_reference_sizes, draw_anchors
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


def _join_launched_ranks(trainer: DictConfig) -> None:
    """Ranks started all at once by torchrun (``RANK`` set) join their process group before generation,
    so they split it (:meth:`ShardedDatasets.build`); Lightning's DDP then reuses the group. Ranks that
    Lightning itself launches start at the first fit, after generation, and find the sets complete."""
    import os

    import torch.distributed as dist

    if dist.is_initialized() or "RANK" not in os.environ or int(os.environ.get("WORLD_SIZE", "1")) < 2 \
            or "MASTER_ADDR" not in os.environ:
        return
    gpu = trainer.accelerator in ("gpu", "cuda", "auto") and torch.cuda.is_available()
    if gpu:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    dist.init_process_group("nccl" if gpu else "gloo")


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
    cfg, run = ctx.cfg, ctx.run
    task = cfg.task
    sweep = sweeps(task)
    grid = variants(cfg)
    for family in task.augment_families or ():
        if family not in sweep:
            raise ConfigError(f"task.augment_families names {family}, which is not a swept family ({', '.join(sweep)})")
    if task.rng == "reference":
        check_reference_sizes(n_train=task.n_train, n_val=task.n_val, n_test=task.n_test)
    check_recipes(task, grid)
    # the generator and the sets derive from the data seed; classifiers from the run's seed
    data_seed = cfg.seed if task.data_seed is None else task.data_seed
    cache = ctx.cache
    generator = build_generator(cfg.generator, ctx, seed=derive(data_seed, "generator", cfg.generator.kind))
    log.info("generator %s (weights %s), latent dim %d", generator.id, generator.weights_hash[:12], generator.latent_dim)
    run.save_json("generator", generator.describe())
    # bench: every draw derives from the data seed by purpose (bench.seeding): anchors, then each
    # split's eps/labels (a test set is one draw decoded at every intensity of every family);
    # reference: the reference script's seeds (bench.shift.rng)
    if task.rng == "reference":
        anchor_seed = REFERENCE_ANCHOR_SEED
        split_seed = dict(REFERENCE_SEEDS)
    else:
        anchor_seed = derive(data_seed, "shift", "anchors")
        split_seed = {split: derive(data_seed, "shift", "eps_and_labels", split) for split in ("train", "val", "test")}
    # the units claims resample: item i of every test set is the same eps and label (paired)
    item_set = {split: f"shift:{split}-seed{split_seed[split]}[0:{task[f'n_{split}']}]" for split in ("val", "test")}
    anchors = draw_anchors(generator.latent_dim, anchor_seed, task.rng)
    store = ShardedDatasets(generator, cache.root / "shift" / "datasets", anchors, anchor_seed,
                            task.shard_size, cfg.generator.batch_size, rng=task.rng, cache=cache)

    # -- generation: base train/val per family, paired test sets per intensity -------------
    base = {f: Shift(f, values[0]) for f, values in sweep.items()}
    train_specs = {f: SetSpec("train", base[f], task.n_train, split_seed["train"]) for f in sweep}
    val_specs = {f: SetSpec("val", base[f], task.n_val, split_seed["val"]) for f in sweep}
    test_specs = {f: [SetSpec("test", Shift(f, v), task.n_test, split_seed["test"]) for v in values]
                  for f, values in sweep.items()}
    _join_launched_ranks(cfg.trainer)
    store.build([*train_specs.values(), *val_specs.values(), *(s for specs in test_specs.values() for s in specs)])
    run.set_dataset(f"shift:{generator.id}", "test", task.n_test)

    # -- latent divergences and angles beside each intensity; sample grids and the morph per family
    div_rows, latent = [], {}
    for family, specs in test_specs.items():
        angle_eps = torch.randn(task.mmd_samples, generator.latent_dim, dtype=torch.float64,
                                generator=torch_generator(data_seed, "shift", "latent_angle"))
        for spec in specs:
            s = spec.shift
            measured = s.measured_angle(anchors, angle_eps)
            params = {"family": family, "intensity": s.value, "param": PARAM_NAMES[family], "angle": s.angle,
                      "angle_measured": measured}
            mc, se = latent_kl_gauss_mc(s, base[family], anchors, task.mc_samples,
                                        seed=derive(data_seed, "shift", "latent_kl_gauss_mc"))
            latent[s] = {"angle": s.angle, "angle_measured": measured,
                         "latent_kl_gauss": latent_kl_gauss(s, base[family], anchors),
                         **sample_divergences(s, base[family], anchors, task.mmd_samples,
                                              seed=derive(data_seed, "shift", "latent_mmd2", family), k=task.knn_k)}
            div_rows += [dict(metric=m, value=latent[s][m], params=params, higher_is_better=False,
                              n=None if m == "latent_kl_gauss" else task.mmd_samples)
                         for m in ("latent_kl_gauss", "latent_mmd2", "latent_support_out", "latent_support_out_knn")]
            div_rows.append(dict(metric="latent_kl_gauss_mc", value=mc, stderr=se, params=params, n=task.mc_samples,
                                 higher_is_better=False))
            _save_png(run, f"grid_{family}_{s.value:g}", store.grid(spec, task.grid_size))
        _save_png(run, f"morph_{family}", store.morph(specs, task.morph_rows))
    run.log_metrics(div_rows)

    # -- classifiers: one per base set (extend and overlap share theirs) x variant ----------
    bases: dict[Path, list[str]] = {}
    for family, spec in train_specs.items():
        bases.setdefault(store.path(spec), []).append(family)
    real = _real_data(task, generator)
    loaded: dict[SetSpec, tuple[torch.Tensor, torch.Tensor]] = {}

    def load(spec: SetSpec) -> tuple[torch.Tensor, torch.Tensor]:
        if spec not in loaded:
            loaded[spec] = store.load(spec)
        return loaded[spec]

    table: list[dict] = []
    n_params = None
    for families in bases.values():
        images, labels = store.load(train_specs[families[0]])
        val_set = store.load(val_specs[families[0]])
        base_name = "+".join(families)
        for variant in (v for v in grid if trains_on(v, families, task)):
            log.info("training %s on the %s base set", variant.label, base_name)
            train = recipe(task, variant.model["name"])
            # every size trains for the steps the full set takes in trainer.max_epochs
            steps = train_steps(task.n_train, cfg.trainer.max_epochs, train.batch_size)
            model, norm = train_classifier(ctx, images[:variant.n_train], labels[:variant.n_train], variant.model,
                                           train, variant.augment, generator.num_classes,
                                           seed=ctx.derive("classifier", base_name, variant.model, variant.augment,
                                                           variant.n_train),
                                           name=f"{base_name}/{variant.label}", steps=steps)
            n_params = count_params(model) if n_params is None else n_params
            sets = [val_set, *([real[1]] if real is not None else []),
                    *(load(spec) for family in families for spec in test_specs[family])]
            hits = iter(correct(model, norm, sets, cfg.trainer))
            val_hits = next(hits)
            rows = [_accuracy_row("base_accuracy", val_hits, {"base": base_name, **variant.params}, item_set["val"],
                                  split="val")]
            if real is not None:
                rows.append(_accuracy_row("cas", next(hits), {"base": base_name, **variant.params}))
            for family in families:
                sweep_hits = [next(hits) for _ in test_specs[family]]
                values = [spec.shift.value for spec in test_specs[family]]
                rows += _sweep_rows(family, values, sweep_hits, variant.params, item_set["test"])
                table += [{"family": family, "intensity": v, **latent[spec.shift], "classifier": variant.label,
                           **variant.params, "accuracy": float(h.mean()), "stderr": binomial_stderr(float(h.mean()), len(h)),
                           "n": len(h)} for v, spec, h in zip(values, test_specs[family], sweep_hits)]
            run.log_metrics(rows)

    # -- the other direction of the generator check: a real-trained classifier on generated data
    if real is not None:  # the same recipe and optimizer steps as the generated-data classifiers
        variant = Variant(grid[0].model, False, len(real[0][1]))
        train = recipe(task, variant.model["name"])
        model, norm = train_classifier(ctx, *real[0], variant.model, train, False, generator.num_classes,
                                       seed=ctx.derive("classifier", "real", variant.model), name="real",
                                       steps=train_steps(task.n_train, cfg.trainer.max_epochs, train.batch_size))
        gen_tests = [load(test_specs[families[0]][0]) for families in bases.values()]
        hits = correct(model, norm, [real[1], *gen_tests], cfg.trainer)
        rows = [_accuracy_row("real_accuracy", hits[0], variant.params)]
        rows += [_accuracy_row("real_on_generated", h, {"base": "+".join(families), **variant.params})
                 for families, h in zip(bases.values(), hits[1:])]
        run.log_metrics(rows)

    run.set_model("+".join(dict.fromkeys(v.model["name"] for v in grid)), f"trained on {generator.id}",
                  n_params if len({v.model["name"] for v in grid}) == 1 else None)
    run.save_json("accuracy_table", table)
    for family in sweep:
        run.save_figure(f"accuracy_vs_intensity_{family}", plots.accuracy_vs_intensity(table, family))
    _log_table(table)


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
