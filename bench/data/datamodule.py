"""The one LightningDataModule for image classification, and the in-memory dataset it serves
(see :mod:`bench.data` for the dataset names)."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import numpy as np
import torch
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset

from bench.data import DATASETS, EMBEDDED, embedded, real
from bench.config import Labels
from bench.errors import DataError
from bench.seeding import derive


class TensorImages(Dataset):
    """Images in memory (uint8, or float on the same 0-255 scale), normalised batch-wise on access
    (``__getitems__`` skips per-item overhead)."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.images, self.labels = images, labels
        self.mean, self.std = mean.view(1, -1, 1, 1), std.view(1, -1, 1, 1)

    def __len__(self) -> int:
        return len(self.labels)

    def __getitems__(self, idx: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.images[idx].float().div_(255.0)
        return (x - self.mean) / self.std, self.labels[idx]

    def tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Every image (normalised) and label at once."""
        return self.__getitems__(list(range(len(self))))

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        x, y = self.__getitems__([i])
        return x[0], y[0]


def channel_stats(images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-channel mean and std of uint8 images (N, C, H, W) in [0, 1] units; std floored at 1e-3
    so a constant channel never divides by zero."""
    x = images.float().div(255.0).transpose(0, 1).flatten(1)
    return x.mean(1), x.std(1).clamp_min(1e-3)


def batch_as_is(batch):
    """``collate_fn`` for datasets whose ``__getitems__`` already returns a batch."""
    return batch


class ImageDataModule(L.LightningDataModule):
    """One image-classification dataset, by name (see ``DATASETS``)."""

    def __init__(self, name: str = "embedded_photos", root: str | None = None, labels: str = "true",
                 image_size: int = 32, n_train: int | None = None, n_test: int | None = None,
                 batch_size: int = 256, num_workers: int = 0, download: bool = False, normalize: bool = True,
                 classes: list[int] | None = None, seed: int = 0, attribute: str = "Smiling",
                 norm_stats: tuple[list[float], list[float]] | None = None, n_val: int = 0, pool: int = 1) -> None:
        super().__init__()
        if pool < 1:
            raise DataError(f"data.pool must be a positive integer (1: the images as they are), not {pool}")
        if name not in DATASETS:
            raise DataError(f"unknown dataset {name!r}; choose one of: {', '.join(DATASETS)}")
        if labels not in tuple(Labels):  # the config is checked by its schema; this guards a direct call
            raise DataError(f"data.labels must be one of {', '.join(Labels)}, not {labels!r}")
        if name in ("cifar10", "cifar100", "imagefolder", "celeba") and not root:
            raise DataError(f"dataset {name} needs data.root=<directory holding it>")
        self.name, self.root, self.labels_kind = name, root, labels
        self.image_size, self.n_train, self.n_test = image_size, n_train, n_test
        self.batch_size, self.num_workers, self.download = batch_size, num_workers, download
        self.normalize, self.classes, self.seed = normalize, list(classes) if classes else None, seed
        # attribute: CelebA's label; norm_stats: a pretrained model's own (mean, std) instead of the data's
        self.attribute, self.norm_stats = attribute, norm_stats
        self.n_val = n_val  # validation images carved from the training split (never from the test split)
        self.pool = pool
        self.train: Dataset | None = None
        self.val: Dataset | None = None
        self.test: Dataset | None = None

    # -- loading -------------------------------------------------------------------------
    MAX_IN_MEMORY = 50_000

    def _load(self, split: str, n: int | None) -> tuple[torch.Tensor, torch.Tensor]:
        """Uint8 images and labels of a split, restricted to ``data.classes`` and ``n`` samples.

        The selection is made on the labels first, so an ImageFolder split decodes only the
        images it keeps (a 5,000-image sample of ImageNet never decodes the other 1.28M)."""
        if self.name == "imagefolder":
            ds = real.load_imagefolder(self.root, "train" if split == "train" else "val", self.image_size)
            idx, labels = self._select(torch.as_tensor(ds.targets, dtype=torch.int64), n, split)
            if len(idx) > self.MAX_IN_MEMORY:
                raise DataError(f"{self.root} holds {len(idx)} images to load; bench keeps ImageFolder sets in "
                                f"memory (<= {self.MAX_IN_MEMORY:,}): pass data.n_train / data.n_test")
            return torch.stack([ds[int(i)][0] for i in idx]), labels
        if self.name == "celeba":
            paths, labels = real.celeba_index(self.root, split, self.attribute)
            idx, labels = self._select(labels, n, split)
            if len(idx) > self.MAX_IN_MEMORY:
                raise DataError(f"CelebA's {split} split holds {len(idx)} images; bench keeps at most "
                                f"{self.MAX_IN_MEMORY:,} in memory: pass data.n_train / data.n_test")
            return real.decode_images([paths[int(i)] for i in idx], self.image_size), labels
        if self.name == "embedded_photos":  # crops of data.image_size (MNIST and digits keep their own size)
            images, labels = embedded.load_photos(split, size=self.image_size)
        else:
            images, labels = (EMBEDDED[self.name](split) if self.name in EMBEDDED
                              else real.load_cifar(self.name, self.root, split, self.download))
        idx, labels = self._select(labels, n, split)
        return self._pooled(images[idx]), labels

    def _pooled(self, images: torch.Tensor) -> torch.Tensor:
        """Block means over ``pool`` x ``pool`` pixels: a coarser copy of the same images (float, 0-255 scale)."""
        if self.pool == 1:
            return images
        h, w = images.shape[-2:]
        if h % self.pool or w % self.pool:
            raise DataError(f"data.pool={self.pool} does not divide {self.name}'s {h}x{w} images; "
                            f"choose a divisor of {h} and {w}")
        return F.avg_pool2d(images.float(), self.pool)

    def _select(self, labels: torch.Tensor, n: int | None, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Indices kept (classes subset, then ``n`` drawn with the run's seed for this split) and their labels."""
        idx = torch.arange(len(labels))
        if self.classes is not None:
            idx = idx[torch.isin(labels, torch.tensor(self.classes))]
        if n is not None:
            if n > len(idx):
                raise DataError(f"{self.name} has {len(idx)} samples, fewer than the {n} requested")
            idx = idx[torch.from_numpy(np.random.default_rng(derive(self.seed, "subset", split)).permutation(len(idx))[:n])]
        kept = labels[idx]
        if self.classes is not None:
            remap = {c: i for i, c in enumerate(self.classes)}
            kept = torch.tensor([remap[int(c)] for c in kept], dtype=torch.int64)
        return idx, kept

    def setup(self, stage: str | None = None) -> None:
        if self.train is not None:
            return
        x_tr, y_tr = self._load("train", self.n_train)
        x_te, y_te = self._load("test", self.n_test)
        if self.labels_kind == "random":  # one permutation of the targets per seed: class balance is kept
            perm = np.random.default_rng(derive(self.seed, "random_labels")).permutation(len(y_tr))
            y_tr = y_tr[torch.from_numpy(perm)]
        self.num_classes = int(max(y_tr.max(), y_te.max())) + 1
        if not 0 <= self.n_val < len(y_tr):
            raise DataError(f"data.n_val={self.n_val} must lie in [0, {len(y_tr)}): the validation split is carved "
                            "from the training split")
        order = torch.from_numpy(np.random.default_rng(derive(self.seed, "val_split")).permutation(len(y_tr)))
        val_idx, train_idx = order[:self.n_val].sort().values, order[self.n_val:].sort().values
        x_va, y_va = x_tr[val_idx], y_tr[val_idx]
        x_tr, y_tr = (x_tr[train_idx], y_tr[train_idx]) if self.n_val else (x_tr, y_tr)
        self.mean, self.std = self._stats(x_tr)
        self.in_chans = int(x_tr.shape[1])
        self.train = TensorImages(x_tr, y_tr, self.mean, self.std)
        self.val = TensorImages(x_va, y_va, self.mean, self.std)
        self.test = TensorImages(x_te, y_te, self.mean, self.std)

    def _stats(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        c = x.shape[1]
        if not self.normalize:
            return torch.zeros(c), torch.ones(c)
        if self.norm_stats is not None:
            return tuple(torch.tensor(s, dtype=torch.float32) for s in self.norm_stats)
        if self.name in real.CIFAR_STATS:
            return tuple(torch.tensor(s) for s in real.CIFAR_STATS[self.name])
        return channel_stats(x)

    # -- loaders -------------------------------------------------------------------------
    def _loader(self, ds: Dataset, shuffle: bool, batch_size: int | None = None) -> DataLoader:
        return DataLoader(ds, batch_size=batch_size or self.batch_size, shuffle=shuffle, num_workers=self.num_workers,
                          collate_fn=batch_as_is, persistent_workers=self.num_workers > 0)

    def train_dataloader(self, batch_size: int | None = None) -> DataLoader:
        """Shuffled training batches of ``data.batch_size`` (or ``batch_size``: one model's own)."""
        return self._loader(self.train, shuffle=True, batch_size=batch_size)

    def val_dataloader(self) -> DataLoader | list:
        """The validation split carved from train (``data.n_val``); none when ``n_val=0`` (validation
        never reads the test split)."""
        return self._loader(self.val, shuffle=False) if self.n_val else []

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test, shuffle=False)

    def ordered_train_dataloader(self) -> DataLoader:
        """The training set in a fixed order (patch statistics, evaluation on train)."""
        return self._loader(self.train, shuffle=False)

    @property
    def cache_key(self) -> str:
        """Identifies the exact training pixels and normalisation (labels excluded: they do not change patches;
        the seed only when it draws a subset)."""
        parts = [self.name, str(Path(self.root).resolve()) if self.root else "",
                 str(self.image_size), str(self.pool), str(self.n_train), str(self.classes), str(self.normalize),
                 str(self.seed) if self.n_train is not None else "", str(self.norm_stats),
                 self.attribute if self.name == "celeba" else ""]
        return "|".join(parts)
