"""``task=modality_gap``: load (or train) a CLIP, cache its embeddings of an evaluation set, then
measure the gap, close it by post-processing over an alpha sweep, and record clean metrics and
robustness under perturbation of the retrieval modality.

    bench experiment=modality_gap/embedded
    bench task=modality_gap clip=vit_b16_openai zeroshot=cifar10 trainer=gpu
"""
from __future__ import annotations

import hashlib
import json
import logging
import math
from pathlib import Path
from dataclasses import dataclass
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from bench.context import RunContext
from bench.device import resolve_device
from bench.errors import ConfigError
from bench.modality_gap import plots
from bench.modality_gap.clip_models import (FASHION_CLIP, LOCAL_DIR, SMALL_CLIP, SMALL_CLIP_MINILM, WEIGHTS_FILE,
                                            ClipBundle, load_clip)
from bench.modality_gap.config import SCHEMAS  # noqa: F401  (the task API)
from bench.modality_gap.clip_training import clip_arch, train_embedded_clip
from bench.modality_gap.datasets import EvalData, load_eval_data
from bench.modality_gap.embeddings import cached, extract, file_fingerprint, trainer_kwargs
from bench.modality_gap.gap import (GapShift, gap_geometry, gap_orthogonality, gap_vector, permutation_null_gap,
                                    predicted_flip_reduction, random_orthogonality)
from bench.modality_gap.paraphrase import paraphrase_rows
from bench.modality_gap.metrics import choice_scores, classification_metrics, nn_scores, recall_at_k, topk_accuracy
from bench.modality_gap.perturbation import Perturbation
from bench.modality_gap.robustness import robustness_sweep
from bench.modality_gap.sweep_rows import paraphrase_template_rows, robustness_rows
from bench.modality_gap.zeroshot import prototypes

log = logging.getLogger(__name__)


def _model(ctx: RunContext) -> tuple[ClipBundle, str, list[dict] | None]:
    """The model, its weights' identity for cache keys, and the gap dynamics if it was trained here."""
    c = ctx.cfg.clip
    if c.pretrained is None and c.name in (SMALL_CLIP, SMALL_CLIP_MINILM, FASHION_CLIP):
        train = OmegaConf.to_container(c.train)
        if clip_arch(train) != c.name:
            raise ConfigError(f"clip.train.variant={train['variant']} trains {clip_arch(train)}, but clip.name={c.name}")
        # a seed sweep trains one CLIP per seed
        trained = train_embedded_clip(ctx, train, seed=ctx.derive("clip", train["variant"]))
        bundle = load_clip(c.name, f"{LOCAL_DIR}{trained.folder}")  # the open_clip folder any program can load
        return bundle, f"sha:{file_fingerprint(trained.folder / WEIGHTS_FILE)}", trained.dynamics
    if c.pretrained is None:
        raise ConfigError(f"clip.pretrained is null for {c.name}: give an open_clip tag (e.g. openai) or a checkpoint path")
    bundle = load_clip(c.name, c.pretrained, cache_dir=c.cache_dir)
    if c.pretrained.startswith(LOCAL_DIR):
        weights = f"sha:{file_fingerprint(Path(c.pretrained[len(LOCAL_DIR):]) / WEIGHTS_FILE)}"
    elif bundle.source == c.pretrained and "/" in c.pretrained:
        weights = f"sha:{file_fingerprint(c.pretrained)}"
    else:
        weights = f"tag:{c.pretrained}"
    return bundle, weights, None


