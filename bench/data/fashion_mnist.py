"""Fashion-MNIST (Xiao, Rasul & Vollgraf 2017): 60,000 train / 10,000 test 28x28 greyscale images of
10 clothing classes, read from the original idx files (``scripts/assets/fashion_mnist.sh`` installs
them from Debian's ``dataset-fashion-mnist`` into ``${BENCH_ROOT:-.}/.cache/assets/fashion_mnist``).

idx format: a big-endian header (two zero bytes, a type code, the number of dimensions, then one
uint32 per dimension) followed by the data; bench reads uint8 data (type 0x08), gzipped or not.
"""
from __future__ import annotations

import gzip
import os
from functools import cache
from pathlib import Path

import numpy as np
import torch

from bench.errors import DataError

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
         "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")  # where the Debian package puts them
INSTALL = "bash scripts/assets/fashion_mnist.sh (or: apt-get install dataset-fashion-mnist)"


def asset_dir() -> Path:
    """``$BENCH_ASSETS/fashion_mnist`` if set, else ``${BENCH_ROOT:-.}/.cache/assets/fashion_mnist``."""
    base = os.environ.get("BENCH_ASSETS") or Path(os.environ.get("BENCH_ROOT", ".")) / ".cache" / "assets"
    return Path(base) / "fashion_mnist"


def read_idx(path: str | Path) -> np.ndarray:
    """One idx file (``.gz`` or plain) of uint8 data as an array of its declared shape."""
    path = Path(path)
    raw = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise DataError(f"{path} is not an idx file (bad magic); reinstall with {INSTALL}")
    if raw[2] != 0x08:
        raise DataError(f"{path}: idx type 0x{raw[2]:02x}, bench reads uint8 (0x08) data only")
    ndim = raw[3]
    shape = tuple(int(s) for s in np.frombuffer(raw, ">u4", ndim, 4))
    data = np.frombuffer(raw, np.uint8, offset=4 + 4 * ndim)
    if data.size != int(np.prod(shape)):
        raise DataError(f"{path} holds {data.size} values, its header says {shape}: a truncated file; "
                        f"reinstall with {INSTALL}")
    return data.reshape(shape)


def _find(stem: str, root: Path | None) -> Path:
    for folder in ([root] if root else [asset_dir(), SYSTEM_DIR]):
        for name in (f"{stem}.gz", stem):
            if (Path(folder) / name).is_file():
                return Path(folder) / name
    where = root or f"{asset_dir()} or {SYSTEM_DIR}"
    raise DataError(f"Fashion-MNIST file {stem}[.gz] not found in {where}; install it with {INSTALL}")


@cache
def _load(images_path: Path, labels_path: Path, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = read_idx(images_path), read_idx(labels_path)
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"Fashion-MNIST {split}: images {images.shape} and labels {labels.shape} do not match")
    if labels.max() >= len(CLASSES):
        raise DataError(f"Fashion-MNIST {split}: label {labels.max()} outside 0-{len(CLASSES) - 1}")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load_fashion_mnist(split: str = "train", root: str | Path | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``train`` or ``test`` split as (N, 1, 28, 28) uint8 images and int64 labels (0-9, :data:`CLASSES`)."""
    if split not in FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = Path(root) if root else None
    return _load(*(_find(stem, root) for stem in FILES[split]), split)  # cached per file, not per environment
