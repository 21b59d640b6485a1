"""Real datasets on disk: CIFAR-10/100 through torchvision's loaders, and ImageFolder trees.

Offline, a missing root is a :class:`DataError` naming the path and the fix, raised before
torchvision gets a chance to try the network.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from bench.errors import DataError

CIFAR_STATS = {  # channel mean/std of the training sets, the usual normalisation
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
}


def load_cifar(name: str, root: str | Path, split: str, download: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CIFAR-10/100 via torchvision (``<root>/cifar-10-batches-py`` layout) as uint8 NCHW + labels."""
    import torchvision

    cls = {"cifar10": torchvision.datasets.CIFAR10, "cifar100": torchvision.datasets.CIFAR100}[name]
    try:
        ds = cls(root=str(root), train=split == "train", download=download)
    except RuntimeError as e:
        raise DataError(f"{name} not found under {root} ({e}); put the extracted python-version archive "
                        f"there or pass data.root=<dir> (data.download=true needs network)") from None
    images = torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2)))
    return images, torch.as_tensor(ds.targets, dtype=torch.int64)


def load_imagefolder(root: str | Path, split: str, image_size: int) -> Dataset:
    """An ImageNet/CelebA-style tree ``<root>/<split>/<class>/*.jpg``, resized and centre-cropped."""
    import torchvision
    from torchvision import transforms

    path = Path(root) / split
    if not path.is_dir():
        raise DataError(f"ImageFolder split directory {path} does not exist; expected "
                        f"<data.root>/{split}/<class>/<image> — set data.root")
    tf = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                             transforms.PILToTensor()])
    return torchvision.datasets.ImageFolder(str(path), transform=tf)


# -- CelebA, in its own on-disk format ------------------------------------------------------------
CELEBA_PARTITIONS = {"train": 0, "val": 1, "test": 2}  # list_eval_partition.txt's codes


def celeba_index(root: str | Path, split: str, attribute: str) -> tuple[list[Path], torch.Tensor]:
    """Image paths of a CelebA split and one attribute as 0/1 labels, from the aligned release:
    ``<root>/img_align_celeba/*.jpg``, ``<root>/list_attr_celeba.txt`` (count, attribute names,
    then ``file  ±1 ...``) and ``<root>/list_eval_partition.txt`` (``file 0|1|2``). Reads the text
    files only: :func:`decode_images` decodes just the images a caller keeps."""
    root = Path(root)
    files = {name: root / name for name in ("img_align_celeba", "list_attr_celeba.txt", "list_eval_partition.txt")}
    missing = [str(p) for p in files.values() if not p.exists()]
    if missing:
        raise DataError(f"CelebA under {root} lacks {', '.join(missing)}; set data.root to the directory holding "
                        f"img_align_celeba/, list_attr_celeba.txt and list_eval_partition.txt")
    with open(files["list_eval_partition.txt"]) as f:
        partition = dict(line.split() for line in f if line.strip())
    with open(files["list_attr_celeba.txt"]) as f:
        f.readline()  # the image count
        names = f.readline().split()
        if attribute not in names:
            raise DataError(f"CelebA has no attribute {attribute!r}; choose one of: {', '.join(names)}")
        col = names.index(attribute)
        want = str(CELEBA_PARTITIONS[split])
        paths, labels = [], []
        for line in f:
            fields = line.split()
            if fields and partition.get(fields[0]) == want:
                paths.append(files["img_align_celeba"] / fields[0])
                labels.append(int(fields[1 + col]) > 0)
    return paths, torch.tensor(labels, dtype=torch.int64)


def decode_images(paths: list[Path], image_size: int) -> torch.Tensor:
    """Decode, resize (shorter side) and centre-crop images one at a time: (N, 3, size, size) uint8."""
    from PIL import Image
    from torchvision import transforms

    tf = transforms.Compose([transforms.Resize(image_size), transforms.CenterCrop(image_size),
                             transforms.PILToTensor()])
    out = torch.empty(len(paths), 3, image_size, image_size, dtype=torch.uint8)
    for i, p in enumerate(paths):
        with Image.open(p) as img:
            out[i] = tf(img.convert("RGB"))
    return out


# -- a pretrained model's own input normalisation ------------------------------------------------
def pretrained_norm_stats(model_name: str, weights: str | None) -> tuple[list[float], list[float]] | None:
    """The channel mean/std a pretrained torchvision model (``tv_<arch>`` with weights) was trained
    with, from its weights' own transforms; None for anything else (the data's own statistics apply).
    A local state dict for a ``tv_`` model is taken to follow the same torchvision convention."""
    if not weights or not model_name.startswith("tv_"):
        return None
    import torchvision

    tf = torchvision.models.get_model_weights(model_name.removeprefix("tv_")).DEFAULT.transforms()
    return list(tf.mean), list(tf.std)
