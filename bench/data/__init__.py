"""Image-classification data for every task: embedded (offline) and real (torchvision/ImageFolder).

This package's top level is only the catalogue of dataset names (torch, no Lightning), so the
command line checks ``data.name`` in about a second. The one LightningDataModule,
:class:`bench.data.datamodule.ImageDataModule`, loads a split, optionally keeps a subset of classes
or samples, optionally replaces the labels by one fixed permutation (random labels keep the class
balance), and normalises with the dataset's channel stats — the same normalisation is then used for
training and for the patch PCA.
"""
from __future__ import annotations

from bench.data import embedded, fashion_mnist

# loaders that take only the split and read files that install offline (PyPI packages; Fashion-MNIST: `make assets`)
EMBEDDED = {"embedded_photos": embedded.load_photos, "mnist": embedded.load_mnist, "digits": embedded.load_digits,
            "fashion_mnist": fashion_mnist.load_fashion_mnist}
DATASETS = sorted([*EMBEDDED, "cifar10", "cifar100", "imagefolder", "celeba"])
