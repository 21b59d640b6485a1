"""``task=modality_gap``: load (or train) a CLIP, cache its embeddings of an evaluation set, then
measure the gap, close it by post-processing over an alpha sweep, and record clean metrics and
robustness under perturbation of the retrieval modality.

    bench experiment=modality_gap/embedded
    bench task=modality_gap clip=vit_b16_openai zeroshot=cifar10 trainer=gpu
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any, Optional

import torch
from omegaconf import DictConfig, OmegaConf

from bench.errors import ConfigError
from bench.seeding import derive, torch_generator
from bench.modality_gap import plots
from bench.modality_gap.clip_models import SMALL_CLIP, SMALL_CLIP_MINILM, ClipBundle, load_clip
from bench.modality_gap.contrastive import TrainSpec, train_embedded_clip
from bench.modality_gap.datasets import EvalData, load_eval_data
from bench.modality_gap.embeddings import cached, extract, file_fingerprint, trainer_kwargs
from bench.modality_gap.gap import GapShift, gap_orthogonality, gap_vector, permutation_null_gap
from bench.modality_gap.metrics import classification_metrics, nn_scores, recall_at_k
from bench.modality_gap.robustness import robustness_sweep
from bench.modality_gap.zeroshot import prototypes

log = logging.getLogger(__name__)


@dataclass
class ClipTrainConfig:
    variant: str = "scratch"
    epochs: int = 3
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.1
    n_train: int = 4000
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


@dataclass
class ModalityGapTaskConfig:
    name: str = "modality_gap"
    alphas: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0, 1.5])
    modes: list[str] = field(default_factory=lambda: ["paper", "symmetric"])
    k: Optional[int] = None
    renormalize: bool = False
    orthogonality_k: list[int] = field(default_factory=lambda: [1, 5, 10])
    perturbations: dict[str, Any] = field(default_factory=lambda: {"gaussian": [0.005, 0.022, 0.04]})
    gaussian_scale: str = "coordinate"
    trials: int = 20
    retrieval_ks: list[int] = field(default_factory=lambda: [1, 5, 10])
    device: str = "auto"
    n_scatter: int = 500


SCHEMAS = {"task": ModalityGapTaskConfig, "clip": ClipConfig, "zeroshot": ZeroShotConfig}


def _model(cfg: DictConfig, run: Any) -> tuple[ClipBundle, str, list[dict] | None]:
    """The model, its weights' identity for cache keys, and the gap dynamics if it was trained here."""
    c = cfg.clip
    if c.pretrained is None and c.name in (SMALL_CLIP, SMALL_CLIP_MINILM):
        train = OmegaConf.to_container(c.train)
        spec = TrainSpec(**train, seed=derive(cfg.seed, "clip", train["variant"]))
        if spec.arch != c.name:
            raise ConfigError(f"clip.train.variant={spec.variant} trains {spec.arch}, but clip.name={c.name}")
        ckpt, history = train_embedded_clip(spec, cfg.paths.cache_dir, cfg.trainer, run)
        return load_clip(c.name, str(ckpt)), f"sha:{file_fingerprint(ckpt)}", history
    if c.pretrained is None:
        raise ConfigError(f"clip.pretrained is null for {c.name}: give an open_clip tag (e.g. openai) or a checkpoint path")
    bundle = load_clip(c.name, c.pretrained, cache_dir=c.cache_dir)
    weights = f"sha:{file_fingerprint(c.pretrained)}" if bundle.source == c.pretrained and "/" in c.pretrained else f"tag:{c.pretrained}"
    return bundle, weights, None


def _embeddings(bundle: ClipBundle, weights: str, data: EvalData, cfg: DictConfig,
                write: bool) -> dict[str, torch.Tensor]:
    """Image, text (per template) and paraphrase embeddings of ``data``, through the cache."""
    kw = trainer_kwargs(cfg.trainer)
    bs = cfg.clip.batch_size
    tokenize = lambda s: bundle.tokenizer([s])[0]  # noqa: E731
    key = {"model": bundle.name, "weights": weights, "dataset": data.name, "split": data.split,
           "n": len(data.images), "zeroshot": OmegaConf.to_container(cfg.zeroshot)}
    if data.is_retrieval:
        key["captions"] = len(data.captions)
    else:
        key["classes"] = data.class_set.digest()

    def build() -> dict[str, torch.Tensor]:
        out = {"images": extract(bundle.model, "image", data.images, bundle.preprocess, trainer_kwargs=kw, batch_size=bs)}
        if data.is_retrieval:
            out["captions"] = extract(bundle.model, "text", data.captions, tokenize, trainer_kwargs=kw, batch_size=bs)
            return out
        cs = data.class_set
        c = len(cs.classnames)
        out["templates"] = extract(bundle.model, "text", cs.prompts(), tokenize, trainer_kwargs=kw,
                                   batch_size=bs).view(len(cs.templates), c, -1)
        if cs.paraphrase_templates:
            out["paraphrases"] = extract(bundle.model, "text", cs.prompts(cs.paraphrase_templates), tokenize,
                                         trainer_kwargs=kw, batch_size=bs).view(len(cs.paraphrase_templates), c, -1)
        return out

    return cached(cfg.paths.cache_dir, key, build, write=write)  # rank 0 alone writes the cache


def _device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("task.device=cuda but no GPU is visible; use task.device=auto or cpu")
    return name


