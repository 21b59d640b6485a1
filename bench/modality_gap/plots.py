"""Figures: accuracy and robustness versus alpha, the two modalities in 2-D before and after
closing the gap, and the gap's formation during contrastive training."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402


def alpha_sweep(rows: list[dict], title: str) -> plt.Figure:
    """Accuracy (left) and robustness (right) versus alpha, one line per perturbation level."""
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for level in sorted({r["level"] for r in rows}):
        sel = sorted((r for r in rows if r["level"] == level), key=lambda r: r["alpha"])
        a = [r["alpha"] for r in sel]
        for ax, key in zip(axes, ("accuracy", "robustness")):
            ax.errorbar(a, [r[key] for r in sel], yerr=[2 * r[f"{key}_stderr"] for r in sel], marker="o",
                        capsize=3, label=f"level {level:g}")
    axes[0].plot(a, [r["clean_accuracy"] for r in sel], "k--", label="clean")
    for ax, key in zip(axes, ("accuracy under perturbation", "robustness (prediction consistency)")):
        ax.set_xlabel("alpha (0 = original, 1 = gap closed)")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[1].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def modalities_2d(query: torch.Tensor, retrieval: torch.Tensor, moved_query: torch.Tensor,
                  moved_retrieval: torch.Tensor, title: str) -> plt.Figure:
    """Both modalities projected on the top-2 PCs of the original pooled embeddings: the same axes
    before and after, so the move is visible."""
    pooled = torch.cat([query, retrieval]).double()
    mean = pooled.mean(0)
    _, _, vh = torch.linalg.svd(pooled - mean, full_matrices=False)
    proj = vh[:2].T
    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5), sharex=True, sharey=True)
    for ax, (q, r), name in zip(axes, ((query, retrieval), (moved_query, moved_retrieval)), ("before", "after")):
        qp, rp = (q.double() - mean) @ proj, (r.double() - mean) @ proj
        ax.scatter(qp[:, 0], qp[:, 1], s=4, alpha=0.4, label="images (query)")
        ax.scatter(rp[:, 0], rp[:, 1], s=30, marker="*", color="C3", label="text (retrieval)")
        ax.set_title(name)
        ax.set_xlabel("PC1")
    axes[0].set_ylabel("PC2")
    axes[0].legend(fontsize=8)
    fig.suptitle(title)
    return fig


def gap_dynamics(history: list[dict]) -> plt.Figure:
    """||g||, each modality's variance along g and the doubly-stochastic error over training steps."""
    steps = [h["step"] for h in history]
    fig, axes = plt.subplots(1, 3, figsize=(13, 3.6))
    axes[0].plot(steps, [h["gap_norm"] for h in history], marker="o", label="||g|| (images - text)")
    if all("gap_norm_null" in h for h in history):
        axes[0].plot(steps, [h["gap_norm_null"] for h in history], "k--", label="random halves (no gap)")
    axes[0].set_ylabel("||g||")
    axes[0].legend(fontsize=8)
    axes[1].plot(steps, [h["image_var_along_gap"] for h in history], marker="o", label="images")
    axes[1].plot(steps, [h["text_var_along_gap"] for h in history], marker="o", label="text")
    axes[1].set_ylabel("variance along g")
    axes[1].legend(fontsize=8)
    axes[2].plot(steps, [h["doubly_stochastic_error"] for h in history], marker="o")
    axes[2].set_ylabel("mean |column sum - 1|")
    for ax in axes:
        ax.set_xlabel("training step")
        ax.grid(alpha=0.3)
    fig.suptitle("gap formation during contrastive training")
    return fig
