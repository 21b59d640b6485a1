"""Fashion-MNIST's idx loader on small files written here in the real format, and on the installed files."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from bench.data import fashion_mnist
from bench.data.fashion_mnist import SYSTEM_DIR, load_fashion_mnist, read_idx
from bench.errors import DataError


def write_idx(path: Path, data: np.ndarray, compress: bool = True) -> Path:
    """An idx file as the original release writes it: 0, 0, type 0x08, ndim, big-endian sizes, uint8 data."""
    raw = struct.pack(">BBBB", 0, 0, 0x08, data.ndim) + struct.pack(f">{data.ndim}I", *data.shape) + data.tobytes()
    path.write_bytes(gzip.compress(raw) if compress else raw)
    return path


def tiny_release(folder: Path, n: int = 7, compress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
    labels = rng.integers(0, 10, n).astype(np.uint8)
    ext = ".gz" if compress else ""
    for split, (img_stem, lab_stem) in fashion_mnist.FILES.items():
        write_idx(folder / f"{img_stem}{ext}", images, compress)
        write_idx(folder / f"{lab_stem}{ext}", labels, compress)
    return images, labels


@pytest.mark.parametrize("compress", [True, False])
def test_reads_idx_files(tmp_path: Path, compress: bool) -> None:
    images, labels = tiny_release(tmp_path, compress=compress)
    x, y = load_fashion_mnist("test", root=tmp_path)
    assert x.shape == (7, 1, 28, 28) and str(x.dtype) == "torch.uint8"
    np.testing.assert_array_equal(x[:, 0].numpy(), images)
    np.testing.assert_array_equal(y.numpy(), labels)


def test_bad_files_are_one_clear_error(tmp_path: Path) -> None:
    path = write_idx(tmp_path / "x.gz", np.zeros((3, 4), np.uint8))
    path.write_bytes(gzip.compress(gzip.decompress(path.read_bytes())[:-2]))  # truncated
    with pytest.raises(DataError, match="truncated"):
        read_idx(path)
    (tmp_path / "y").write_bytes(b"\x12\x34\x08\x01\x00\x00\x00\x01\x05")
    with pytest.raises(DataError, match="not an idx file"):
        read_idx(tmp_path / "y")
    with pytest.raises(DataError, match="fashion_mnist.sh"):
        load_fashion_mnist("train", root=tmp_path / "empty")


def test_datamodule_reads_the_asset_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from bench.data.datamodule import ImageDataModule

    folder = tmp_path / "assets" / "fashion_mnist"
    folder.mkdir(parents=True)
    tiny_release(folder, n=12)
    monkeypatch.setenv("BENCH_ASSETS", str(tmp_path / "assets"))
    dm = ImageDataModule("fashion_mnist", n_train=10, n_test=5)
    dm.setup()
    assert len(dm.train) == 10 and len(dm.test) == 5


@pytest.mark.skipif(not (SYSTEM_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                    reason="Fashion-MNIST not installed: bash scripts/assets/fashion_mnist.sh")
def test_installed_release_is_complete() -> None:
    for split, n in (("train", 60_000), ("test", 10_000)):
        x, y = load_fashion_mnist(split, root=SYSTEM_DIR)
        assert x.shape == (n, 1, 28, 28)
        assert np.bincount(y.numpy()).tolist() == [n // 10] * 10  # the release is class-balanced
