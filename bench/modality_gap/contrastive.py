"""Train bench's small CLIP from scratch on MNIST digits paired with template captions, with
open_clip's own contrastive loss, and record how the modality gap forms (paper, section on
dynamics): ||g||, each modality's variance along g, and how doubly stochastic the batch similarity
matrix is. The trained model is cached as an open_clip ``local-dir:`` folder and reused.
"""
from __future__ import annotations

import json
import logging
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from bench.cache import Cache, as_cache
from bench.errors import TrainingError
from bench.modality_gap.clip_models import (SMALL_CLIP, SMALL_CLIP_MINILM, WEIGHTS_FILE, ClipBundle,
                                            export_open_clip_dir, load_clip)
from bench.modality_gap.config import ClipTrainConfig
from bench.modality_gap.gap import permutation_null_gap
from bench.modality_gap.zeroshot import ClassSet, load_class_set

log = logging.getLogger(__name__)
VARIANTS = {"scratch": SMALL_CLIP, "locked_text": SMALL_CLIP_MINILM}
INITS = ("default", "isotropic")
RECIPE_VERSION = 2  # 2: no weight decay on gains, biases and logit_scale (open_clip's recipe)
PROBE = 512  # pairs on which the gap dynamics are measured (and the isotropic init centres the towers)


@dataclass(frozen=True)
class TrainSpec:
    """What defines a trained embedded CLIP (its cache key)."""
    variant: str = "scratch"  # scratch | locked_text (pretrained MiniLM text tower, frozen)
    init: str = "isotropic"  # isotropic (both towers' outputs centred at init) | default (open_clip's init)
    epochs: int = 20
    batch_size: int = 128
    optim: dict[str, Any] = field(default_factory=lambda: asdict(ClipTrainConfig())["optim"])  # clip.train.optim
    scheduler: dict[str, Any] | None = field(default_factory=lambda: ClipTrainConfig().scheduler)
    n_train: int = 4000
    dynamics_every: int = 10  # steps between gap-dynamics measurements
    seed: int = 0

    @property
    def arch(self) -> str:
        if self.variant not in VARIANTS:
            raise ValueError(f"embedded CLIP variant must be one of {sorted(VARIANTS)}, not {self.variant!r}")
        if self.init not in INITS:
            raise ValueError(f"embedded CLIP init must be one of {INITS}, not {self.init!r}")
        if self.init == "isotropic" and self.variant != "scratch":
            raise ValueError("init=isotropic re-centres a tower trained from scratch; use variant=scratch")
        return VARIANTS[self.variant]


def training_captions(class_set: ClassSet) -> list[list[str]]:
    """Per class, every template filled with every name of the class ("a handwritten 7", ...)."""
    out = []
    for i, name in enumerate(class_set.classnames):
        names = dict.fromkeys((name,) + (class_set.aliases[i] if class_set.aliases else ()))
        out.append([t.format(c=n) for t in class_set.templates for n in names])
    return out


