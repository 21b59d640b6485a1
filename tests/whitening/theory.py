"""The paper's theory model on data built to satisfy the formula's assumptions.

Images are grids of iid k x k tiles (so the patches the conv sees are independent): either
synthetic tiles with covariance Sigma = U diag(lambda^2) U^T of a known spectrum, or natural
patches cut at random places of the bundled photographs (:func:`natural_tiles`); labels are drawn
independently of the images (uncorrelated with every PCA coefficient). The model is the paper's: conv with K
filters (stride k: one patch per tile) -> global average pool -> sum, MSE, full-batch GD.
``draws`` independent label vectors are trained in one batched model (filters grouped per
draw, so the gradients decouple exactly into ``draws`` independent runs).
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def synthetic_tiles(n_images: int, grid: int, channels: int, k: int, seed: int = 0):
    """Images (N, C, grid*k, grid*k) of iid tiles, and the true eigen-decomposition of a tile."""
    g = torch.Generator().manual_seed(seed)
    d = channels * k * k
    eigvals = 1.0 / torch.arange(1, d + 1, dtype=torch.float64) ** 2.0
    q, _ = torch.linalg.qr(torch.randn(d, d, generator=g, dtype=torch.float64))
    tiles = torch.randn(n_images * grid * grid, d, generator=g, dtype=torch.float64) * eigvals.sqrt()
    tiles = tiles @ q.T  # covariance q diag(eigvals) q^T
    images = (tiles.view(n_images, grid, grid, channels, k, k)
              .permute(0, 3, 1, 4, 2, 5).reshape(n_images, channels, grid * k, grid * k))
    return images.float(), eigvals, q


def natural_tiles(n_images: int, grid: int, k: int, seed: int = 0):
    """Images (N, 3, grid*k, grid*k) assembled from independent natural k x k RGB patches (each cut at
    a random place of a random bundled photograph, pixels in [0, 1], centred over all patches), and
    the PCA of those patches: eigenvalues (descending) and eigenvectors in (C, kh, kw) order."""
    from bench.data.embedded import _photographs

    photos = _photographs()
    rng = np.random.default_rng(seed)
    n = n_images * grid * grid
    which = rng.integers(0, len(photos), n)
    tiles = np.empty((n, 3, k, k))
    for i, img in enumerate(photos):
        idx = np.flatnonzero(which == i)
        ys = rng.integers(0, img.shape[0] - k + 1, len(idx))
        xs = rng.integers(0, img.shape[1] - k + 1, len(idx))
        for j, y, x in zip(idx, ys, xs):
            tiles[j] = img[y:y + k, x:x + k].transpose(2, 0, 1) / 255.0
    flat = torch.from_numpy(tiles).reshape(n, -1)
    flat = flat - flat.mean(0)
    eigvals, eigvecs = torch.linalg.eigh(flat.T @ flat / (n - 1))
    order = eigvals.argsort(descending=True)
    images = flat.view(n_images, grid, grid, 3, k, k).permute(0, 3, 1, 4, 2, 5).reshape(n_images, 3, grid * k, grid * k)
    return images.float(), eigvals[order], eigvecs[:, order]


class TheoryModel(nn.Module):
    """``draws`` copies of conv(K filters) -> global average pool -> sum, trained side by side."""

    def __init__(self, channels: int, k: int, filters: int, draws: int, init_std: float, seed: int) -> None:
        super().__init__()
        self.filters, self.draws = filters, draws
        self.conv = nn.Conv2d(channels, filters * draws, k, stride=k, bias=False)
        with torch.no_grad():
            self.conv.weight.normal_(0, init_std, generator=torch.Generator().manual_seed(seed))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.conv(x).mean((2, 3))  # (N, draws*K)
        return pooled.view(-1, self.draws, self.filters).sum(2)  # (N, draws)


def train_theory_model(images: torch.Tensor, labels: torch.Tensor, k: int, filters: int, eta: float,
                       steps: int, init_std: float = 1e-4, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Full-batch GD on 0.5 * mean squared error; returns (W_init, W_final), each (draws, K, D)."""
    w_init, snapshots = train_theory_snapshots(images, labels, k, filters, eta, [steps], init_std, seed)
    return w_init, snapshots[steps]


def train_theory_snapshots(images: torch.Tensor, labels: torch.Tensor, k: int, filters: int, eta: float,
                           record: list[int], init_std: float = 1e-4,
                           seed: int = 0) -> tuple[torch.Tensor, dict[int, torch.Tensor]]:
    """Full-batch GD on 0.5 * mean squared error for max(record) steps; returns W_init and the weights
    after each step count in ``record``, each (draws, K, D)."""
    draws = labels.shape[1]
    shape = (draws, filters, -1)
    model = TheoryModel(images.shape[1], k, filters, draws, init_std, seed)
    w_init = model.conv.weight.detach().clone().view(shape)
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    snapshots = {}
    for step in range(1, max(record) + 1):
        opt.zero_grad()
        # sum over draws of each draw's own 0.5*mean squared error: the draws do not interact
        loss = 0.5 * (model(images) - labels).pow(2).mean(0).sum()
        loss.backward()
        opt.step()
        if step in record:
            snapshots[step] = model.conv.weight.detach().clone().view(shape)
    return w_init, snapshots
