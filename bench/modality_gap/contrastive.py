"""Train bench's small CLIPs on images paired with template captions of their class, with CLIP's
contrastive loss and learnable temperature, and record how the modality gap forms (paper, section on
dynamics): ||g||, each modality's variance along g, and how doubly stochastic the batch similarity
matrix is. Variants: ``scratch`` (MNIST, both towers from scratch), ``locked_text`` (MNIST, MiniLM text
tower locked) and ``fashion_lit`` (Fashion-MNIST: MiniLM locked, LiT-style, + a ModifiedResNet image
tower from scratch). The trained model is cached as an open_clip ``local-dir:`` folder and reused.
"""
from __future__ import annotations

import json
import logging
import math
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from bench.cache import Cache, as_cache
from bench.errors import TrainingError
from bench.modality_gap.clip_models import (FASHION_CLIP, SMALL_CLIP, SMALL_CLIP_MINILM, WEIGHTS_FILE, ClipBundle,
                                            export_open_clip_dir, load_clip)
from bench.modality_gap.config import ClipTrainConfig
from bench.modality_gap.gap import permutation_null_gap
from bench.modality_gap.zeroshot import ClassSet, load_class_set

log = logging.getLogger(__name__)
VARIANTS = {"scratch": SMALL_CLIP, "locked_text": SMALL_CLIP_MINILM, "fashion_lit": FASHION_CLIP}
TRAIN_DATA = {SMALL_CLIP: "mnist", SMALL_CLIP_MINILM: "mnist", FASHION_CLIP: "fashion_mnist"}  # per architecture
INITS = ("default", "isotropic")
BATCHINGS = ("random", "class_unique")
# 2: no weight decay on gains, biases and logit_scale (open_clip's recipe); 3: a locked text tower runs once
# per caption (eval mode, no dropout) and training reads its pooled output; batching
RECIPE_VERSION = 3
PROBE = 512  # pairs on which the gap dynamics are measured (and the isotropic init centres the towers)


@dataclass(frozen=True)
class TrainSpec:
    """What defines a trained embedded CLIP (its cache key)."""
    variant: str = "scratch"  # scratch | locked_text | fashion_lit (see VARIANTS)
    init: str = "isotropic"  # isotropic (both towers' outputs centred at init) | default (open_clip's init)
    epochs: int = 20
    batch_size: int = 128
    optim: dict[str, Any] = field(default_factory=lambda: asdict(ClipTrainConfig())["optim"])  # clip.train.optim
    scheduler: dict[str, Any] | None = field(default_factory=lambda: ClipTrainConfig().scheduler)
    n_train: int = 4000
    batching: str = "random"  # random | class_unique (contrastive softmax over one image per class)
    init_temperature: float = 0.07  # where the learnable temperature starts (CLIP's 0.07; its clamp is 0.01)
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
        if not 0.01 <= self.init_temperature <= 1:
            raise ValueError(f"init_temperature must be in [0.01, 1] (CLIP clamps it at 0.01), "
                             f"not {self.init_temperature}")
        if self.batching not in BATCHINGS:
            raise ValueError(f"batching must be one of {BATCHINGS}, not {self.batching!r}")
        return VARIANTS[self.variant]


def training_captions(class_set: ClassSet) -> list[list[str]]:
    """Per class, every template filled with every name of the class ("a handwritten 7", ...)."""
    out = []
    for i, name in enumerate(class_set.classnames):
        names = dict.fromkeys((name,) + (class_set.aliases[i] if class_set.aliases else ()))
        out.append([t.format(c=n) for t in class_set.templates for n in names])
    return out


