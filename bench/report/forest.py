"""A task's claims as a forest plot: each claim's effect and interval beside its threshold.

Claims measure different things (a correlation, an accuracy change, a count), so each claim is
a panel with its own x axis, in the statistic's own units; a panel has one row per seed group.
A row shows the effect (dot, coloured by verdict) and its 95% interval (bar), the threshold
(dashed line) with the side the claim needs shaded, and the paper's figure (open diamond) where
the card gives one as a number. The interval is the verdict's ``low``/``high`` when it has them,
else value ± 1.96 stderr, else the point alone (:func:`claim_point` says which).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.atomic import atomic_save
from bench.report.claims import ClaimLine

COLORS = {"reproduced": "#1a7f37", "not reproduced": "#c62828", "inconclusive": "#b7791f",
          "invalid": "#6a1b9a", "not measured": "#8a8a8a", "not applicable": "#8a8a8a"}
FALLBACK_COLOR = "#444444"
Z95 = 1.959964

CAPTION = ("One panel per claim, each on its own x axis (the claim's statistic in its own units); one row per "
           "seed group. Dot: the effect, coloured by verdict; bar: its 95% interval ({source}); dashed line: "
           "the threshold, the shaded side is the side the claim needs; open diamond: the paper's figure where "
           "the card gives one as a number.")


def _num(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


@dataclass(frozen=True)
class Point:
    """What the forest plot draws for one claim line."""
    value: float | None
    low: float | None
    high: float | None
    interval: str  # "interval" (the verdict's own), "±1.96 se" or "point"
    threshold: float | None
    side: int | None  # +1: the claim needs value >= threshold; -1: <=; None: unknown
    paper_value: float | None
    status: str


def _side(line: ClaimLine, value: float | None, threshold: float | None) -> int | None:
    """The side of the threshold the claim needs: from the signed margin when it has one, else the check."""
    margin = _num(line.verdict.margin)
    if margin and value is not None and threshold is not None and value != threshold:
        return 1 if (margin > 0) == (value > threshold) else -1
    check = line.claim.check
    sign = getattr(check, "sign", None)  # a Monotone check: +1 rising, -1 falling
    if sign in (1, -1):
        return sign
    name = type(check).__name__
    return {"AtLeast": 1, "AtMost": -1}.get(name)


def claim_point(line: ClaimLine) -> Point:
    """The effect, interval, threshold and paper figure of a claim line, from whichever verdict fields exist."""
    v, check = line.verdict, line.claim.check
    value = _num(v.value)
    low, high = _num(getattr(v, "low", None)), _num(getattr(v, "high", None))
    stderr = _num(getattr(v, "stderr", None))
    if low is not None and high is not None:
        interval = "interval"
    elif value is not None and stderr:
        low, high, interval = value - Z95 * stderr, value + Z95 * stderr, "±1.96 se"
    else:
        low = high = None
        interval = "point"
    threshold = _num(getattr(v, "threshold", None))
    if threshold is None:
        threshold = _num(getattr(check, "threshold", None))
    if threshold is None and hasattr(check, "along"):
        threshold = 0.0  # a monotone check's effect is the first-to-last change: it must clear 0
    paper = _num(getattr(v, "paper_value", None))
    if paper is None:
        paper = _num(getattr(line.claim, "paper_value", None))
    return Point(value, low, high, interval, threshold, _side(line, value, threshold), paper, v.status)


def caption(lines: list[ClaimLine]) -> str:
    """The plot's caption, naming where its intervals came from."""
    sources = sorted({claim_point(line).interval for line in lines} - {"point"})
    named = {"interval": "the verdict's bootstrap interval", "±1.96 se": "value ± 1.96 stderr where the verdict "
             "gives no interval"}
    text = "; ".join(named[s] for s in sources) or "no claim here carries one"
    return CAPTION.format(source=text) + " No bar: a point value."


def _limits(points: list[Point]) -> tuple[float, float]:
    xs = [x for p in points for x in (p.value, p.low, p.high, p.threshold, p.paper_value) if x is not None]
    if not xs:
        return -1.0, 1.0
    lo, hi = min(xs), max(xs)
    pad = (hi - lo) * 0.12 or max(abs(hi) * 0.1, 1e-3)
    return lo - pad, hi + pad


def _fmt(x: float | None) -> str:
    return "—" if x is None else f"{x:.3g}"


def _panel(ax, lines: list[ClaimLine], group_label) -> None:
    import matplotlib.transforms as mtransforms

    points = [claim_point(line) for line in lines]
    lo, hi = _limits(points)
    ax.set_xlim(lo, hi)
    ax.set_ylim(len(points) - 0.5, -0.5)
    label_space = mtransforms.blended_transform_factory(ax.transAxes, ax.transData)
    for y, (line, p) in enumerate(zip(lines, points, strict=True)):
        color = COLORS.get(p.status, FALLBACK_COLOR)
        if p.low is not None:
            ax.plot([p.low, p.high], [y, y], color=color, lw=2.2, solid_capstyle="butt")
        if p.value is not None:
            ax.plot(p.value, y, "o", color=color, ms=6, zorder=3)
        else:
            ax.text(0.5, y, p.status, transform=label_space, ha="center", va="center", fontsize=8, color=color)
        if p.paper_value is not None:
            ax.plot(p.paper_value, y, "D", mfc="none", mec="black", ms=6, zorder=4)
        text = f"{p.status}  {_fmt(p.value)}"
        if p.low is not None:
            text += f" [{_fmt(p.low)}, {_fmt(p.high)}]"
        ax.text(1.02, y, text, transform=label_space, va="center", fontsize=8, color=color)
    ax.set_yticks(range(len(points)), [group_label(line) for line in lines], fontsize=8)
    ax.tick_params(axis="y", length=0)
    if all(p.value is None for p in points):  # nothing measured: no axis to read
        ax.set_xticks([])
        return
    threshold = points[0].threshold
    side = points[0].side
    if threshold is not None:
        ax.axvline(threshold, color="#555555", ls="--", lw=1)
        if side is not None:
            ax.axvspan(threshold, hi if side > 0 else lo, color="#1a7f37", alpha=0.08, lw=0)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#e4e4e4", lw=0.6)


def forest_plot(lines: list[ClaimLine], path: Path) -> Path:
    """Draw every claim line of one task (claims in card order, one row per seed group) to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels: dict[str, list[ClaimLine]] = {}
    for line in lines:
        panels.setdefault(line.claim.id, []).append(line)
    several = len({line.row.group for line in lines}) > 1

    def group_label(line: ClaimLine) -> str:
        if not several:
            return ""
        return " ".join(line.row.overrides) or line.preset or line.row.label

    heights = [len(ls) for ls in panels.values()]
    fig, axes = plt.subplots(len(panels), 1, figsize=(10, 0.55 + sum(0.42 * h + 0.38 for h in heights)),
                             gridspec_kw={"height_ratios": heights, "hspace": 0.9 if several else 1.1},
                             squeeze=False)
    for ax, (claim_id, claim_lines) in zip(axes[:, 0], panels.items(), strict=True):
        _panel(ax, claim_lines, group_label)
        ax.set_title(claim_id, loc="left", fontsize=9, fontweight="bold", pad=3)
    fig.subplots_adjust(left=0.2 if several else 0.06, right=0.66, top=1 - 0.25 / fig.get_figheight(),
                        bottom=0.3 / fig.get_figheight())
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    plt.close(fig)
    return path