class CaptionedImages(Dataset):
    """(image, tokens of a random caption of its class): a fresh caption every time it is drawn."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, tokens: list[torch.Tensor]) -> None:
        self.images, self.labels, self.tokens = images, labels, tokens

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        options = self.tokens[int(self.labels[i])]
        return self.images[i], options[torch.randint(len(options), ()).item()]


class ContrastiveCLIP(L.LightningModule):
    """Symmetric InfoNCE (open_clip's ClipLoss) with the model's learnable temperature; ``optim`` and
    ``scheduler``: the ``clip.train`` nodes (built by :func:`bench.training.configure_optimizers`)."""

    def __init__(self, model: torch.nn.Module, optim: dict[str, Any], scheduler: dict[str, Any] | None) -> None:
        super().__init__()
        from open_clip.loss import ClipLoss

        self.model, self.optim_cfg, self.scheduler_cfg = model, optim, scheduler
        self.loss = ClipLoss()

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, tokens = batch
        out = self.model(images, tokens)
        img, txt, scale = (out["image_features"], out["text_features"], out["logit_scale"]) if isinstance(out, dict) else out[:3]
        loss = self.loss(img, txt, scale)
        if not torch.isfinite(loss):
            raise TrainingError(f"contrastive loss became {loss.item()} at step {self.global_step}; "
                                f"lower clip.train.optim.lr (now {self.optim_cfg['lr']})")
        self.log("train/clip_loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        with torch.no_grad():  # CLIP clamps the temperature at 100
            self.model.logit_scale.clamp_(0, 4.6052)

    def configure_optimizers(self):
        from bench.training import configure_optimizers

        # open_clip's recipe: no weight decay on gains, biases and the temperature (decaying
        # logit_scale pulls it towards 1, i.e. towards a high temperature that closes the gap);
        # the other parameters take clip.train.optim.weight_decay
        named = [(n, p) for n, p in self.model.named_parameters() if p.requires_grad]
        plain = [p for n, p in named if p.ndim < 2 or "logit_scale" in n]
        decayed = [p for n, p in named if not (p.ndim < 2 or "logit_scale" in n)]
        return configure_optimizers(self, [{"params": decayed}, {"params": plain, "weight_decay": 0.0}],
                                    self.optim_cfg, self.scheduler_cfg, "clip.train")


@torch.no_grad()
def centre_towers(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor) -> None:
    """Isotropic initialisation: shift each tower's last LayerNorm bias so its (unnormalised) output
    has zero mean on the probe pairs. A random-init network maps every input into a narrow cone, so
    the two modalities start far apart; centred, both start spread around the origin, their gap at the
    level of two random halves of one cloud, and any gap that appears is made by training.

    The output is ``(LN(x) w + b) P``: subtracting ``mean(f) P^+`` from ``b`` removes ``mean(f)``
    exactly when P has full column rank (width >= embed dim)."""
    was_training = model.training
    model.eval()
    visual = model.visual
    f_img = model.encode_image(images)
    visual.ln_post.bias -= f_img.mean(0) @ torch.linalg.pinv(visual.proj)
    f_txt = model.encode_text(tokens)
    model.ln_final.bias -= f_txt.mean(0) @ torch.linalg.pinv(model.text_projection)
    model.train(was_training)


@torch.no_grad()
def gap_state(model: torch.nn.Module, images: torch.Tensor, tokens: torch.Tensor) -> dict[str, float]:
    """The gap's state on one probe batch of pairs: ||g||, each modality's variance along g, and the
    mean deviation from 1 of the column sums of the row-softmaxed similarity matrix (0 = doubly stochastic)."""
    was_training = model.training
    model.eval()
    img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
    txt = torch.nn.functional.normalize(model.encode_text(tokens), dim=-1)
    model.train(was_training)
    g = img.mean(0) - txt.mean(0)
    u = g / g.norm().clamp_min(1e-12)
    probs = (model.logit_scale.exp() * img @ txt.T).softmax(dim=1)
    null_mean, _ = permutation_null_gap(img, txt)
    return {"gap_norm": float(g.norm()), "gap_norm_null": null_mean, "image_var_along_gap": float((img @ u).var()),
            "text_var_along_gap": float((txt @ u).var()),
            "doubly_stochastic_error": float((probs.sum(0) - 1).abs().mean()),
            "logit_scale": float(model.logit_scale.exp())}


class GapDynamics(L.Callback):
    """Measures :func:`gap_state` on a fixed probe batch before training and every few steps."""

    def __init__(self, images: torch.Tensor, tokens: torch.Tensor, every: int) -> None:
        self.images, self.tokens, self.every = images, tokens, every
        self.history: list[dict[str, float]] = []

    def _measure(self, trainer: L.Trainer, pl_module: ContrastiveCLIP) -> None:
        state = {"step": trainer.global_step,
                 **gap_state(pl_module.model, self.images.to(pl_module.device), self.tokens.to(pl_module.device))}
        self.history.append(state)
        if trainer.logger:
            trainer.logger.log_metrics({f"gap_dynamics/{k}": v for k, v in state.items() if k != "step"},
                                       step=trainer.global_step)

    def on_train_start(self, trainer: L.Trainer, pl_module: ContrastiveCLIP) -> None:
        self._measure(trainer, pl_module)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: ContrastiveCLIP, *args: Any) -> None:
        if trainer.global_step % self.every == 0:
            self._measure(trainer, pl_module)

    def on_train_end(self, trainer: L.Trainer, pl_module: ContrastiveCLIP) -> None:
        if not self.history or self.history[-1]["step"] != trainer.global_step:
            self._measure(trainer, pl_module)

    # The history lives in the checkpoints, so a resumed training keeps its early dynamics.
    def state_dict(self) -> dict:
        return {"history": list(self.history)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.history = list(state_dict.get("history", []))


def _preprocessed_mnist(bundle: ClipBundle, split: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    from bench.modality_gap.datasets import load_eval_data

    data = load_eval_data("mnist", split=split, n=n)
    return torch.stack([bundle.preprocess(data.images[i]) for i in range(len(data.images))]), data.labels


def train_embedded_clip(spec: TrainSpec, cache: Cache | str | Path, trainer_cfg: Any = None,
                        run: Any = None) -> tuple[Path, list[dict[str, float]]]:
    """Train (or reuse from the cache) the embedded CLIP; return its open_clip ``local-dir:`` folder and
    the gap dynamics (kept in the weights' metadata, so one sha256-checked file holds both)."""
    from safetensors import safe_open

    from bench.training import build_trainer, fit, optimizer_node, scheduler_node, weight_settings

    optimizer_node(spec.optim, "clip.train.optim")  # a wrong node fails before any data or training
    scheduler_node(spec.scheduler, "clip.train.scheduler")
    cache = as_cache(cache)
    # the key: the spec, the training recipe's version (a recipe change retrains) and the trainer
    # settings that change the weights (precision, the global batch)
    key = {**asdict(spec), "recipe": RECIPE_VERSION, "trainer": weight_settings(trainer_cfg)}
    folder = cache.path("modality_gap/clip", key, suffix="", name=spec.arch)
    if cache.verify(folder / WEIGHTS_FILE):
        log.info("embedded CLIP from cache %s", folder)
        with safe_open(str(folder / WEIGHTS_FILE), framework="pt") as f:
            return folder, json.loads(f.metadata()["dynamics"])
    L.seed_everything(spec.seed, verbose=False)
    bundle = load_clip(spec.arch, None)
    model = bundle.model.train()
    if spec.variant == "locked_text":
        model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
    class_set = load_class_set("mnist")
    captions = training_captions(class_set)
    tokens = [bundle.tokenizer(c) for c in captions]
    images, labels = _preprocessed_mnist(bundle, "train", spec.n_train)
    gen = torch.Generator().manual_seed(spec.seed)
    probe = torch.randperm(len(labels), generator=gen)[:PROBE]
    probe_tokens = torch.stack([tokens[int(labels[i])][torch.randint(len(tokens[int(labels[i])]), (), generator=gen)]
                                for i in probe])
    if spec.init == "isotropic":
        centre_towers(model, images[probe], probe_tokens)
    dynamics = GapDynamics(images[probe], probe_tokens, spec.dynamics_every)
    loader = DataLoader(CaptionedImages(images, labels, tokens), batch_size=spec.batch_size, shuffle=True,
                        drop_last=True, generator=torch.Generator().manual_seed(spec.seed))
    overrides = {"max_epochs": spec.epochs, "max_steps": -1, "limit_train_batches": None, "num_sanity_val_steps": 0}
    ckpt = folder / "checkpoint"  # resumable; removed once the model is exported
    trainer = build_trainer(trainer_cfg, run, callbacks=[dynamics], checkpoint_dir=ckpt, log_prefix="clip",
                            **overrides)
    fit(trainer, ContrastiveCLIP(model, spec.optim, spec.scheduler), checkpoint_dir=ckpt, train_dataloaders=loader)
    if trainer.is_global_zero:
        meta = {"train_spec": json.dumps(asdict(spec)), "dynamics": json.dumps(dynamics.history)}
        export_open_clip_dir(model, spec.arch, folder, metadata=meta)
        cache.seal(folder / WEIGHTS_FILE)  # the weights go last: a sealed folder is complete
        shutil.rmtree(ckpt, ignore_errors=True)
    trainer.strategy.barrier()
    return folder, dynamics.history
