"""The random draws of the shift task, under ``task.rng``:

- ``bench`` (default): anchors from a ``torch.Generator`` seeded by the task (derived from the run's
  ``seed``, :mod:`bench.seeding`); each shard's ``eps`` and labels from its own (split seed, shard
  index) stream, so any shard can be (re)generated alone and a resumed build is byte-identical;
- ``reference``: the draws of the Control+Shift reference script (``generate_dist_shift.py``), so
  the sets equal the paper's for the same generator. The anchors come from numpy's global seed
  45678 (``np.random.seed``, then ``a1 = randn(d)``, ``a2 = randn(d)``, cast to float32). Each split
  (test 0, train 12345, val 54321) seeds *both* global generators with its seed: its labels are
  numpy's ``choice(K, n)``, and torch's stream holds only the noise, drawn ``randn(100, d)`` per
  batch of 100 (the script's ``--batch``) in order. bench reproduces them with private generators
  in the same states (a ``RandomState``, a CPU ``torch.Generator``), so nothing global is touched;
  the run's ``seed`` does not change them.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.errors import ConfigError
from bench.shift.config import Rng

REFERENCE_ANCHOR_SEED = 45678
REFERENCE_SEEDS = {"train": 12345, "val": 54321, "test": 0}
#: the reference script's generation batch (its ``--batch`` default): one noise draw per batch
REFERENCE_BATCH = 100


def check_rng(rng: str) -> None:
    if rng not in tuple(Rng):  # the config is checked by its schema; this guards a direct call
        raise ConfigError(f"task.rng must be one of {', '.join(Rng)}, not {rng!r}")


def check_reference_sizes(**sizes: int) -> None:
    """The reference script draws (and sets hold) whole batches of :data:`REFERENCE_BATCH`: every
    set size and the shard size must be a multiple of it (the script itself fails on a partial batch)."""
    for name, n in sizes.items():
        if n % REFERENCE_BATCH:
            raise ConfigError(f"task.rng=reference draws noise in batches of {REFERENCE_BATCH} (the reference "
                              f"script's --batch): task.{name}={n} must be a multiple of {REFERENCE_BATCH}")


def draw_anchors(dim: int, seed: int, rng: str = "bench") -> torch.Tensor:
    """The two anchors ``(2, dim)`` (float64), drawn once: ``bench`` from ``N(0, I)`` with ``seed``;
    ``reference`` the reference's float32 draws from numpy's seed 45678 (``seed`` is not used)."""
    check_rng(rng)
    if rng == "reference":
        state = np.random.RandomState(REFERENCE_ANCHOR_SEED)  # what np.random.seed(45678) sets globally
        a1 = state.randn(dim).astype(np.float32)
        a2 = state.randn(dim).astype(np.float32)
        return torch.from_numpy(np.stack([a1, a2])).double()
    return torch.randn(2, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def draw_shard(seed: int, shard: int, n: int, dim: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """bench's ``eps`` (n, dim) and uniform labels (n,) of one shard: a function of (seed, shard) only."""
    state = int(np.random.SeedSequence([seed, shard]).generate_state(1, dtype=np.uint64)[0] >> 1)
    g = torch.Generator().manual_seed(state)
    labels = torch.randint(num_classes, (n,), generator=g)
    return torch.randn(n, dim, generator=g), labels


def reference_split(seed: int, n: int, dim: int, num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's ``eps`` (n, dim) float32 and labels (n,) of a whole split of ``n`` drawn with
    ``seed``: labels from numpy (``np.random.seed(seed); np.random.choice(K, n)``), noise from torch's
    generator seeded ``seed`` one batch of :data:`REFERENCE_BATCH` at a time. Drawn whole: the stream
    cannot be entered mid-way, so a shard is a slice of this."""
    check_reference_sizes(n=n)
    labels = np.random.RandomState(seed).choice(num_classes, n)
    g = torch.Generator().manual_seed(seed)  # the state torch.manual_seed gives the global generator
    eps = torch.cat([torch.randn(REFERENCE_BATCH, dim, generator=g) for _ in range(n // REFERENCE_BATCH)])
    return eps, torch.from_numpy(labels.astype(np.int64))
