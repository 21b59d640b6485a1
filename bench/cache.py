"""One cache for every derived artefact (patch PCAs, trained models, embeddings, CLIP and generator
weights, generated shards): one key rule, one write rule, one integrity check.

- **Key**: ``<cache_dir>/<kind>/[<name>-]<digest><suffix>``, where ``digest`` hashes the kind, the
  cache format, the task's version (its card's: the one code version of every artefact a task caches,
  bumped when its code changes what an entry holds), the caller's ``key`` (the canonical config
  subset that determines the payload) and the numerics (threads, CPU kernels, torch version:
  :func:`numerics`); a changed key is a new entry, never a stale hit.
- **Write**: the payload is written atomically (:mod:`bench.atomic`), then ``<file>.sha256``
  beside it (``sha256sum`` format; for a payload in an entry folder, one line per file of the
  folder, see :func:`covered_files`). A crash between the two leaves a payload without a sidecar,
  which is rebuilt, never trusted.
- **Read**: every read first checks the payload against its sidecar. A mismatch (a flipped
  byte, a torn copy, a missing sidecar) is rebuilt with a one-line warning naming the file, or is
  a :class:`~bench.errors.CacheError` under ``cache.strict=true`` (to investigate instead).
"""
from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from bench.atomic import atomic_save, atomic_write_text
from bench.errors import CacheError

log = logging.getLogger("bench.cache")
CACHE_FORMAT = 2  # bump when the key rule or the sidecar format changes
_ENTRY_FOLDER = re.compile(r"(^|-)[0-9a-f]{24}$")  # a folder named by its key digest (see key_digest)
T = TypeVar("T")


def sha256_file(path: str | Path) -> str:
    """Hex sha256 of a file's bytes (streamed)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def numerics() -> dict[str, Any]:
    """What changes a computed artefact's bits beyond its inputs, on any machine: the CPU threads (the order
    of float sums), the vector kernels torch picked for this CPU, and torch's version. Part of every key, so
    a model trained on 2 threads is never reused by a run on 1, nor one trained with AVX2 kernels on AVX-512."""
    import torch

    return {"threads": torch.get_num_threads(), "cpu": torch.backends.cpu.get_cpu_capability(),
            "torch": str(torch.__version__)}  # a plain str: TorchVersion does not load with weights_only


def key_digest(kind: str, key: dict[str, Any], task_version: str | None = None) -> str:
    """A short stable hash of ``kind``, the task's version, the canonical JSON of ``key`` and this process's
    :func:`numerics` (24 hex characters)."""
    text = json.dumps({"format": CACHE_FORMAT, "kind": kind, "task_version": task_version, "key": key,
                       "numerics": numerics()}, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def sidecar(path: str | Path) -> Path:
    """Where a payload's sha256 lives: ``<file>.sha256`` beside it."""
    path = Path(path)
    return path.with_name(path.name + ".sha256")


def covered_files(path: str | Path) -> list[Path]:
    """The files ``path``'s sidecar covers: ``path`` itself and, when ``path`` sits in an entry folder (a
    ``Cache.path(..., suffix="")``: its name ends in the key digest, e.g. an open_clip folder), every other
    file of that folder (``open_clip_config.json`` is as much the model as its weights). Temporary files
    (a leading dot), sidecars and subfolders (a checkpoint in progress) are not part of the entry."""
    path = Path(path)
    if not _ENTRY_FOLDER.search(path.parent.name):
        return [path]
    others = sorted(p for p in path.parent.iterdir() if p.is_file() and p.name != path.name
                    and not p.name.startswith(".") and not p.name.endswith(".sha256"))
    return [*others, path]


def _read_sidecar(side: Path) -> dict[str, str]:
    """``{file name: sha256}`` of a ``sha256sum``-format sidecar (empty when it is empty or unreadable)."""
    try:
        lines = side.read_text().splitlines()
    except (OSError, UnicodeDecodeError):
        return {}
    return {parts[1].lstrip("*"): parts[0] for line in lines if len(parts := line.split(None, 1)) == 2}


