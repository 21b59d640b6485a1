"""Whitening evidence beyond the profile: spatial autocorrelation of first-layer outputs and
the correlation of PCA coefficients with the labels (the formula's key assumption)."""
from __future__ import annotations

import torch
from torch.nn import functional as F

from bench.whitening.patch_pca import PatchPCA


def spatial_autocorrelation(maps: torch.Tensor, max_delta: int) -> torch.Tensor:
    """C(delta) of feature maps (N, F, H, W) for delta = 0..max_delta, normalised so C(0) = 1.

    Each channel is centred over images and locations; horizontal and vertical shifts are
    averaged, and channels are pooled (sum of products over sum of squares)."""
    if max_delta >= min(maps.shape[-2:]):
        raise ValueError(f"max_delta={max_delta} must be smaller than the feature map ({tuple(maps.shape[-2:])})")
    x = maps.double()
    x = x - x.mean(dim=(0, 2, 3), keepdim=True)
    out = []
    for d in range(max_delta + 1):
        horiz = (x[..., :, : x.shape[-1] - d] * x[..., :, d:]).mean()
        vert = (x[..., : x.shape[-2] - d, :] * x[..., d:, :]).mean()
        out.append((horiz + vert) / 2)
    c = torch.stack(out)
    return c / c[0]


def jackknife_se(without_each: list[float]) -> float:
    """The jackknife standard error from a statistic recomputed without each unit (or each of G equal
    groups of units) in turn: sqrt((G - 1) / G * sum_g (theta_-g - mean)^2)."""
    t = torch.tensor(without_each, dtype=torch.float64)
    return float(t.var(correction=0).mul(len(t) - 1).sqrt())


def first_layer_outputs(images: torch.Tensor, weight: torch.Tensor | None) -> torch.Tensor:
    """Responses of a filter bank (no bias, no padding); ``None`` means the raw input channels."""
    return images if weight is None else F.conv2d(images, weight.to(images.dtype))


def zca_filters(pca: PatchPCA, shape: tuple[int, ...], eps: float = 1e-6) -> torch.Tensor:
    """ZCA of the patches as a filter bank (D, C, k, k): U diag(1/sqrt(lambda^2 + eps lambda^2_max)) U^T.

    A perfect whitening of the patch covariance: its outputs are uncorrelated within a patch, the
    paper's C(delta) reference (0 away from delta = 0, up to what a k x k filter can whiten)."""
    scale = (pca.eigvals.double() + eps * pca.eigvals.double().max()).rsqrt()
    w = (pca.eigvecs.double() * scale) @ pca.eigvecs.double().T
    return w.reshape(-1, *shape).float()


def label_pca_correlation(images: torch.Tensor, labels: torch.Tensor, pca: PatchPCA) -> torch.Tensor:
    """|corr| between each image's mean PCA coefficient and each one-vs-all label: (D, classes).

    The image-averaged coefficient is what conv -> global average pool sees, so this is the
    quantity the formula assumes uncorrelated with the labels."""
    cols = F.unfold(images.double(), pca.kernel_size)  # (N, D, L)
    coeffs = (cols.mean(2) - pca.mean) @ pca.eigvecs  # (N, D)
    onehot = F.one_hot(labels, int(labels.max()) + 1).double()
    a = coeffs - coeffs.mean(0)
    b = onehot - onehot.mean(0)
    denom = a.norm(dim=0)[:, None] * b.norm(dim=0)[None, :]
    return ((a.T @ b) / denom.clamp_min(1e-300)).abs()


def pca_energy(images: torch.Tensor, pca: PatchPCA, component: int, batch: int = 512) -> torch.Tensor:
    """Each image's mean squared projection of its centred patches on ``u_component`` (0-based): (N,)."""
    u = pca.eigvecs[:, component].double()
    out = []
    for i in range(0, len(images), batch):
        cols = F.unfold(images[i:i + batch].double(), pca.kernel_size)  # (n, D, L)
        out.append(torch.einsum("ndl,d->nl", cols - pca.mean[None, :, None], u).pow(2).mean(1))
    return torch.cat(out)


def quantile_labels(score: torch.Tensor, reference: torch.Tensor, n_classes: int) -> torch.Tensor:
    """Class c = the c-th of ``n_classes`` equal-mass bins of ``reference`` that ``score`` falls in."""
    edges = torch.quantile(reference.double(), torch.linspace(0, 1, n_classes + 1, dtype=torch.float64)[1:-1])
    return torch.bucketize(score.double(), edges).long()
