"""Snapshots of the first-layer filters during training, for profile-versus-time plots."""
from __future__ import annotations

import lightning as L
import torch

from bench.models import first_conv


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
