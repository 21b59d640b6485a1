"""The study's trained models: each variant trained once (resumably, through the run's
:meth:`~bench.context.RunContext.trained`) and kept as what the analyses need, its first-layer filters over
time with its accuracies."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from omegaconf import OmegaConf

from bench.atomic import atomic_save
from bench.context import Payload, RunContext, Training
from bench.errors import ConfigError
from bench.models import build_model, first_conv, n_params
from bench.seeding import derive
from bench.scoring import accuracy
from bench.training import ClassifierModule
from bench.whitening.recording import FirstLayerRecorder, StoppingRule, evaluate
from bench.whitening.variants import Variant


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


def _save(trained: Trained, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {f"step_{s}": w.contiguous() for s, w in trained.snapshots.items()}
    tensors |= {"test_acc": torch.tensor(trained.test_acc, dtype=torch.float64),
                "n_params": torch.tensor(trained.n_params)}
    tensors |= {f"meta_{k}": torch.tensor(v, dtype=torch.float64) for k, v in trained.meta.items()}
    atomic_save(path, lambda tmp: save_file(tensors, tmp))


def _load(path: Path) -> Trained:
    from safetensors.torch import load_file

    t = load_file(str(path))
    snaps = {int(k.removeprefix("step_")): v for k, v in t.items() if k.startswith("step_")}
    meta = {k.removeprefix("meta_"): float(v) for k, v in t.items() if k.startswith("meta_")}
    return Trained(snaps, float(t["test_acc"]), int(t["n_params"]), meta)


PAYLOAD = Payload(_save, _load)


def train_or_load(ctx: RunContext, dm, variant: Variant) -> Trained:
    """Train one variant, or reuse an earlier identical training from the cache (resumable)."""
    cfg = ctx.cfg
    task = OmegaConf.to_container(cfg.task)
    key = {"data": dm.cache_key, "labels": variant.labels, "variant": asdict(variant),  # its loss, optim, batch
           # random labels are one permutation drawn with the data's seed (the run's, not the variant's)
           "label_seed": dm.seed if variant.labels == "random" else None,
           "model": OmegaConf.to_container(cfg.model),
           "recipe": {k: task[k] for k in ("scheduler", "augment", "hflip")},
           "pca_labels_component": cfg.task.pca_labels_component if variant.labels == "pca" else None,
           "train": cfg.task.train, "record_steps": list(cfg.task.record_steps),
           "stopping": task["stopping"] if cfg.task.stopping.enabled else None}
    # with a stopping rule, the rule decides the length: up to twice its cap.
    # No per-epoch validation: nothing selects on it, and test accuracy is measured once at the end.
    epochs = 2 * cfg.task.stopping.max_epochs if cfg.task.stopping.enabled else variant.epochs
    # init and data order: derived by purpose, so two archs at one seed draw independent streams
    seed = derive(variant.seed, "classifier", variant.arch, variant.width, variant.labels)
    return ctx.trained(variant.id, "whitening/trained", key, lambda training: _train(ctx, dm, variant, training),
                       seed=seed, payload=PAYLOAD, trainer={"limit_val_batches": 0, "max_epochs": epochs})


def _train(ctx: RunContext, dm, variant: Variant, training: Training) -> Trained:
    cfg = ctx.cfg
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
    if stop.enabled:
        recorder = StoppingRule(dm.ordered_train_dataloader(), stop.train_acc, stop.plateau_epochs,
                                stop.plateau_rel, stop.max_epochs, stop.check_every, variant.double)
    else:
        recorder = FirstLayerRecorder(list(cfg.task.record_steps))
    module = ClassifierModule(model, dm.num_classes, optim=variant.optim, scheduler=cfg.task.scheduler,
                              loss=variant.loss, augment=cfg.task.augment, hflip=cfg.task.hflip)
    training.fit(module, callbacks=[recorder], train_dataloaders=dm.train_dataloader(variant.batch_size))
    if stop.enabled:
        meta = {"stop_epoch": float(recorder.stop_epoch), f"rule_{recorder.rule}": 1.0}
        for phase, epoch in recorder.phases().items():
            meta |= {f"step_{phase}": float(recorder.epoch_steps[epoch]),
                     f"train_acc_{phase}": recorder.accuracy_at(module, epoch)}
    else:  # the training accuracy at the end: the validity gate of the claims ("the model trained")
        meta = {"step_end": float(max(recorder.snapshots)),
                "train_acc_end": evaluate(module, dm.ordered_train_dataloader())[0]}
    return Trained(recorder.snapshots, accuracy(model, dm.test_dataloader(), dm.num_classes, cfg.trainer),
                   n_params(model), meta)
