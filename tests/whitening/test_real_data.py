"""The CelebA and ImageNet loaders read tiny files in the datasets' real on-disk formats."""
import numpy as np
import pytest
import torch
from PIL import Image

from bench.data import real
from bench.data.datamodule import ImageDataModule
from bench.errors import DataError

ATTRS = ["5_o_Clock_Shadow", "Smiling", "Young"]


def _jpeg(path, h, w, seed):
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path, quality=95)


@pytest.fixture
def celeba(tmp_path):
    """The aligned CelebA release, 6 images: 178x218 JPEGs, the attribute and partition lists."""
    (tmp_path / "img_align_celeba").mkdir()
    attr_lines, part_lines = [], []
    for i in range(1, 7):
        name = f"{i:06d}.jpg"
        _jpeg(tmp_path / "img_align_celeba" / name, 218, 178, i)
        smiling = 1 if i % 2 else -1
        attr_lines.append(f"{name} -1 {smiling:2d}  1")  # the release pads with double spaces
        part_lines.append(f"{name} {0 if i <= 4 else 2}")
    (tmp_path / "list_attr_celeba.txt").write_text("6\n" + " ".join(ATTRS) + " \n" + "\n".join(attr_lines) + "\n")
    (tmp_path / "list_eval_partition.txt").write_text("\n".join(part_lines) + "\n")
    return tmp_path


def test_celeba_attribute_labels_and_partitions(celeba):
    dm = ImageDataModule(name="celeba", root=str(celeba), attribute="Smiling", image_size=16)
    dm.setup()
    x, y = dm.train.tensors()
    assert x.shape == (4, 3, 16, 16) and y.tolist() == [1, 0, 1, 0]
    assert dm.test.labels.tolist() == [1, 0] and dm.num_classes == 2
    # a size cap decodes only the images it keeps
    capped = ImageDataModule(name="celeba", root=str(celeba), n_train=2, image_size=16)
    capped.setup()
    assert len(capped.train) == 2
    assert capped.cache_key != dm.cache_key


def test_celeba_errors_name_the_fix(celeba, tmp_path):
    with pytest.raises(DataError, match="no attribute 'Bald'.*Smiling"):
        ImageDataModule(name="celeba", root=str(celeba), attribute="Bald").setup()
    with pytest.raises(DataError, match="list_attr_celeba.txt"):
        ImageDataModule(name="celeba", root=str(tmp_path / "nowhere")).setup()


def test_imagenet_tree_normalised_with_the_weights_own_transforms(tmp_path):
    """ILSVRC prepared as train/<wnid>/*.JPEG, val/<wnid>/*.JPEG; a tv_ model's weights bring their
    own mean/std (ImageNet's), which replace the sample statistics."""
    for split in ("train", "val"):
        for c, wnid in enumerate(("n01440764", "n01443537")):
            (tmp_path / split / wnid).mkdir(parents=True)
            for j in range(2):
                _jpeg(tmp_path / split / wnid / f"{wnid}_{j}.JPEG", 40, 50, 10 * c + j)
    stats = real.pretrained_norm_stats("tv_resnet18", "torchvision")
    assert stats == ([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])
    assert real.pretrained_norm_stats("tv_resnet18", None) is None and real.pretrained_norm_stats("vgg11", "x") is None
    dm = ImageDataModule(name="imagefolder", root=str(tmp_path), image_size=24, norm_stats=stats)
    dm.setup()
    x, y = dm.train.tensors()
    assert x.shape == (4, 3, 24, 24) and sorted(y.tolist()) == [0, 0, 1, 1]
    raw = dm.train.images.float() / 255
    expected = (raw - torch.tensor(stats[0]).view(1, 3, 1, 1)) / torch.tensor(stats[1]).view(1, 3, 1, 1)
    torch.testing.assert_close(x, expected)
    own = ImageDataModule(name="imagefolder", root=str(tmp_path), image_size=24)
    assert own.cache_key != dm.cache_key  # the patch PCA is cached per normalisation