class CaptionedImages(Dataset):
    """(image, id of a random caption of its class): a fresh caption every time it is drawn."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, caption_ids: list[torch.Tensor]) -> None:
        self.images, self.labels, self.caption_ids = images, labels, caption_ids

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        options = self.caption_ids[int(self.labels[i])]
        return self.images[i], options[torch.randint(len(options), ()).item()]


class ClassUniqueBatches(Sampler[list[int]]):
    """Batches of ``batch_size // C`` groups, each group one image of every one of the C classes (in class
    order), so that in a group's contrastive softmax every image has exactly one matching caption. Every
    epoch reshuffles each class and the groups; images beyond the rarest class's count wait for the next."""

    def __init__(self, labels: torch.Tensor, batch_size: int, seed: int) -> None:
        self.by_class = [torch.nonzero(labels == c).flatten() for c in range(int(labels.max()) + 1)]
        self.groups_per_batch = batch_size // len(self.by_class)
        if self.groups_per_batch < 1:
            raise ValueError(f"batching=class_unique needs batch_size >= {len(self.by_class)} (one image per class)")
        self.n_groups = min(len(i) for i in self.by_class)
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return self.n_groups // self.groups_per_batch

    def __iter__(self):
        columns = [i[torch.randperm(len(i), generator=self.gen)[:self.n_groups]] for i in self.by_class]
        groups = torch.stack(columns, 1)[torch.randperm(self.n_groups, generator=self.gen)]  # n_groups x C
        for b in range(len(self)):
            yield groups[b * self.groups_per_batch:(b + 1) * self.groups_per_batch].flatten().tolist()


def contrastive_loss(image: torch.Tensor, text: torch.Tensor, scale: torch.Tensor, group: int = 0) -> torch.Tensor:
    """CLIP's symmetric InfoNCE (open_clip's ``ClipLoss`` on one device) on unit features, over groups of
    ``group`` consecutive pairs (0: the whole batch): pair i of a group is row i's and column i's positive."""
    g = group or len(image)
    img, txt = image.view(-1, g, image.shape[-1]), text.view(-1, g, text.shape[-1])
    logits = scale * img @ txt.transpose(1, 2)
    labels = torch.arange(g, device=image.device).repeat(len(logits))
    ce = torch.nn.functional.cross_entropy
    return (ce(logits.flatten(0, 1), labels) + ce(logits.transpose(1, 2).flatten(0, 1), labels)) / 2