def _embeddings(ctx: RunContext, bundle: ClipBundle, weights: str, data: EvalData) -> dict[str, torch.Tensor]:
    """Image, text (per template) and paraphrase embeddings of ``data``, through the cache."""
    cfg = ctx.cfg
    kw = trainer_kwargs(cfg.trainer)
    bs = cfg.clip.batch_size
    tokenize = lambda s: bundle.tokenizer([s])[0]  # noqa: E731
    key = {"model": bundle.name, "weights": weights, "dataset": data.name, "split": data.split,
           "n": len(data.images), "zeroshot": OmegaConf.to_container(cfg.zeroshot),
           "precision": cfg.trainer.precision}  # bf16 embeddings are other embeddings
    if data.is_retrieval:
        key["captions"] = len(data.captions)
    elif data.is_multiple_choice:
        key["choices"] = hashlib.sha256(json.dumps(data.choices).encode()).hexdigest()[:16]
    else:
        key["classes"] = data.class_set.digest()

    def build() -> dict[str, torch.Tensor]:
        out = {"images": extract(bundle.model, "image", data.images, bundle.preprocess, trainer_kwargs=kw, batch_size=bs)}
        if data.is_retrieval:
            out["captions"] = extract(bundle.model, "text", data.captions, tokenize, trainer_kwargs=kw, batch_size=bs)
            return out
        if data.is_multiple_choice:
            flat = [text for choices in data.choices for text in choices]
            out["choices"] = extract(bundle.model, "text", flat, tokenize, trainer_kwargs=kw,
                                     batch_size=bs).view(len(data.choices), len(data.choices[0]), -1)
            return out
        cs = data.class_set
        c = len(cs.classnames)
        out["templates"] = extract(bundle.model, "text", cs.prompts(), tokenize, trainer_kwargs=kw,
                                   batch_size=bs).view(len(cs.templates), c, -1)
        if cs.paraphrase_templates:  # the paraphrase of each template, in the same order
            out["paraphrases"] = extract(bundle.model, "text", cs.prompts(cs.paraphrase_templates), tokenize,
                                         trainer_kwargs=kw, batch_size=bs).view(len(cs.templates), c, -1)
        return out

    return cached(ctx.cache, key, build, write=ctx.writes)  # rank 0 alone writes the cache


@dataclass
class View:
    """One search the task measures: queries, the set they search, what is correct, and the
    paraphrased retrieval set when there is one. ``params`` tells views apart in metric rows."""
    query: torch.Tensor
    retrieval: torch.Tensor
    targets: torch.Tensor  # labels (N) or positives mask (N x M)
    params: dict
    item_set: str  # the queries' name: rows with the same item set are paired query by query
    paraphrased: Optional[torch.Tensor] = None
    templates: Optional[torch.Tensor] = None  # T x C x d per-template class embeddings and their paraphrases
    paraphrases: Optional[torch.Tensor] = None


def _views(emb: dict[str, torch.Tensor], data: EvalData) -> list[View]:
    """Classification: images search class prototypes. Retrieval: both directions, like CLIP_benchmark
    (i2t: images search captions; t2i: captions search images). Multiple choice: each image searches
    its own question+choice texts (N x C x d)."""
    images = emb["images"].double()
    units = f"{data.name}:{data.split}[{len(images)}]"
    if data.is_multiple_choice:
        return [View(images, emb["choices"].double(), data.labels, {}, units)]
    if data.is_retrieval:
        captions = emb["captions"].double()
        return [View(images, captions, data.positives, {"direction": "i2t"}, units),
                View(captions, images, data.positives.T.contiguous(), {"direction": "t2i"},
                     f"{data.name}:{data.split}:captions[{len(captions)}]")]
    templates, paraphrases = emb["templates"].double(), emb.get("paraphrases")
    para = prototypes(paraphrases.double()) if paraphrases is not None else None
    return [View(images, prototypes(templates), data.labels, {}, units, para, templates,
                 None if paraphrases is None else paraphrases.double())]


def _scores(query: torch.Tensor, retrieval: torch.Tensor) -> torch.Tensor:
    """Nearest-neighbour scores against one shared set (M x d) or per-query candidates (N x C x d)."""
    return choice_scores(query, retrieval) if retrieval.dim() == 3 else nn_scores(query, retrieval)


def _clean_metrics(query: torch.Tensor, retrieval: torch.Tensor, targets: torch.Tensor,
                   ks: list[int]) -> dict[str, float]:
    scores = _scores(query.double(), retrieval.double())
    if retrieval.dim() == 3:  # multiple choice: accuracy is acc1 over the question's choices
        return {"acc1": topk_accuracy(scores, targets, 1)}
    if targets.dim() == 2:
        return {f"recall@{k}": v for k, v in recall_at_k(scores, targets, tuple(ks)).items()}
    return classification_metrics(scores, targets)


