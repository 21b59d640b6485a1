"""A task's claims as a forest plot: each claim's effect and interval beside its threshold.

Claims measure different things (a correlation, an accuracy change, a count), so each claim is
a panel with its own x axis, in the statistic's own units; a panel has one row per seed group.
A row shows the effect (dot, coloured by verdict) and its interval (bar: the verdict's
``low``/``high``), the threshold (dashed line) with the side the claim needs shaded (a magnitude
claim's band is shaded between its edges), and the paper's figure (open diamond) where the card
gives one as a number. Claims no group measured are listed under the panels by verdict.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

from bench.atomic import atomic_save
from bench.claims import Within
from bench.report.claims import ClaimLine

COLORS = {"reproduced": "#1a7f37", "not reproduced": "#c62828", "inconclusive": "#b7791f",
          "invalid": "#6a1b9a", "not measured": "#8a8a8a", "not applicable": "#8a8a8a"}
FALLBACK_COLOR = "#444444"

# The plot's caption, the same words in md and html.
CAPTION = ("One panel per claim, each on its own x axis (the claim's statistic in its own units); one row per "
           "seed group. Dot: the effect, coloured by verdict; bar: its interval (95% bootstrap over the units "
           "sampled, nested in seeds, unless the claim sets another level; no bar: an exact value); dashed "
           "line: the threshold, the shaded side is the side the claim needs (a magnitude claim: the band it "
           "must fall in); open diamond: the paper's figure where the card gives one as a number. Claims "
           "with no value in any group are listed under the panels.")


def _num(x: object) -> float | None:
    return float(x) if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) else None


@dataclass(frozen=True)
class Point:
    """What the forest plot draws for one claim line."""
    value: float | None
    low: float | None
    high: float | None
    threshold: float | None
    side: int | None  # +1: the claim needs value >= threshold; -1: <=; None: a band or unknown
    band: tuple[float, float] | None  # a magnitude claim's [low, high]
    paper_value: float | None
    status: str


def claim_point(line: ClaimLine) -> Point:
    """The effect, interval, threshold and paper figure of a claim line (from its verdict and check)."""
    v, check = line.verdict, line.claim.check
    low, high = _num(v.low), _num(v.high)
    if low is None or high is None or low == high:
        low = high = None  # an exact value: no interval to draw
    band = (check.low, check.high) if isinstance(check, Within) else None
    side = getattr(check, "sign", None)
    return Point(_num(v.value), low, high, _num(v.threshold), side if side in (1, -1) and band is None else None,
                 band, _num(v.paper_value), v.status)


def _limits(points: list[Point]) -> tuple[float, float]:
    xs = [x for p in points for x in (p.value, p.low, p.high, p.threshold, p.paper_value, *(p.band or ()))
          if x is not None]
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
    first = points[0]
    if first.band is not None:
        for edge in first.band:
            ax.axvline(edge, color="#555555", ls="--", lw=1)
        ax.axvspan(*first.band, color="#1a7f37", alpha=0.08, lw=0)
    elif first.threshold is not None:
        ax.axvline(first.threshold, color="#555555", ls="--", lw=1)
        if first.side is not None:
            ax.axvspan(first.threshold, hi if first.side > 0 else lo, color="#1a7f37", alpha=0.08, lw=0)
    ax.tick_params(axis="x", labelsize=7)
    ax.grid(axis="x", color="#e4e4e4", lw=0.6)


def forest_plot(lines: list[ClaimLine], path: Path) -> Path:
    """Draw every claim line of one task (claims in card order, one row per seed group) to ``path`` (PNG)."""
    from matplotlib.figure import Figure  # no pyplot: no global figure state, no GUI backend

    by_claim: dict[str, list[ClaimLine]] = {}
    for line in lines:
        by_claim.setdefault(line.claim.id, []).append(line)
    # A claim no group measured has nothing to draw: it is one line of text under the panels.
    panels = {c: ls for c, ls in by_claim.items() if any(claim_point(line).value is not None for line in ls)}
    unmeasured: dict[str, list[str]] = {}
    for claim_id, claim_lines in by_claim.items():
        if claim_id not in panels:
            status = " / ".join(sorted({line.verdict.status for line in claim_lines}))
            unmeasured.setdefault(status, []).append(claim_id)
    footer = "; ".join(f"{status}: {', '.join(ids)}" for status, ids in unmeasured.items())
    several = len({line.row.group for line in lines}) > 1

    def group_label(line: ClaimLine) -> str:
        if not several:
            return ""
        return " ".join(line.row.overrides) or line.preset or line.row.label

    heights = [len(ls) for ls in panels.values()]
    extra = 0.35 if footer else 0.0
    fig = Figure(figsize=(10, 0.55 + extra + sum(0.42 * h + 0.38 for h in heights)))
    if panels:
        axes = fig.subplots(len(panels), 1, squeeze=False,
                            gridspec_kw={"height_ratios": heights, "hspace": 0.9 if several else 1.1})
        for ax, (claim_id, claim_lines) in zip(axes[:, 0], panels.items(), strict=True):
            _panel(ax, claim_lines, group_label)
            ax.set_title(claim_id, loc="left", fontsize=9, fontweight="bold", pad=3)
    if footer:
        fig.text(0.01, 0.12 / fig.get_figheight(), footer, fontsize=8, color=COLORS["not measured"], wrap=True)
    fig.subplots_adjust(left=0.2 if several else 0.06, right=0.66, top=1 - 0.25 / fig.get_figheight(),
                        bottom=(0.3 + extra) / fig.get_figheight())
    atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=100, format="png"))
    return path