def _clean_metrics(query: torch.Tensor, retrieval: torch.Tensor, data: EvalData, ks: list[int]) -> dict[str, float]:
    scores = nn_scores(query.double(), retrieval.double())
    if data.is_retrieval:
        return {f"recall@{k}": v for k, v in recall_at_k(scores, data.positives, tuple(ks)).items()}
    return classification_metrics(scores, data.labels)


def run(cfg: DictConfig, run: Any) -> None:
    """Entry point (see module docstring)."""
    t = cfg.task
    bundle, weights, history = _model(cfg, run)
    run.set_model(bundle.name, bundle.source, bundle.n_params, weights=weights)
    z = cfg.zeroshot
    data = load_eval_data(z.name, split=z.split, n=z.n, root=z.root, data_dir=cfg.paths.data_dir,
                          classes=z.classes, captions_file=z.captions_file, download=z.download)
    run.set_dataset(data.name, data.split, len(data.images))
    if history:
        _log_dynamics(run, history)
    emb = _embeddings(bundle, weights, data, cfg, write=run.is_writer)
    query = emb["images"].double()
    retrieval = emb["captions"].double() if data.is_retrieval else prototypes(emb["templates"].double())
    targets = data.positives if data.is_retrieval else data.labels
    paraphrases = None
    if "paraphrases" in emb:
        paraphrases = emb["paraphrases"].double()
        paraphrases = paraphrases / paraphrases.norm(dim=-1, keepdim=True)
    if t.perturbations.get("paraphrase") and paraphrases is None:
        raise ConfigError(f"{data.name} has no paraphrase templates; set task.perturbations.paraphrase=[] "
                          "or give zeroshot.classes a class set with paraphrase_templates")
    _log_gap(run, query, retrieval, list(t.orthogonality_k), seed=derive(cfg.seed, "gap_null"))
    device = _device(t.device)
    for mode in t.modes:
        shift = GapShift(mode, t.k, t.renormalize)
        direction = shift.direction(query, retrieval)
        clean_rows = []
        for alpha in t.alphas:
            q, r = shift.apply(query, retrieval, alpha, direction)
            params = {"mode": mode, "alpha": alpha}
            clean_rows.append({"metric": "gap_norm_after", "value": float(gap_vector(q, r).norm()),
                               "params": params, "n": len(q), "higher_is_better": False})
            for metric, value in _clean_metrics(q, r, data, list(t.retrieval_ks)).items():
                clean_rows.append({"metric": metric, "value": value, "params": params, "n": len(q)})
        run.log_metrics(clean_rows)
        for kind, levels in t.perturbations.items():
            if not levels:
                continue
            # one noise draw per kind, shared by both modes: they are compared on paired draws
            rows = robustness_sweep(query, retrieval, targets, alphas=list(t.alphas), shift=shift, perturbation=kind,
                                    levels=list(levels), trials=t.trials, seed=derive(cfg.seed, "robustness", kind),
                                    paraphrases=paraphrases, gaussian_scale=t.gaussian_scale, device=device)
            run.log_metrics(_robustness_rows(rows, mode, kind, len(query)))
            run.save_figure(f"alpha_sweep_{mode}_{kind}", plots.alpha_sweep(rows, f"{bundle.name} on {data.name}: "
                                                                                 f"{kind}, {mode} shift"))
        q1, r1 = shift.apply(query, retrieval, 1.0, direction)
        sub = torch.randperm(len(query), generator=torch_generator(cfg.seed, "scatter"))[:t.n_scatter]
        run.save_figure(f"modalities_2d_{mode}", plots.modalities_2d(query[sub], retrieval, q1[sub], r1,
                                                                     f"{bundle.name} on {data.name}: {mode} shift, alpha=1"))


def _log_gap(run: Any, query: torch.Tensor, retrieval: torch.Tensor, ks: list[int], seed: int) -> None:
    g = gap_vector(query, retrieval)
    null_mean, _ = permutation_null_gap(query, retrieval, seed=seed)
    rows = [{"metric": "gap_norm", "value": float(g.norm()), "n": len(query), "higher_is_better": False},
            {"metric": "gap_norm_null", "value": null_mean, "n": len(query), "higher_is_better": False}]
    for modality, points in (("query", query), ("retrieval", retrieval)):
        for k in ks:
            if k <= min(points.shape) - 1:  # at most rank(centred points) components are meaningful
                rows.append({"metric": "gap_orthogonality", "value": gap_orthogonality(g, points, k),
                             "params": {"modality": modality, "k": k}, "n": len(points)})
    run.log_metrics(rows)


def _robustness_rows(rows: list[dict], mode: str, kind: str, n: int) -> list[dict]:
    out = []
    for r in rows:
        params = {"mode": mode, "alpha": r["alpha"], "perturbation": kind, "level": r["level"], "trials": r["trials"]}
        out.append({"metric": "robustness", "value": r["robustness"], "stderr": r["robustness_stderr"],
                    "params": params, "n": n})
        out.append({"metric": "accuracy", "value": r["accuracy"], "stderr": r["accuracy_stderr"],
                    "params": params, "n": n})
    return out


def _log_dynamics(run: Any, history: list[dict]) -> None:
    rows = [{"metric": f"train_{k}", "value": v, "params": {"step": int(h["step"])}, "split": "train",
             "higher_is_better": k != "doubly_stochastic_error"}
            for h in history for k, v in h.items() if k != "step" and math.isfinite(v)]
    run.log_metrics(rows)
    run.save_json("gap_dynamics", history)
    run.save_figure("gap_dynamics", plots.gap_dynamics(history))
