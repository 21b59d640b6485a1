"""Resumable training: ``last.ckpt`` after every epoch (and every N steps), written atomically.

Lightning's ``ModelCheckpoint(save_top_k=0, save_last=True)`` writes ``last`` only when a top-k
checkpoint is saved, i.e. never before ``fit`` ends, so a killed training started over. This
callback saves the full training state (weights, optimizer, loops, callbacks' state) itself, plus
the random generators, so a training killed after epoch k and re-run continues at epoch k+1 with
the same data order and ends with the same weights as one that was never interrupted. The bench
run's record lists each resumed training and the step it resumed from.
"""
from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

LAST = "last.ckpt"


def _rng_state() -> dict:
    # Plain types and tensors only: checkpoints are loaded with torch.load(weights_only=True).
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "torch": torch.get_rng_state(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, gauss]}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


class ResumeCheckpoint(L.Callback):
    """Keep ``dirpath/last.ckpt`` current: after each training epoch, and every ``every_n_steps``
    optimizer steps when set (a mid-epoch checkpoint: Lightning resumes it at the epoch's start)."""

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None, run: Any = None,
                 name: str = "") -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.run, self.name = run, name

    @property
    def state_key(self) -> str:
        return "bench.ResumeCheckpoint"

    def _save(self, trainer: L.Trainer) -> None:
        path = self.dirpath / LAST
        tmp = self.dirpath / f".{LAST}.tmp"  # the same name on every rank: only rank 0 writes it
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        trainer.save_checkpoint(tmp)  # every rank takes part (barrier); rank 0 writes
        if trainer.is_global_zero:
            os.replace(tmp, path)  # atomic: a kill mid-save leaves the previous checkpoint whole

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if not trainer.sanity_checking:
            self._save(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path and self.run is not None and hasattr(self.run, "note_resumed"):
            self.run.note_resumed(self.name or str(self.dirpath.name), step=trainer.global_step,
                                  epoch=trainer.current_epoch, checkpoint=str(trainer.ckpt_path))

    def state_dict(self) -> dict:
        return {"rng": _rng_state()}

    def load_state_dict(self, state_dict: dict) -> None:
        if "rng" in state_dict:
            _set_rng_state(state_dict["rng"])


def last_checkpoint(checkpoint_dir: str | Path | None) -> str | None:
    """``checkpoint_dir/last.ckpt`` when an earlier attempt left one."""
    last = Path(checkpoint_dir) / LAST if checkpoint_dir else None
    return str(last) if last is not None and last.is_file() else None
