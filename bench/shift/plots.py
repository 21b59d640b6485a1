"""Figures of the shift benchmark: accuracy versus intensity, one panel per family."""
from __future__ import annotations

import math

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.shift.families import PARAM_NAMES  # noqa: E402


def accuracy_vs_intensity(table: list[dict], family: str):
    """One line per classifier (arch, aug, n_train) over the family's parameter (the x axis); tick
    labels carry the paper's labelled angle and the measured one (slerp families) and the sample
    divergence ``latent_mmd2`` beside each intensity."""
    rows = [r for r in table if r["family"] == family]
    fig, ax = plt.subplots(figsize=(5.6, 3.9))
    curves: dict[str, list[dict]] = {}
    for r in rows:
        curves.setdefault(r["classifier"], []).append(r)
    for label, pts in sorted(curves.items()):
        pts = sorted(pts, key=lambda r: r["intensity"])
        ax.errorbar([p["intensity"] for p in pts], [100 * p["accuracy"] for p in pts],
                    yerr=[100 * p["stderr"] for p in pts], marker="o", capsize=2, label=label)
    ticks = {r["intensity"]: r for r in rows}
    ax.set_xticks(sorted(ticks))
    ax.set_xticklabels([_tick(ticks[t]) for t in sorted(ticks)], fontsize=6.5)
    param = PARAM_NAMES[family]
    if family == "truncation":
        ax.set_xlabel(f"radius {param} (the paper's axis); MMD² of the latents from the base", fontsize=8)
    else:
        ax.set_xlabel(f"{param}; the paper's axis is the labelled angle θ (π units), the latents turn θm; "
                      "MMD² from the base", fontsize=7)
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Control+Shift: {family}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _tick(r: dict) -> str:
    lines = [f"{r['intensity']:g}"]
    if r.get("angle") is not None:
        lines.append(f"θ {r['angle'] / math.pi:.3g}π")
        lines.append(f"θm {r['angle_measured'] / math.pi:.3g}π")
    lines.append(f"{r['latent_mmd2']:.2g}")
    return "\n".join(lines)
