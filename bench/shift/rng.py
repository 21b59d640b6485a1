"""The random draws of the shift task, under ``task.rng``:

- ``bench`` (default): anchors from a ``torch.Generator`` seeded by the task (derived from the run's
  ``seed``, :mod:`bench.seeding`); each shard's ``eps`` and labels from its own (split seed, shard
  index) stream, so any shard can be
  (re)generated alone and a resumed build is byte-identical;
- ``reference``: the Control+Shift reference scripts' draws, so the test sets equal the paper's
  for the same generator. The anchors come from numpy's global seed 45678 (``np.random.seed``,
  then ``a1 = randn(d)``, ``a2 = randn(d)``, float32); the labels and then the noise of a split from
  torch's global seed (test 0, train 12345, val 54321): ``torch.manual_seed(seed)``,
  ``labels = randint(K, (n,))``, ``eps = randn(n, d)``. bench reproduces them with private
  generators of the same state (numpy's global ``RandomState``, torch's default CPU generator), so
  nothing global is touched; the run's ``seed`` does not change them.
"""
from __future__ import annotations

import numpy as np
import torch

from bench.errors import ConfigError

RNGS = ("bench", "reference")
REFERENCE_ANCHOR_SEED = 45678
REFERENCE_SEEDS = {"train": 12345, "val": 54321, "test": 0}


def check_rng(rng: str) -> None:
    if rng not in RNGS:
        raise ConfigError(f"task.rng must be one of {', '.join(RNGS)}, not {rng!r}")


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
    """The reference's ``eps`` (n, dim) float32 and labels (n,) of a whole split drawn after
    ``torch.manual_seed(seed)``: labels first, then noise. Drawn whole: the stream cannot be entered
    mid-way, so a shard of it is a slice of this."""
    g = torch.Generator().manual_seed(seed)  # the state torch.manual_seed gives the global generator
    labels = torch.randint(num_classes, (n,), generator=g)
    return torch.randn(n, dim, generator=g), labels

