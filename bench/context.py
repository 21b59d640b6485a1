"""The run context a task receives, ``run(ctx)``: everything one run shares, in one object.

    ctx.cfg, ctx.run                  the composed config and the run being recorded
    ctx.derive("scatter")             a seed for one purpose (:func:`bench.seeding.derive` of the run's seed)
    ctx.generator("scatter")          a CPU ``torch.Generator`` for one purpose (the global RNG untouched)
    ctx.cache                         the task-versioned cache (:mod:`bench.cache`)
    ctx.writes                        whether this process writes results and the cache (rank 0)
    ctx.trained(name, kind, key, train, seed=..., payload=..., trainer=...)
                                      the one train-and-cache path: a model trained resumably with the run's
                                      Trainer, cached, written by rank 0 alone (:meth:`RunContext.trained`)

Outside a run (library code, tests) a context is built from its parts: ``RunContext(Cache(folder))``.
"""
from __future__ import annotations

import logging
import re
import shutil
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

from bench.cache import Cache
from bench.seeding import derive, seed_everything, torch_generator

log = logging.getLogger("bench")
T = TypeVar("T")


@dataclass(frozen=True)
class Payload(Generic[T]):
    """How a trained value is kept in the cache: ``save(value, path)`` writes the entry at ``path``
    atomically (a file, or ``folder/<file>`` with the rest of its folder written first), ``load(path)``
    reads it back. ``folder``: the entry is a folder named by its key holding ``path`` (an open_clip
    ``local-dir:`` model); else ``path`` is one file ending in ``suffix``."""
    save: Callable[[T, Path], None]
    load: Callable[[Path], T]
    suffix: str = ".safetensors"
    folder: str | None = None


def tensors_payload(metadata: Callable[[], dict[str, str]] | None = None) -> Payload[dict[str, Any]]:
    """A dict of tensors (a state dict) kept as one safetensors file; ``metadata()``: its string metadata,
    asked for when it is saved (e.g. how long the training took)."""
    from safetensors.torch import load_file, save_file

    from bench.atomic import atomic_save

    def save(tensors: dict[str, Any], path: Path) -> None:
        plain = {k: v.detach().cpu().contiguous() for k, v in tensors.items()}
        atomic_save(path, lambda tmp: save_file(plain, tmp, metadata=metadata() if metadata else None))

    return Payload(save, lambda path: load_file(str(path)))


@dataclass
class Training:
    """One training in progress, handed to the ``train`` function of :meth:`RunContext.trained`: its
    :meth:`fit` trains a module with the run's Trainer, resumably in :attr:`checkpoint_dir`; :attr:`entry`
    is where the value will be cached (a folder payload's file)."""
    ctx: RunContext
    name: str
    entry: Path
    checkpoint_dir: Path
    trainer: dict[str, Any]

    def fit(self, module: Any, callbacks: tuple | list = (), **data: Any) -> Any:
        """``trainer.fit(module, **data)`` (``datamodule=`` or ``train_dataloaders=``), resumed from this
        training's checkpoint when an earlier attempt left one; returns the Trainer."""
        from bench.training import build_trainer, fit

        trainer = build_trainer(self.ctx.trainer_cfg, self.ctx.run, callbacks=callbacks,
                                checkpoint_dir=self.checkpoint_dir, log_prefix=self.name, **self.trainer)
        fit(trainer, module, checkpoint_dir=self.checkpoint_dir, **data)
        return trainer