@torch.no_grad()
def locked_text_features(model: torch.nn.Module, tokens: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """A locked Hugging Face text tower's pooled output (before its trainable projection) per caption, in
    eval mode: training reads these instead of running the frozen transformer on every batch (LiT)."""
    text = model.text
    was_training = text.training
    text.eval()
    out = []
    for chunk in tokens.split(batch_size):
        mask = (chunk != text.config.pad_token_id).long()
        out.append(text.pooler(text.transformer(input_ids=chunk, attention_mask=mask), mask))
    text.train(was_training)
    return torch.cat(out)


class ContrastiveCLIP(L.LightningModule):
    """CLIP's contrastive loss with the model's learnable temperature; ``optim`` and ``scheduler``: the
    ``clip.train`` nodes (built by :func:`bench.training.configure_optimizers`). Batches are (images,
    caption ids) into ``captions`` (token rows); ``frozen_text``: a locked tower's pooled output per caption."""

    def __init__(self, model: torch.nn.Module, optim: dict[str, Any], scheduler: dict[str, Any] | None,
                 captions: torch.Tensor | None = None, frozen_text: torch.Tensor | None = None, group: int = 0) -> None:
        super().__init__()
        self.model, self.optim_cfg, self.scheduler_cfg, self.group = model, optim, scheduler, group
        self.register_buffer("captions", captions, persistent=False)
        self.register_buffer("frozen_text", frozen_text, persistent=False)

    def text_features(self, ids: torch.Tensor) -> torch.Tensor:
        """Unit text embeddings of the captions ``ids``."""
        if self.frozen_text is not None:
            out = self.model.text.proj(self.frozen_text[ids])
        else:
            out = self.model.encode_text(self.captions[ids])
        return torch.nn.functional.normalize(out, dim=-1)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        images, ids = batch
        img = torch.nn.functional.normalize(self.model.encode_image(images), dim=-1)
        loss = contrastive_loss(img, self.text_features(ids), self.model.logit_scale.exp(), self.group)
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
def gap_state(clip: ContrastiveCLIP, images: torch.Tensor, ids: torch.Tensor) -> dict[str, float]:
    """The gap's state on one probe batch of pairs (images and caption ids): ||g||, each modality's variance
    along g, and the mean deviation from 1 of the column sums of the row-softmaxed similarity matrix
    (0 = doubly stochastic)."""
    model = clip.model
    was_training = model.training
    model.eval()
    img = torch.nn.functional.normalize(model.encode_image(images), dim=-1)
    txt = clip.text_features(ids)
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

    def __init__(self, images: torch.Tensor, ids: torch.Tensor, every: int) -> None:
        self.images, self.ids, self.every = images, ids, every
        self.history: list[dict[str, float]] = []

    def _measure(self, trainer: L.Trainer, pl_module: ContrastiveCLIP) -> None:
        state = {"step": trainer.global_step,
                 **gap_state(pl_module, self.images.to(pl_module.device), self.ids.to(pl_module.device))}
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


def _preprocessed(bundle: ClipBundle, dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images of ``dataset`` (a fixed subset), through the model's preprocessing."""
    from bench.modality_gap.datasets import load_eval_data

    data = load_eval_data(dataset, split="train", n=n)
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
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / spec.init_temperature))
    dataset = TRAIN_DATA[spec.arch]
    per_class = training_captions(load_class_set(dataset))
    captions = bundle.tokenizer([c for options in per_class for c in options])
    starts = torch.tensor([0] + [len(o) for o in per_class]).cumsum(0).tolist()
    caption_ids = [torch.arange(starts[c], starts[c + 1]) for c in range(len(per_class))]
    frozen_text = None
    if spec.arch in (SMALL_CLIP_MINILM, FASHION_CLIP):  # LiT: the pretrained text tower is locked
        model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
        frozen_text = locked_text_features(model, captions)
    images, labels = _preprocessed(bundle, dataset, spec.n_train)
    gen = torch.Generator().manual_seed(spec.seed)
    probe = torch.randperm(len(labels), generator=gen)[:PROBE]
    probe_ids = torch.stack([ids[torch.randint(len(ids), (), generator=gen)]
                             for ids in (caption_ids[int(labels[i])] for i in probe)])
    clip = ContrastiveCLIP(model, spec.optim, spec.scheduler, captions, frozen_text,
                           group=len(per_class) if spec.batching == "class_unique" else 0)
    if spec.init == "isotropic":
        centre_towers(model, images[probe], captions[probe_ids])
    dynamics = GapDynamics(images[probe], probe_ids, spec.dynamics_every)
    dataset_pairs = CaptionedImages(images, labels, caption_ids)
    if spec.batching == "class_unique":
        loader = DataLoader(dataset_pairs, batch_sampler=ClassUniqueBatches(labels, spec.batch_size, spec.seed))
    else:
        loader = DataLoader(dataset_pairs, batch_size=spec.batch_size, shuffle=True, drop_last=True,
                            generator=torch.Generator().manual_seed(spec.seed))
    overrides = {"max_epochs": spec.epochs, "max_steps": -1, "limit_train_batches": None, "num_sanity_val_steps": 0}
    ckpt = folder / "checkpoint"  # resumable; removed once the model is exported
    trainer = build_trainer(trainer_cfg, run, callbacks=[dynamics], checkpoint_dir=ckpt, log_prefix="clip",
                            **overrides)
    fit(trainer, clip, checkpoint_dir=ckpt, train_dataloaders=loader)
    if trainer.is_global_zero:
        meta = {"train_spec": json.dumps(asdict(spec)), "dynamics": json.dumps(dynamics.history)}
        export_open_clip_dir(model, spec.arch, folder, metadata=meta)
        cache.seal(folder / WEIGHTS_FILE)  # the weights go last: a sealed folder is complete
        shutil.rmtree(ckpt, ignore_errors=True)
    trainer.strategy.barrier()
    return folder, dynamics.history
