"""Figures of the whitening task (matplotlib, Agg backend: no display needed)."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.whitening.profile import Fit  # noqa: E402


def _norm(p: torch.Tensor) -> np.ndarray:
    p = p.double().numpy()
    return p / p.max() if p.max() > 0 else p


def profile_vs_formula(profiles: dict[str, torch.Tensor], fits: dict[str, Fit]):
    """Measured profile (points) and fitted formula (line) per model, normalised by their max."""
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, (name, prof) in enumerate(profiles.items()):
        color = f"C{i % 10}"
        x = np.arange(1, len(prof) + 1)
        f = fits[name]
        where = f"t={f.t:,.0f}" if f.t is not None else f"τ={f.tau:.3g}"
        ax.plot(x, _norm(prof), "o", color=color, ms=4,
                label=f"{name} (r={f.r:.3f}, {where}{', grid edge' if f.edge else ''})")
        ax.plot(x, _norm(f.formula), "-", color=color, lw=1.2)
    ax.set(xlabel="PCA component i (1 = lowest frequency)", ylabel="energy / max",
           title="First-layer energy profile: measured (dots) vs linear-CNN formula (lines)")
    ax.legend(fontsize=7)
    return fig


def consistency_heatmap(names: list[str], matrix: np.ndarray):
    """Pearson r between every pair of profiles."""
    fig, ax = plt.subplots(figsize=(1.2 + 0.6 * len(names), 1 + 0.6 * len(names)))
    im = ax.imshow(matrix, vmin=-1, vmax=1, cmap="RdBu_r")
    ax.set_xticks(range(len(names)), names, rotation=60, ha="right", fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    for i in range(len(names)):
        for j in range(len(names)):
            ax.text(j, i, f"{matrix[i, j]:.2f}", ha="center", va="center", fontsize=6)
    fig.colorbar(im, ax=ax, label="Pearson r")
    ax.set_title("Profile consistency")
    return fig


def autocorr_curves(curves: dict[str, torch.Tensor]):
    """C(delta) of first-layer outputs: raw input, random filters, trained filters."""
    fig, ax = plt.subplots(figsize=(6, 4))
    for name, c in curves.items():
        ax.plot(np.arange(len(c)), c.numpy(), marker="o", ms=3, label=name)
    ax.axhline(0, color="k", lw=0.5)
    ax.set(xlabel="shift δ (pixels)", ylabel="C(δ) / C(0)", title="Spatial autocorrelation (whitening evidence)")
    ax.legend()
    return fig


def profile_over_time(steps: list[int], profiles: list[torch.Tensor], name: str):
    """The profile at each recorded training step, coloured by time."""
    fig, ax = plt.subplots(figsize=(7, 4))
    cmap = plt.get_cmap("viridis")
    for i, (step, prof) in enumerate(zip(steps, profiles)):
        ax.plot(np.arange(1, len(prof) + 1), _norm(prof), color=cmap(i / max(1, len(steps) - 1)),
                label=f"step {step}")
    ax.set(xlabel="PCA component i", ylabel="energy / max", title=f"Profile over training: {name}")
    ax.legend(fontsize=7, ncol=2)
    return fig
