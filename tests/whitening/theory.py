"""The paper's theory model on synthetic data built to satisfy the formula's assumptions.

Images are grids of iid k x k tiles (so the patches the conv sees are independent), tile
covariance Sigma = U diag(lambda^2) U^T with a known spectrum, and labels drawn independently
of the images (uncorrelated with every PCA coefficient). The model is the paper's: conv with K
filters (stride k: one patch per tile) -> global average pool -> sum, MSE, full-batch GD.
``draws`` independent label vectors are trained in one batched model (filters grouped per
draw, so the gradients decouple exactly into ``draws`` independent runs).
"""
from __future__ import annotations

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
    draws = labels.shape[1]
    model = TheoryModel(images.shape[1], k, filters, draws, init_std, seed)
    w_init = model.conv.weight.detach().clone()
    opt = torch.optim.SGD(model.parameters(), lr=eta)
    for _ in range(steps):
        opt.zero_grad()
        # sum over draws of each draw's own 0.5*mean squared error: the draws do not interact
        loss = 0.5 * (model(images) - labels).pow(2).mean(0).sum()
        loss.backward()
        opt.step()
    shape = (draws, filters, -1)
    return w_init.view(shape), model.conv.weight.detach().view(shape)
