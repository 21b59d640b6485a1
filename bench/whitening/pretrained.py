"""Stage B: real pretrained first layers, as they are (no W_init, as the paper does for pretrained models).

Each entry of ``task.pretrained`` names a registry model, its weights file and an image set. The model
is built through the registry (``model.weights=<file>``), its first conv's profile is taken over the patch
PCA of the image set *at the model's own preprocessing and resolution* (its ``input_cfg``: resize,
centre crop, pixel scale, mean/std), and fitted on the paper's grid converted to the paper's patch
count, beside the trivial baselines. The images are genuine ones that install offline
(``scripts/assets/pretrained_weights.sh``): foolbox's 20 ImageNet validation images and 20 CIFAR-10
test images.

A pretrained layer is one fixed file, but its profile and fit are read over a PCA of 20 images: the
images are the units sampled. Each fit figure carries its jackknife standard error over the images
(:func:`jackknife_stderr`: the PCA, profile and fit redone without each image in turn), which the
claims' interval draws from.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import torch
import torchvision.transforms.functional as TF
from PIL import Image

from bench.errors import DataError
from bench.models import build_model, first_conv
from bench.whitening.analyses import jackknife_se
from bench.whitening.config import ImageSet
from bench.whitening.fits import fit_rows
from bench.whitening.patch_pca import PatchPCA, leave_one_out, patch_pca
from bench.whitening.profile import energy_profile

log = logging.getLogger(__name__)
INSTALL = "bash scripts/assets/pretrained_weights.sh (make assets)"
# image set -> (file pattern under <assets>/foolbox, number of files, classes the model predicts)
IMAGE_SETS = {ImageSet.foolbox_imagenet: ("imagenet_*.jpg", 20, 1000),
              ImageSet.foolbox_cifar10: ("cifar10_*.png", 20, 10)}


@dataclass
class Pretrained:
    """One pretrained first layer and the PCA of the images it is measured on."""
    name: str
    images: str
    weight: torch.Tensor
    pca: PatchPCA
    accuracy: float  # on the image set's own labels (the file names carry them): the weights are the right ones
    n_images: int
    without_each: list[PatchPCA]  # the PCA without image i, for each i (the jackknife over the images)


def load_image_set(assets: Path, images: str, input_cfg: dict) -> tuple[torch.Tensor, torch.Tensor]:
    """The image set as the model sees it: resized (short side), centre-cropped, scaled, normalised."""
    if images not in IMAGE_SETS:
        raise DataError(f"unknown pretrained image set {images!r}; one of {', '.join(IMAGE_SETS)}")
    pattern, expected, _ = IMAGE_SETS[images]
    files = sorted((assets / "foolbox").glob(pattern))
    if len(files) != expected:
        raise DataError(f"{assets / 'foolbox'} holds {len(files)} of the {expected} {pattern} images; run {INSTALL}")
    size = input_cfg["image_size"]
    out, labels = [], []
    for f in files:
        img = Image.open(f).convert("RGB")
        img = TF.resize(img, input_cfg.get("resize", size), antialias=True)
        out.append(TF.to_tensor(TF.center_crop(img, size)))
        labels.append(int(f.stem.rsplit("_", 1)[1]))
    # mean/std are in the units of the scaled pixels ([0, 1] for torchvision/timm, [0, 255] for Keras)
    x = torch.stack(out) * input_cfg["pixel_scale"]
    x = (x - torch.tensor(input_cfg["mean"]).view(1, 3, 1, 1)) / torch.tensor(input_cfg["std"]).view(1, 3, 1, 1)
    return x, torch.tensor(labels)


def measure(model_cfg, entry, assets: Path, kernel_size: int) -> Pretrained | None:
    """Load one pretrained model and the PCA of its image set; None (with one warning naming the
    install command) when its weights or images are not installed."""
    weights = Path(entry.weights)
    n_classes = IMAGE_SETS[entry.images][2]
    if not weights.is_file():
        log.warning("whitening: %s weights %s are not installed: run %s; its Stage B rows are not measured",
                    entry.name, weights, INSTALL)
        return None
    model = build_model(model_cfg, name=entry.name, weights=str(weights), num_classes=n_classes, width=1.0,
                        kwargs={}).eval()
    try:
        x, y = load_image_set(assets, entry.images, model.input_cfg)
    except DataError as e:
        log.warning("whitening: %s; its Stage B rows are not measured", e)
        return None
    conv = first_conv(model)
    if conv.kernel_size != (kernel_size,) * 2:
        raise DataError(f"{entry.name}'s first conv is {conv.kernel_size}, task.kernel_size is {kernel_size}")
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    pca = patch_pca([x[i:i + 4] for i in range(0, len(x), 4)], kernel_size, progress=False)
    return Pretrained(entry.name, entry.images, conv.weight.detach().clone(), pca, acc, len(x),
                      leave_one_out(x, kernel_size))


def profile(p: Pretrained) -> torch.Tensor:
    """The layer's profile as it is (no init to subtract)."""
    return energy_profile(p.weight, p.pca.eigvecs)


# grid argmaxes (the best t, whether it is the grid's edge): the jackknife is not valid for them
DISCRETE = ("formula_t", "fit_edge")


def jackknife_stderr(p: Pretrained, kernel_size: int, grid: str, tau_grid_size: int) -> dict[tuple, float]:
    """The jackknife standard error over the images of every fit row (keyed by metric and grid), from
    the row's value without each image in turn."""
    def values(pca: PatchPCA) -> dict[tuple, float]:
        rows, _ = fit_rows(energy_profile(p.weight, pca.eigvecs), pca.eigvals, kernel_size, grid, tau_grid_size, {})
        return {(r["metric"], r["params"].get("grid")): r["value"] for r in rows}

    loo = [values(pca) for pca in p.without_each]
    return {key: jackknife_se([v[key] for v in loo]) for key in loo[0] if key[0] not in DISCRETE}
