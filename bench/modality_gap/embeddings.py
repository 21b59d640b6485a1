"""Embedding extraction (Lightning predict: batched, AMP, sharded over devices) and its cache.

Each rank encodes its shard and remembers the dataset index of every row. At the end of the
epoch the shards are gathered once; rows are placed by index, so the duplicates a distributed
sampler adds to even out shards are dropped and a missing row is an error, not a silent hole.
The cache is one safetensors file per (model, weights, dataset, split, templates) key, through
:mod:`bench.cache` (the key names the file; a sha256 beside it is checked on every read).
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from bench.cache import Cache, as_cache, sha256_file


class _Indexed(Dataset):
    """Yields ``(index, transformed item)`` so every embedding row knows where it belongs."""

    def __init__(self, items: Sequence[Any], transform: Callable) -> None:
        self.items, self.transform = items, transform

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, i: int) -> tuple[int, Any]:
        return i, self.transform(self.items[i])


class EncodeModule(L.LightningModule):
    """Runs a CLIP tower (``kind`` image or text) under ``trainer.predict``; rows come out unit-norm."""

    def __init__(self, model: torch.nn.Module, kind: str, n: int) -> None:
        super().__init__()
        if kind not in ("image", "text"):
            raise ValueError(f"kind must be 'image' or 'text', not {kind!r}")
        self.model, self.kind, self.n = model, kind, n
        self._idx: list[torch.Tensor] = []
        self._emb: list[torch.Tensor] = []
        self.result: torch.Tensor | None = None

    def predict_step(self, batch: Any, batch_idx: int) -> None:
        idx, x = batch
        emb = self.model.encode_image(x) if self.kind == "image" else self.model.encode_text(x)
        self._idx.append(idx)
        self._emb.append(emb.float() / emb.float().norm(dim=-1, keepdim=True))

    def on_predict_epoch_end(self) -> None:
        idx = torch.cat(self._idx).to(self.device) if self._idx else torch.zeros(0, dtype=torch.long, device=self.device)
        emb = torch.cat(self._emb) if self._emb else torch.zeros(0, 0, device=self.device)
        if self.trainer.world_size > 1:
            idx, emb = _gather_ragged(self, idx, emb)
        out = torch.full((self.n, emb.shape[-1]), float("nan"))
        out[idx.cpu()] = emb.cpu()  # duplicates from padding write identical rows to the same place
        missing = torch.isnan(out[:, 0]).sum().item()
        if missing:
            raise RuntimeError(f"embedding extraction lost {missing} of {self.n} rows")
        self.result = out


def _gather_ragged(module: L.LightningModule, idx: torch.Tensor, emb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """all_gather shards of different lengths: pad to the longest, gather once, drop the padding."""
    lengths = module.all_gather(torch.tensor(len(idx), device=module.device)).flatten()
    longest = int(lengths.max())
    pad = longest - len(idx)
    idx = torch.cat([idx, idx.new_full((pad,), -1)])
    emb = torch.cat([emb, emb.new_zeros(pad, emb.shape[-1])])
    all_idx, all_emb = module.all_gather(idx), module.all_gather(emb)  # world x longest (x d)
    keep = all_idx.flatten() >= 0
    return all_idx.flatten()[keep], all_emb.reshape(-1, emb.shape[-1])[keep]


def extract(model: torch.nn.Module, kind: str, items: Sequence[Any], transform: Callable, *,
            trainer_kwargs: dict, batch_size: int = 256, num_workers: int = 0) -> torch.Tensor:
    """Encode every item (N x d, unit rows) with ``trainer.predict`` on the configured devices and precision."""
    from bench.training import build_trainer

    module = EncodeModule(model.eval(), kind, len(items))
    loader = DataLoader(_Indexed(items, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    trainer = build_trainer(trainer_kwargs)
    trainer.predict(module, loader, return_predictions=False)
    return module.result


def trainer_kwargs(trainer_cfg: Any) -> dict:
    """The Trainer arguments that matter for prediction (devices, strategy, AMP precision)."""
    keys = ("accelerator", "devices", "num_nodes", "strategy", "precision", "enable_progress_bar")
    return {k: trainer_cfg[k] for k in keys if k in trainer_cfg and trainer_cfg[k] is not None}


# -- cache ------------------------------------------------------------------------------------------
def file_fingerprint(path: str | Path) -> str:
    """sha256 of a weights file (its identity for cache keys, whatever its name or mtime)."""
    return sha256_file(path)[:20]


def cache_path(cache: Cache | str | Path, key: dict) -> Path:
    """Where the embeddings of ``key`` are cached."""
    return as_cache(cache).path("modality_gap/embeddings", key)


def cached(cache: Cache | str | Path, key: dict, build: Callable[[], dict[str, torch.Tensor]],
           write: bool = True) -> dict[str, torch.Tensor]:
    """``build()``'s tensors, from the cache when an intact entry exists (sha256-checked, :mod:`bench.cache`)."""
    return as_cache(cache).tensors("modality_gap/embeddings", key, build,
                                   metadata={"key": json.dumps(key, sort_keys=True)}, write=write)
