"""One seed: every random choice of a run derives from the top-level ``seed`` and its purpose.

    derive(cfg.seed, "classifier", "resnet20", 0.5)   # a classifier's init and data order
    derive(cfg.seed, "random_labels")                 # the permutation of random labels

The purpose names *what* the randomness is for, never *where* it sits in a list, so adding a
model to a grid changes no other model's seed, and a seed sweep (``seed=0,1,2``) moves every
choice at once (labels, subsets, inits, data order, CLIP and generator training, noise draws).
The hash is sha256 of a canonical JSON encoding: stable across processes, machines and Python
versions (Python's own ``hash()`` of a string is salted per process).
"""
from __future__ import annotations

import hashlib
import json
from typing import Any


def derive(seed: int, *purpose: Any) -> int:
    """A seed in ``[0, 2**32)`` (what ``lightning.seed_everything`` and numpy accept) for ``purpose``.

    ``purpose`` parts are JSON-encoded as given, so ``1`` and ``1.0`` are different purposes:
    pass the same types every time (e.g. widths as floats)."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TypeError(f"seed must be an int, not {type(seed).__name__}")
    text = json.dumps([seed, *purpose], sort_keys=True, separators=(",", ":"), default=str)
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def torch_generator(seed: int, *purpose: Any) -> "torch.Generator":  # noqa: F821 - torch imported lazily
    """A CPU ``torch.Generator`` seeded with :func:`derive` (for draws that must not touch global RNG)."""
    import torch

    return torch.Generator().manual_seed(derive(seed, *purpose))


def seed_everything(seed: int) -> None:
    """Reseed the global RNGs (Python's, numpy's, torch's; DataLoader workers too) with ``seed``: the only
    place bench does, called by the CLI at the start of a run and by
    :meth:`bench.context.RunContext.trained` before each training (the model's init and data order)."""
    import lightning

    lightning.seed_everything(seed, workers=True, verbose=False)
