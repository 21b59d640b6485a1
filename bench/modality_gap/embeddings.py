"""Embedding extraction (Lightning predict: batched, AMP, sharded over devices) and its cache.

Each rank encodes its shard and remembers the dataset index of every row. At the end of the
epoch the shards are gathered once; rows are placed by index, so the duplicates a distributed
sampler adds to even out shards are dropped and a missing row is an error, not a silent hole.
The cache is one safetensors file per (model, weights, dataset, split, templates) key; the key is
stored in the file's metadata and checked on load, so a corrupt or stale file is rebuilt.
"""
from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset

from bench.atomic import atomic_save

log = logging.getLogger(__name__)
CACHE_VERSION = 1


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
    """Encode every item (N x d, unit rows) with ``trainer.predict`` on the configured devices."""
    module = EncodeModule(model.eval(), kind, len(items))
    loader = DataLoader(_Indexed(items, transform), batch_size=batch_size, shuffle=False, num_workers=num_workers)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_model_summary=False, **trainer_kwargs)
    trainer.predict(module, loader, return_predictions=False)
    return module.result


def trainer_kwargs(trainer_cfg: Any) -> dict:
    """The Trainer arguments that matter for prediction (devices, strategy, AMP precision)."""
    keys = ("accelerator", "devices", "num_nodes", "strategy", "precision", "enable_progress_bar")
    return {k: trainer_cfg[k] for k in keys if k in trainer_cfg and trainer_cfg[k] is not None}


# -- cache ------------------------------------------------------------------------------------------
def file_fingerprint(path: str | Path) -> str:
    """sha256 of a weights file (its identity for cache keys, whatever its name or mtime)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()[:20]


def cache_path(cache_dir: str | Path, key: dict) -> Path:
    text = json.dumps({"v": CACHE_VERSION, **key}, sort_keys=True)
    return Path(cache_dir) / "modality_gap" / "embeddings" / f"{hashlib.sha256(text.encode()).hexdigest()[:24]}.safetensors"


def load_cached(path: Path, key: dict) -> dict[str, torch.Tensor] | None:
    """The cached tensors if the file is intact and was built for ``key``; None otherwise."""
    from safetensors import safe_open

    if not path.is_file():
        return None
    try:
        with safe_open(str(path), framework="pt") as f:
            stored = json.loads((f.metadata() or {}).get("key", "null"))
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # noqa: BLE001 - any unreadable file is rebuilt
        log.warning("embedding cache %s is unreadable (%s); rebuilding", path, e)
        return None
    if stored != {"v": CACHE_VERSION, **key}:
        log.warning("embedding cache %s was built for another key; rebuilding", path)
        return None
    if any(not torch.isfinite(t).all() for t in tensors.values() if t.is_floating_point()):
        log.warning("embedding cache %s holds non-finite values; rebuilding", path)
        return None
    return tensors


def cached(cache_dir: str | Path, key: dict, build: Callable[[], dict[str, torch.Tensor]],
           write: bool = True) -> dict[str, torch.Tensor]:
    """``build()``'s tensors, from the cache when a valid entry exists (written atomically otherwise)."""
    from safetensors.torch import save_file

    path = cache_path(cache_dir, key)
    hit = load_cached(path, key)
    if hit is not None:
        log.info("embeddings from cache %s", path)
        return hit
    tensors = {k: v.contiguous() for k, v in build().items()}
    if write:
        meta = {"key": json.dumps({"v": CACHE_VERSION, **key}, sort_keys=True)}
        atomic_save(path, lambda tmp: save_file(tensors, tmp, metadata=meta))
    return tensors
