"""Training bench's small CLIPs (``clip.train``, :class:`bench.modality_gap.config.ClipTrainConfig`) through
the run's :meth:`~bench.context.RunContext.trained`: images paired with template captions of their class,
CLIP's contrastive loss and learnable temperature (:mod:`bench.modality_gap.contrastive`), the gap's
dynamics recorded on the way. Variants: ``scratch`` (MNIST, both towers from scratch), ``locked_text``
(MNIST, MiniLM text tower locked) and ``fashion_lit`` (Fashion-MNIST: MiniLM locked, LiT-style, + a
ModifiedResNet image tower from scratch). The trained model is cached as an open_clip ``local-dir:`` folder
(the dynamics in its weights' metadata, so one sha256-checked file holds both).
"""
from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from bench.context import Payload, RunContext, Training
from bench.errors import ConfigError
from bench.modality_gap.clip_models import (FASHION_CLIP, SMALL_CLIP, SMALL_CLIP_MINILM, WEIGHTS_FILE, ClipBundle,
                                            export_open_clip_dir, load_clip)
from bench.modality_gap.config import ClipVariant
from bench.modality_gap.contrastive import (CaptionedImages, ClassUniqueBatches, ContrastiveCLIP, GapDynamics,
                                            centre_towers, locked_text_features)
from bench.modality_gap.zeroshot import ClassSet, load_class_set
from bench.seeding import derive, torch_generator

VARIANTS = {ClipVariant.scratch: SMALL_CLIP, ClipVariant.locked_text: SMALL_CLIP_MINILM,
            ClipVariant.fashion_lit: FASHION_CLIP}
TRAIN_DATA = {SMALL_CLIP: "mnist", SMALL_CLIP_MINILM: "mnist", FASHION_CLIP: "fashion_mnist"}  # per architecture
PROBE = 512  # pairs on which the gap dynamics are measured (and the isotropic init centres the towers)


def clip_arch(train: Mapping[str, Any]) -> str:
    """The architecture ``clip.train`` trains, the settings its schema cannot check checked (a
    :class:`ConfigError` naming the fix; the schema checks variant, init and batching)."""
    if train["init"] == "isotropic" and train["variant"] != "scratch":
        raise ConfigError("clip.train: init=isotropic re-centres a tower trained from scratch; use variant=scratch")
    if not 0.01 <= train["init_temperature"] <= 1:
        raise ConfigError(f"clip.train: init_temperature must be in [0.01, 1] (CLIP clamps it at 0.01), "
                          f"not {train['init_temperature']}")
    return VARIANTS[train["variant"]]


@dataclass
class TrainedClip:
    """An embedded CLIP's open_clip ``local-dir:`` folder and the gap dynamics of its training (``model``: the
    trained module, in memory right after training here)."""
    folder: Path
    dynamics: list[dict[str, float]]
    model: torch.nn.Module | None = None


def training_captions(class_set: ClassSet) -> list[list[str]]:
    """Per class, every template filled with every name of the class ("a handwritten 7", ...)."""
    out = []
    for i, name in enumerate(class_set.classnames):
        names = dict.fromkeys((name,) + (class_set.aliases[i] if class_set.aliases else ()))
        out.append([t.format(c=n) for t in class_set.templates for n in names])
    return out


def _preprocessed(bundle: ClipBundle, dataset: str, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` training images of ``dataset`` (a fixed subset), through the model's preprocessing."""
    from bench.modality_gap.datasets import load_eval_data

    data = load_eval_data(dataset, split="train", n=n)
    return torch.stack([bundle.preprocess(data.images[i]) for i in range(len(data.images))]), data.labels


def train_embedded_clip(ctx: RunContext, train: Mapping[str, Any], seed: int) -> TrainedClip:
    """The embedded CLIP ``train`` (the ``clip.train`` node, plain) defines, trained with ``seed`` (or reused
    from the cache)."""
    from bench.training import optimizer_node, scheduler_node

    optimizer_node(train["optim"], "clip.train.optim")  # a wrong node fails before any data or training
    scheduler_node(train["scheduler"], "clip.train.scheduler")
    arch = clip_arch(train)
    key = {**train, "seed": seed}

    def save(trained: TrainedClip, path: Path) -> None:
        meta = {"train_spec": json.dumps(key, sort_keys=True), "dynamics": json.dumps(trained.dynamics)}
        export_open_clip_dir(trained.model, arch, path.parent, metadata=meta)  # the weights last

    def load(path: Path) -> TrainedClip:
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as f:
            return TrainedClip(path.parent, json.loads(f.metadata()["dynamics"]))

    overrides = {"max_epochs": train["epochs"], "max_steps": -1, "limit_train_batches": None,
                 "num_sanity_val_steps": 0}
    return ctx.trained(arch, "modality_gap/clip", key, lambda training: _train(train, seed, arch, training),
                       seed=seed, payload=Payload(save, load, folder=WEIGHTS_FILE), trainer=overrides)


def _train(train: Mapping[str, Any], seed: int, arch: str, training: Training) -> TrainedClip:
    bundle = load_clip(arch, None)
    model = bundle.model.train()
    with torch.no_grad():
        model.logit_scale.fill_(math.log(1 / train["init_temperature"]))
    dataset = TRAIN_DATA[arch]
    per_class = training_captions(load_class_set(dataset))
    captions = bundle.tokenizer([c for options in per_class for c in options])
    starts = torch.tensor([0] + [len(o) for o in per_class]).cumsum(0).tolist()
    caption_ids = [torch.arange(starts[c], starts[c + 1]) for c in range(len(per_class))]
    frozen_text = None
    if arch in (SMALL_CLIP_MINILM, FASHION_CLIP):  # LiT: the pretrained text tower is locked
        model.lock_text_tower(unlocked_layers=0, freeze_layer_norm=True)
        frozen_text = locked_text_features(model, captions)
    images, labels = _preprocessed(bundle, dataset, train["n_train"])
    # one stream per purpose: the global RNG (reseeded with ``seed``: init, caption draws), the probe, the order
    gen = torch_generator(seed, "probe")
    probe = torch.randperm(len(labels), generator=gen)[:PROBE]
    probe_ids = torch.stack([ids[torch.randint(len(ids), (), generator=gen)]
                             for ids in (caption_ids[int(labels[i])] for i in probe)])
    clip = ContrastiveCLIP(model, train["optim"], train["scheduler"], captions, frozen_text,
                           group=len(per_class) if train["batching"] == "class_unique" else 0)
    if train["init"] == "isotropic":
        centre_towers(model, images[probe], captions[probe_ids])
    dynamics = GapDynamics(images[probe], probe_ids, train["dynamics_every"])
    pairs = CaptionedImages(images, labels, caption_ids)
    if train["batching"] == "class_unique":
        loader = DataLoader(pairs, batch_sampler=ClassUniqueBatches(labels, train["batch_size"],
                                                                    derive(seed, "data_order")))
    else:
        loader = DataLoader(pairs, batch_size=train["batch_size"], shuffle=True, drop_last=True,
                            generator=torch_generator(seed, "data_order"))
    training.fit(clip, callbacks=[dynamics], train_dataloaders=loader)
    return TrainedClip(training.entry.parent, dynamics.history, model)