def run(ctx: RunContext) -> None:
    """Entry point (see module docstring): the model, its embeddings of the evaluation set, the gap, then each
    shift mode on each view."""
    cfg, run = ctx.cfg, ctx.run
    shifts = _shifts(cfg.task)
    bundle, weights, history = _model(ctx)
    run.set_model(bundle.name, bundle.source, bundle.n_params, weights=weights)
    data = _data(cfg)
    run.set_dataset(data.name, data.split, len(data.images))
    if history:
        _log_dynamics(run, history)
    views = _views(_embeddings(ctx, bundle, weights, data), data)
    if cfg.task.perturbations.get("paraphrase") and views[0].paraphrased is None:
        raise ConfigError(f"{data.name} has no paraphrase table; set task.perturbations.paraphrase=[] "
                          "or give zeroshot.classes a class set with 'paraphrases'")
    _log_gap(run, views[0].query, views[0].retrieval, list(cfg.task.orthogonality_k), seed=ctx.derive("gap_null"))
    if hasattr(bundle.model, "logit_scale"):  # the learned temperature's inverse (CLIP: 100 at its clamp)
        run.log_metric("logit_scale", float(bundle.model.logit_scale.exp()), higher_is_better=False)
    device = resolve_device(cfg.task.device, "task.device")
    for shift in shifts.values():
        for view in views:
            _evaluate(ctx, shift, view, device, f"{bundle.name} on {data.name}")


def _shifts(t: DictConfig) -> dict[str, GapShift]:
    """The gap shift of each ``task.modes``, its settings checked before any model or data is loaded."""
    try:
        shifts = {mode: GapShift(mode, str(t.subspace), t.renormalize) for mode in t.modes}
        Perturbation("gaussian", 1.0, t.gaussian_convention)
    except ValueError as e:
        raise ConfigError(f"task: {e}") from None
    return shifts


def _data(cfg: DictConfig) -> EvalData:
    z = cfg.zeroshot
    return load_eval_data(z.name, split=z.split, n=z.n, root=z.root, data_dir=cfg.paths.data_dir,
                          classes=z.classes, captions_file=z.captions_file, download=z.download)


def _evaluate(ctx: RunContext, shift: GapShift, view: View, device: str, title: str) -> None:
    """Clean metrics and robustness of one view under one shift mode over the alpha sweep."""
    run, t = ctx.run, ctx.cfg.task
    base = {"mode": shift.mode, **view.params}
    direction = shift.direction(view.query, view.retrieval)  # float64; shared by clean metrics and sweeps
    if shift.mode == "paper" and float(direction.norm()) < 1e-9 * float(gap_vector(view.query, view.retrieval).norm()):
        log.warning("paper mode %s: the retrieval set's %s subspace spans the whole gap (g' = 0), so no alpha moves "
                    "anything; choose task.subspace=k=<int> below its rank", view.params or "", shift.subspace)
    clean_rows, before = [], None
    if shift.mode == "paper" and view.retrieval.dim() == 2:
        kappa = gap_geometry(view.query, view.retrieval, direction)
        clean_rows += [{"metric": "gap_geometry", "value": kappa, "params": base, "n": len(view.query)},
                       {"metric": "flip_reduction_predicted", "value": predicted_flip_reduction(kappa),
                        "params": base, "n": len(view.query)}]
    for alpha in t.alphas:
        q, r = shift.apply(view.query, view.retrieval, alpha, direction)
        pred = _scores(q, r).argmax(-1)
        before = pred if before is None else before
        params = {**base, "alpha": alpha}
        clean_rows.append({"metric": "gap_norm_after", "value": float(gap_vector(q, r).norm()),
                           "params": params, "n": len(q), "higher_is_better": False})
        clean_rows.append({"metric": "clean_predictions_changed", "value": int((pred != before).sum()),
                           "params": params, "n": len(q), "higher_is_better": False})
        for metric, value in _clean_metrics(q, r, view.targets, list(t.retrieval_ks)).items():
            clean_rows.append({"metric": metric, "value": value, "params": params, "n": len(q)})
    run.log_metrics(clean_rows)
    for kind, levels in t.perturbations.items():
        if not levels or (kind == "paraphrase" and view.paraphrased is None):
            continue
        # one noise draw per kind, shared by every mode and view size: modes are compared on paired draws
        rows = robustness_sweep(view.query, view.retrieval, view.targets, alphas=list(t.alphas), shift=shift,
                                perturbation=kind, levels=list(levels), trials=t.trials,
                                seed=ctx.derive("robustness", kind),
                                paraphrased=view.paraphrased, convention=t.gaussian_convention,
                                direction=direction, device=device)
        run.log_metrics(robustness_rows(rows, base, kind, view.item_set, with_items=shift.mode == "paper"))
        suffix = "".join(f"_{v}" for v in view.params.values())
        run.save_figure(f"alpha_sweep_{shift.mode}{suffix}_{kind}",
                        plots.alpha_sweep(rows, f"{title}: {kind}, {shift.mode} shift {suffix.strip('_')}"))
    if shift.mode == "paper" and view.templates is not None and view.paraphrases is not None:
        per_view = paraphrase_rows(view.query, view.templates, view.paraphrases, view.targets, list(t.alphas),
                                   str(t.subspace), ctx.derive("paraphrase"))
        run.log_metrics(paraphrase_template_rows(per_view, base, view.item_set))
    if not view.params and view.retrieval.dim() == 2:  # the 2-D picture of the classification view
        q1, r1 = shift.apply(view.query, view.retrieval, 1.0, direction)
        sub = torch.randperm(len(view.query), generator=ctx.generator("scatter"))[:t.n_scatter]
        run.save_figure(f"modalities_2d_{shift.mode}", plots.modalities_2d(view.query[sub], view.retrieval, q1[sub], r1,
                                                                           f"{title}: {shift.mode} shift, alpha=1"))