@dataclass(frozen=True)
class Cache:
    """The cache under ``root`` for the task at ``task_version`` (its card's version, part of every key);
    ``strict`` turns a failed integrity check into an error."""
    root: Path
    strict: bool = False
    task_version: str | None = None

    @classmethod
    def from_config(cls, cfg: Any) -> Cache:
        """The cache a composed config describes (``paths.cache_dir``, ``cache.strict``, the task's version)."""
        from bench.tasks import get_task

        cache = cfg.get("cache") if hasattr(cfg, "get") else None
        return cls(Path(cfg.paths.cache_dir), bool(cache.strict) if cache is not None else False,
                   get_task(cfg.task.name).card.version)

    def path(self, kind: str, key: dict[str, Any], suffix: str = ".safetensors", name: str = "") -> Path:
        """The payload path of the entry ``key`` of ``kind`` (``name`` prefixes the file for humans)."""
        return self.root / kind / f"{name + '-' if name else ''}{key_digest(kind, key, self.task_version)}{suffix}"

    def verify(self, path: str | Path) -> bool:
        """True when ``path`` and every other file its sidecar covers (:func:`covered_files`) exist and match
        it. False when it is absent; a present payload that fails the check is reported (one line naming the
        file) and False, or raises under ``strict``."""
        path = Path(path)
        if not path.is_file():
            return False
        side = sidecar(path)
        listed = _read_sidecar(side) if side.is_file() else {}
        problem = None if listed else "has no sha256 beside it"
        for file in covered_files(path):
            if problem is None and file.name not in listed:
                problem = f"has a sha256 that does not cover {file.name} of its folder"
            elif problem is None and listed[file.name] != sha256_file(file):
                problem = "does not match its sha256" if file == path else f"has a torn {file.name} beside it"
        if problem is None:
            return True
        if self.strict:
            raise CacheError(f"cache file {path} {problem}; delete it to rebuild it (or drop cache.strict=true)")
        log.warning("cache file %s %s: rebuilding it", path, problem)
        return False

    def write(self, path: str | Path, save: Callable[[str], None]) -> str:
        """Write a payload atomically with ``save(tmp_filename)``, then its sidecar; return its sha256."""
        atomic_save(path, save)
        return self.seal(path)

    def seal(self, path: str | Path) -> str:
        """Write the sidecar of a payload just put in place atomically (by :meth:`write`, or by a library
        that writes a whole folder); return its sha256."""
        path = Path(path)
        digests = {file.name: sha256_file(file) for file in covered_files(path)}
        atomic_write_text(sidecar(path), "".join(f"{d}  {name}\n" for name, d in digests.items()))
        return digests[path.name]

    def load_or_build(self, path: str | Path, build: Callable[[], T], save: Callable[[T, str], None],
                      load: Callable[[Path], T], write: bool = True) -> T:
        """``load(path)`` when the entry is intact, else ``build()`` (saved with ``save(value, tmp)`` when
        ``write``; DDP ranks > 0 pass ``write=False`` and never touch the cache)."""
        path = Path(path)
        if self.verify(path):
            log.info("from cache: %s", path)
            return load(path)
        value = build()
        if write:
            self.write(path, lambda tmp: save(value, tmp))
        return value

    def tensors(self, kind: str, key: dict[str, Any], build: Callable[[], dict], *, name: str = "",
                metadata: dict[str, str] | None = None, write: bool = True) -> dict:
        """The most common entry: a dict of tensors in one safetensors file."""
        from safetensors.torch import load_file, save_file

        def save(tensors: dict, tmp: str) -> None:
            save_file({k: v.contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)

        return self.load_or_build(self.path(kind, key, name=name), build, save, lambda p: load_file(str(p)),
                                  write=write)


def as_cache(cache: Cache | str | Path) -> Cache:
    """A :class:`Cache` from a cache or a bare directory (library callers and tests pass directories)."""
    return cache if isinstance(cache, Cache) else Cache(Path(cache))
