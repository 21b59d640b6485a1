"""CLIP's contrastive training as Lightning pieces: the captioned-image pairs and their batching, the
symmetric InfoNCE loss with the learnable temperature, the isotropic init, and the record of how the
modality gap forms (paper, section on dynamics): ||g||, each modality's variance along g, and how doubly
stochastic the batch similarity matrix is. :mod:`bench.modality_gap.clip_training` trains with them.
"""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch.utils.data import Dataset, Sampler

from bench.modality_gap.gap import permutation_null_gap


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
