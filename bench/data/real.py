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