def _log_gap(run: Any, query: torch.Tensor, retrieval: torch.Tensor, ks: list[int], seed: int) -> None:
    """||g|| and its random-halves reference; per modality and k, the share of ||g||^2 outside the top-k PCs
    beside the same share for random directions of the same dimension (the null: 1 - k/d on average)."""
    g = gap_vector(query, retrieval)
    null_mean, _ = permutation_null_gap(query, retrieval, seed=seed)
    rows = [{"metric": "gap_norm", "value": float(g.norm()), "n": len(query), "higher_is_better": False},
            {"metric": "gap_norm_null", "value": null_mean, "n": len(query), "higher_is_better": False}]
    for modality, points in (("query", query), ("retrieval", retrieval.reshape(-1, retrieval.shape[-1]))):
        for k in ks:
            if k <= min(points.shape) - 1:  # at most rank(centred points) components are meaningful
                params = {"modality": modality, "k": k}
                rows.append({"metric": "gap_orthogonality", "value": gap_orthogonality(g, points, k),
                             "params": params, "n": len(points)})
                rows.append({"metric": "gap_orthogonality_null", "value": random_orthogonality(points, k, seed=seed),
                             "params": params, "n": len(points)})
    run.log_metrics(rows)


def _log_dynamics(run: Any, history: list[dict]) -> None:
    """Per-step gap dynamics, plus ||g|| over the random-halves reference at the first and last step
    (the gap forms if it starts near 1x and ends well above it)."""
    rows = [{"metric": f"train_{k}", "value": v, "params": {"step": int(h["step"])}, "split": "train",
             "higher_is_better": k != "doubly_stochastic_error"}
            for h in history for k, v in h.items() if k != "step" and math.isfinite(v)]
    if "gap_norm_null" in history[0]:
        for name, h, higher in (("train_gap_over_null_init", history[0], False),
                                ("train_gap_over_null_final", history[-1], True)):
            rows.append({"metric": name, "value": h["gap_norm"] / h["gap_norm_null"], "params": {"step": int(h["step"])},
                         "split": "train", "higher_is_better": higher})
    run.log_metrics(rows)
    run.save_json("gap_dynamics", history)
    run.save_figure("gap_dynamics", plots.gap_dynamics(history))
