"""Resumable training: ``last.ckpt`` after every epoch (and every N steps), written atomically.

Lightning's ``ModelCheckpoint(save_top_k=0, save_last=True)`` writes ``last`` only when a top-k
checkpoint is saved, i.e. never before ``fit`` ends, so a killed training started over. This
callback saves the full training state (weights, optimizer, loops, callbacks' state) itself, plus
the random generators, so a training killed after epoch k and re-run continues at epoch k+1 with
the same data order and ends with the same weights as one that was never interrupted. The bench
run's record lists each resumed training and the step it resumed from.

A checkpoint folder has one owner at a time (:func:`claim`): the process training into it. Another
process that needs the same training waits for it rather than sharing the folder, so no run resumes,
overwrites or deletes a live run's checkpoint; a folder whose owner died is taken over and resumed.
Each save goes to the writer's own temporary name. A checkpoint that does not load (torn by a full
disk, garbage) or was written with other numerics (another thread count) is discarded with a warning
and the training starts over.
"""
from __future__ import annotations

import atexit
import enum
import logging
import os
import random
import secrets
import time
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch

from bench.cache import numerics
from bench.lock import FileLock

log = logging.getLogger("bench")
LAST = "last.ckpt"
OWNER = "owner.lock"  # inside the folder: removing the folder (once the model is cached) releases it
_claimed: dict[Path, FileLock] = {}


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


# An epoch-end save at most this often (the first epoch's always): an epoch of one full batch would
# otherwise save every step (~10% of a small model's training time). Where it resumes never changes
# the result (a resumed training is bit-identical to an uninterrupted one), only how much is redone.
MIN_SAVE_INTERVAL_S = 10.0


class ResumeCheckpoint(L.Callback):
    """Keep ``dirpath/last.ckpt`` current: after a training epoch (the first, then at most every
    :data:`MIN_SAVE_INTERVAL_S`), and every ``every_n_steps`` optimizer steps when set (a mid-epoch
    checkpoint: Lightning resumes it at the epoch's start)."""

    def __init__(self, dirpath: str | Path, every_n_steps: int | None = None, run: Any = None,
                 name: str = "") -> None:
        self.dirpath = Path(dirpath)
        self.every_n_steps = every_n_steps
        self.run, self.name = run, name
        self._saved_at: float | None = None

    @property
    def state_key(self) -> str:
        return "bench.ResumeCheckpoint"

    def _save(self, trainer: L.Trainer) -> None:
        path = self.dirpath / LAST
        # this writer's own name (only rank 0 writes; the other ranks' names are never created)
        tmp = self.dirpath / f".{LAST}.{os.getpid()}-{secrets.token_hex(4)}.tmp"
        if trainer.is_global_zero:
            self.dirpath.mkdir(parents=True, exist_ok=True)
        try:
            # every rank takes part (barrier); rank 0 writes. The full training state (weights_only=False
            # here means "not only the weights"), said explicitly: Lightning logs a line each time it is not.
            trainer.save_checkpoint(tmp, weights_only=False)
            if trainer.is_global_zero:
                os.replace(tmp, path)  # atomic: a kill mid-save leaves the previous checkpoint whole
            self._saved_at = time.monotonic()
        except BaseException:
            tmp.unlink(missing_ok=True)  # a full disk must not keep a half-written checkpoint
            raise

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        due = self._saved_at is None or time.monotonic() - self._saved_at >= MIN_SAVE_INTERVAL_S
        if trainer.strategy.broadcast(due, src=0):  # every rank takes part in a save: rank 0's clock decides
            self._save(trainer)

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args: Any) -> None:
        if self.every_n_steps and trainer.global_step % self.every_n_steps == 0:
            self._save(trainer)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.ckpt_path and self.run is not None and hasattr(self.run, "note_resumed"):
            self.run.note_resumed(self.name or str(self.dirpath.name), step=trainer.global_step,
                                  epoch=trainer.current_epoch, checkpoint=str(trainer.ckpt_path))

    def state_dict(self) -> dict:
        return {"rng": _rng_state(), "numerics": numerics()}

    def load_state_dict(self, state_dict: dict) -> None:
        if "rng" in state_dict:
            _set_rng_state(state_dict["rng"])


def _config_enums() -> list[type]:
    """bench's config value sets (``enum.Enum`` subclasses defined in bench): a module's hyperparameters
    hold them, so its checkpoint does, and ``weights_only`` loading must know them to resume it."""
    found, todo = [], list(enum.Enum.__subclasses__())
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__.split(".")[0] == "bench":
            found.append(cls)
    return found


def last_checkpoint(checkpoint_dir: str | Path | None, discard: bool = True) -> str | None:
    """``checkpoint_dir/last.ckpt`` when an earlier attempt left one that loads (``weights_only=True``) and was
    written with this process's numerics (threads, CPU kernels, torch: :func:`bench.cache.numerics`). Any
    other is reported in one warning and, with ``discard`` (its owner), deleted: the training starts over."""
    last = Path(checkpoint_dir) / LAST if checkpoint_dir else None
    if last is None or not last.is_file():
        return None
    # process-wide, so Lightning's own weights_only load of this checkpoint accepts them too
    torch.serialization.add_safe_globals(_config_enums())
    try:
        state = torch.load(last, map_location="cpu", weights_only=True)
    except Exception as e:  # a torn zip, garbage bytes, a foreign pickle: never resumed
        reason = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        return _discard(last, f"does not load ({reason})", discard)
    saved = state.get("callbacks", {}).get("bench.ResumeCheckpoint", {}).get("numerics")
    if saved != numerics():  # resumed, it would match neither thread count's bits (None: not bench's, or older)
        written = "records no numerics" if saved is None else f"was written with {saved}"
        return _discard(last, f"{written}, this run computes with {numerics()}", discard)
    return str(last)


def _discard(last: Path, reason: str, discard: bool) -> None:
    log.warning("checkpoint %s %s: %s; training from the start", last, reason,
                "discarded" if discard else "left to its owner")
    if discard:
        last.unlink(missing_ok=True)
    return None


def claim(checkpoint_dir: str | Path, poll_s: float = 1.0) -> bool:
    """Make this process the owner of ``checkpoint_dir``: take its lock, waiting while a live process
    holds it (that process trains the same model into it; when it is done the model is cached). A dead
    owner's lock is broken, and its checkpoint resumed. Held until the folder is removed, training fails
    (:func:`release`) or the process exits. Returns whether it waited for another process."""
    folder = Path(checkpoint_dir)
    lock = _claimed.get(folder) or FileLock(folder / OWNER)
    waited = False
    while (holder := lock.acquire()) is not None:
        if not waited:
            log.info("pid %s on %s is training into %s; waiting for it (its model will then be cached)",
                     holder.get("pid"), holder.get("host"), folder)
            waited = True
        time.sleep(poll_s)
    _claimed[folder] = lock
    return waited


def release(checkpoint_dir: str | Path) -> None:
    """Give up ownership of ``checkpoint_dir``, keeping its checkpoint (a later run resumes it)."""
    lock = _claimed.pop(Path(checkpoint_dir), None)
    if lock is not None:
        lock.release()


@atexit.register
def _release_all() -> None:
    for folder in list(_claimed):
        release(folder)
