"""Figures of the shift benchmark: accuracy versus intensity, one panel per family."""
from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from bench.shift.families import PARAM_NAMES  # noqa: E402


def accuracy_vs_intensity(table: list[dict], family: str):
    """One line per classifier (arch, aug, n_train) over the family's intensities; tick labels
    carry the closed-form latent KL beside each intensity."""
    rows = [r for r in table if r["family"] == family]
    fig, ax = plt.subplots(figsize=(5.2, 3.6))
    curves: dict[str, list[dict]] = {}
    for r in rows:
        curves.setdefault(r["classifier"], []).append(r)
    for label, pts in sorted(curves.items()):
        pts = sorted(pts, key=lambda r: r["intensity"])
        ax.errorbar([p["intensity"] for p in pts], [100 * p["accuracy"] for p in pts],
                    yerr=[100 * p["stderr"] for p in pts], marker="o", capsize=2, label=label)
    ticks = sorted({(r["intensity"], r["latent_kl"]) for r in rows})
    ax.set_xticks([t for t, _ in ticks])
    ax.set_xticklabels([f"{t:g}\nKL {kl:.3g}" for t, kl in ticks], fontsize=7)
    ax.set_xlabel(f"{family} intensity {PARAM_NAMES[family]} (latent KL from base, nats)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"Control+Shift: {family}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    return fig
