"""Snapshots of the first-layer filters during training, and Stage C's stopping rule."""
from __future__ import annotations

import math

import lightning as L
import torch

from bench.models import first_conv


@torch.no_grad()
def evaluate(module: L.LightningModule, loader) -> tuple[float, float]:
    """Accuracy and mean loss of ``module`` (eval mode) over ``loader``: the training accuracy a stopping
    rule and a validity gate read."""
    was_training = module.training
    module.eval()
    correct = total = 0
    loss = 0.0
    for x, y in loader:
        x, y = x.to(module.device), y.to(module.device)
        logits = module(x)
        loss += float(module._loss(logits, y)) * len(y)
        correct += int((logits.argmax(1) == y).sum())
        total += len(y)
    module.train(was_training)
    return correct / total, loss / total


class FirstLayerRecorder(L.Callback):
    """Keeps a copy of the first conv's weight at step 0, at each step in ``steps``, and at the end."""

    def __init__(self, steps: list[int]) -> None:
        self.steps = set(int(s) for s in steps)
        self.snapshots: dict[int, torch.Tensor] = {}

    def _snap(self, pl_module: L.LightningModule, step: int) -> None:
        self.snapshots[step] = first_conv(pl_module.model).weight.detach().cpu().clone()

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.global_step == 0:
            self._snap(pl_module, 0)

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        if trainer.global_step in self.steps:
            self._snap(pl_module, trainer.global_step)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._snap(pl_module, trainer.global_step)

    # Snapshots live in Lightning checkpoints, so a resumed run still knows W_init.
    def state_dict(self) -> dict:
        return {"snapshots": dict(self.snapshots)}

    def load_state_dict(self, state_dict: dict) -> None:
        self.snapshots.update(state_dict.get("snapshots", {}))


class StoppingRule(FirstLayerRecorder):
    """A stopping rule fixed before any fit is seen, and training to twice its stopping point.

    Every ``check_every`` epochs the whole training set is evaluated (eval mode): the stopping point E
    is the first such epoch whose training accuracy reaches ``train_acc`` (rule ``acc``), or whose
    training loss has not improved on its best by the fraction ``plateau_rel`` for ``plateau_epochs``
    epochs (``plateau``), or ``max_epochs`` (``cap``: the rule never fired). Training then goes on to
    epoch 2E (with ``double``; else it stops at E). The first conv is kept at every read and at 2E, so
    the fit can be read at ceil(E/2) (the last read before it), E and 2E; only those copies live in the
    resume checkpoint (saved every epoch: a copy per epoch would make each save grow with the training's
    length)."""

    def __init__(self, loader, train_acc: float, plateau_epochs: int, plateau_rel: float, max_epochs: int,
                 check_every: int = 1, double: bool = True) -> None:
        super().__init__([])
        self.loader, self.train_acc = loader, train_acc
        self.plateau_epochs, self.plateau_rel, self.max_epochs = plateau_epochs, plateau_rel, max_epochs
        self.check_every, self.double = check_every, double
        self.history: list[tuple[int, float, float]] = []  # (epoch, training accuracy, training loss) per read
        self.epoch_steps: dict[int, int] = {}  # epoch -> global step at its end
        self.stop_epoch: int | None = None
        self.rule = ""

    def _evaluate(self, module: L.LightningModule) -> tuple[float, float]:
        return evaluate(module, self.loader)

    def _fires(self, epoch: int) -> str:
        acc, loss = self.history[-1][1:]
        if acc >= self.train_acc:
            return "acc"
        before = [h[2] for h in self.history if h[0] <= epoch - self.plateau_epochs]
        recent = [h[2] for h in self.history if h[0] > epoch - self.plateau_epochs]
        if before and min(recent) > min(before) * (1 - self.plateau_rel):
            return "plateau"
        return "cap" if epoch >= self.max_epochs else ""

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        self.epoch_steps[epoch] = trainer.global_step
        if self.stop_epoch is None and (epoch % self.check_every == 0 or epoch >= self.max_epochs):
            self._snap(pl_module, trainer.global_step)
            self.history.append((epoch, *self._evaluate(pl_module)))
            self.rule = self._fires(epoch)
            if self.rule:
                self.stop_epoch = epoch
        if self.stop_epoch is not None and epoch >= self.last_epoch:
            self._snap(pl_module, trainer.global_step)
            trainer.should_stop = True

    @property
    def last_epoch(self) -> int:
        """The epoch training ends at once the rule has fired: 2E, or E without ``double``."""
        return (2 if self.double else 1) * self.stop_epoch

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        super().on_train_start(trainer, pl_module)
        # resumed from the checkpoint of the last epoch (a crash after it, before the model was cached):
        # should_stop is not in the checkpoint, so stop again here rather than train an epoch past it
        if self.stop_epoch is not None and trainer.current_epoch >= self.last_epoch:
            trainer.should_stop = True

    def accuracy_at(self, module: L.LightningModule, epoch: int) -> float:
        """Training accuracy at the end of ``epoch``: a read of the rule's, or ``module``'s own at the last epoch."""
        read = {h[0]: h[1] for h in self.history}
        if epoch in read:
            return read[epoch]
        if epoch != max(self.epoch_steps):
            raise ValueError(f"epoch {epoch} was not read by the stopping rule and is not the last")
        return self._evaluate(module)[0]

    def phases(self) -> dict[str, int]:
        """The epoch of each reported point: half (the last read at or before ceil(E/2)), stop (E) and
        double (2E, or the last epoch trained)."""
        if self.stop_epoch is None:
            return {}
        reads = [h[0] for h in self.history if h[0] <= math.ceil(self.stop_epoch / 2)]
        out = {"half": max(reads)} if reads else {}  # no read that early (E = check_every): no half
        out["stop"] = self.stop_epoch
        return out | {"double": min(self.last_epoch, max(self.epoch_steps))} if self.double else out

    def state_dict(self) -> dict:
        return {**super().state_dict(), "history": list(self.history), "epoch_steps": dict(self.epoch_steps),
                "stop_epoch": self.stop_epoch, "rule": self.rule}

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        self.history = [tuple(h) for h in state_dict.get("history", [])]
        self.epoch_steps = {int(k): v for k, v in state_dict.get("epoch_steps", {}).items()}
        self.stop_epoch, self.rule = state_dict.get("stop_epoch"), state_dict.get("rule", "")