@dataclass
class RunContext:
    """What one run shares (see the module docstring). ``trainer_cfg``: the ``trainer`` group (partial:
    the rest are :class:`bench.config.TrainerConfig`'s defaults); ``run``: the :class:`bench.store.Run`
    being recorded (None outside a run: no logger, and rank 0 writes)."""
    cache: Cache
    seed: int = 0
    trainer_cfg: Any = None
    run: Any = None
    cfg: Any = field(default=None, repr=False)

    @classmethod
    def of(cls, cfg: Any, run: Any) -> RunContext:
        """The context of a composed config and its run (what :func:`bench.cli.execute` hands a task)."""
        return cls(Cache.from_config(cfg), int(cfg.seed), cfg.trainer, run, cfg)

    # -- seeds ------------------------------------------------------------------------------
    def derive(self, *purpose: Any) -> int:
        """The seed of ``purpose`` in this run (one purpose per random stream)."""
        return derive(self.seed, *purpose)

    def generator(self, *purpose: Any) -> Any:
        """A CPU ``torch.Generator`` for ``purpose`` in this run."""
        return torch_generator(self.seed, *purpose)

    # -- who writes -------------------------------------------------------------------------
    @property
    def writes(self) -> bool:
        """Whether this process writes results and the cache: rank 0 of a distributed job (or a plain run)."""
        from bench.store import is_rank_zero

        return self.run.is_writer if self.run is not None else is_rank_zero()

    # -- the one train-and-cache path ----------------------------------------------------------
    def trained(self, name: str, kind: str, key: Mapping[str, Any], train: Callable[[Training], T], *,
                seed: int, payload: Payload[T] | None = None, trainer: Mapping[str, Any] | None = None) -> T:
        """The value ``train(training)`` returns, trained once and kept.

        The entry ``kind/<name>-<digest>`` of the cache is keyed by ``key`` (what defines the training:
        its data, model and recipe), the ``trainer`` settings that change weights
        (:func:`bench.training.weight_settings` of the run's trainer under the ``trainer`` overrides) and,
        through the cache, the task's version and the numerics. An intact entry is loaded
        (``payload.load``). Otherwise the global RNG is reseeded with ``seed`` (the model's init and data
        order; pass ``ctx.derive(<purpose>)``), ``train`` runs (its :meth:`Training.fit` resumes from the
        entry's checkpoint folder after an interruption), and the process that :attr:`writes` saves the
        value (``payload.save``, sealed with its sha256) and removes the checkpoints. ``payload=None``: the
        value is not cached (only the checkpoint folder is keyed), e.g. a model scored right away."""
        from bench.training import weight_settings

        from bench.resume import claim, release

        overrides = dict(trainer or {})
        # the seed is the init and data order: part of what the entry holds, whatever the caller's key says
        full_key = {**key, "seed": seed, "trainer": weight_settings(self.trainer_cfg, overrides)}
        path = self._entry(kind, full_key, name, payload)
        if payload is not None and self.cache.verify(path):
            log.info("from cache: %s", path)
            return payload.load(path)
        checkpoint_dir = path.with_name(path.name + ".ckpt")
        if self.writes and payload is not None:
            # waits while another process trains this very entry; if it did, that process cached the model
            if claim(checkpoint_dir) and self.cache.verify(path):  # read it, train nothing
                release(checkpoint_dir)
                shutil.rmtree(checkpoint_dir, ignore_errors=True)
                log.info("from cache (trained by another process meanwhile): %s", path)
                return payload.load(path)
        seed_everything(seed)
        value = train(Training(self, name, path, checkpoint_dir, overrides))
        if self.writes:
            if payload is not None:
                payload.save(value, path)
                self.cache.seal(path)
            shutil.rmtree(checkpoint_dir, ignore_errors=True)
        _barrier()  # the other ranks read the entry only once it is complete
        return value

    def _entry(self, kind: str, key: dict, name: str, payload: Payload | None) -> Path:
        name = re.sub(r"[^\w.+=-]+", "_", name)  # a file name: "extend/resnet20 w0.25" -> "extend_resnet20_w0.25"
        if payload is None:
            return self.cache.path(kind, key, suffix="", name=name)
        if payload.folder is not None:
            return self.cache.path(kind, key, suffix="", name=name) / payload.folder
        return self.cache.path(kind, key, suffix=payload.suffix, name=name)


def _barrier() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.barrier()
