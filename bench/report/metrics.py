"""The metrics registry: which metrics head each task's leaderboard, and how they are shown.

A :class:`MetricSpec` is keyed by ``(task, metric)``. Its ``columns`` are the params that split
the metric into several headline columns (e.g. ``alpha`` for accuracy at alpha=0 and alpha=1);
``where`` keeps only some values of a param for the headline (rows without that param pass).
Params that are neither (e.g. the fitted ``tau`` of a formula fit, or the noise ``level`` of a
robustness score) are averaged within a run for the headline cell; the full per-condition table
(CSV, HTML details) keeps them apart.

The registry decides which columns head a table, never whether a run appears: a task with no
registered metric in its data falls back to one column per metric and params combination.
Specs with ``headline=False`` only lend their display name, direction and format to the
per-condition tables.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True)
class MetricSpec:
    """How one ``(task, metric)`` is shown on the leaderboard."""
    task: str
    metric: str
    display: str
    fmt: str = ".3f"
    # True: higher is better; False: lower is better; None: take each row's higher_is_better.
    higher_is_better: bool | None = None
    columns: tuple[str, ...] = ()
    where: dict[str, tuple] = field(default_factory=dict)
    # Preferred order of column param values (listed first, in this order; others follow sorted).
    # The task's first headline column ranks its table, so this picks the ranking condition.
    order: dict[str, tuple] = field(default_factory=dict)
    headline: bool = True

    def selects(self, params: dict) -> bool:
        """Whether a metric row with these params belongs in the headline."""
        return all(k not in params or params[k] in allowed for k, allowed in self.where.items())

    def column_sort_key(self, shown: dict) -> tuple:
        """Sort key of one headline column (its column params' values) within this metric."""
        key = []
        for name in self.columns:
            preferred = self.order.get(name) or self.where.get(name) or ()
            value = shown.get(name)
            numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
            key.append((preferred.index(value) if value in preferred else len(preferred),
                        (0, value, "") if numeric else (1, 0, str(value))))
        return tuple(key)


GENERIC_FMT = ".4g"
SHIFT_FAMILIES = {"family": ("overlap", "extend", "truncation")}

REGISTRY: dict[tuple[str, str], MetricSpec] = {
    (s.task, s.metric): s for s in [
        # Paper 1: first-layer energy profiles (Pearson r between profiles).
        # The headline fit is of trained filters; the random-init control (weights=init) stays in
        # the per-condition table.
        # The linear CNN (kind=linear) is the formula's own model, a control kept apart from the
        # trained nonlinear CNNs (kind=cnn) that rank the table.
        # The headline is the paper's grid (grid=paper); the wide-grid diagnostic stays per-condition.
        MetricSpec("whitening", "formula_fit_r", "formula fit r", ".3f", True, columns=("kind", "labels"),
                   where={"weights": ("trained",), "grid": ("paper",)},
                   order={"kind": ("cnn", "linear"), "labels": ("true", True)}),
        MetricSpec("whitening", "formula_regime", "whitened share", ".3f", None, headline=False),
        MetricSpec("whitening", "consistency_r", "consistency r", ".3f", True, columns=("axis",),
                   where={"kind": ("cnn",)}),  # pairs of linear CNNs stay in the per-condition table
        # Whitening evidence: C(10) of each filter bank's outputs over the input's C(10) (paper:
        # learned ~0.2/0.5+, random ~1, ZCA 0); the trained CNNs' ratio is the headline.
        MetricSpec("whitening", "autocorr_ratio", "C(10) / input C(10)", ".3f", False, columns=("filters",),
                   where={"delta": (10,), "kind": ("cnn",)}, order={"filters": ("trained", "random", "zca")}),
        MetricSpec("whitening", "autocorr", "autocorr C(10)", ".3f", None, columns=("filters",),
                   where={"delta": (10,)}),
        MetricSpec("whitening", "label_pca_corr", "label-PCA corr", ".3f", False, columns=("labels",),
                   order={"labels": ("true", True)}),
        # Paper 2: the modality gap and robustness as the gap closes.
        # Headline: the paper's post-processing (mode=paper); mode=symmetric ("Mind the Gap") and
        # every other alpha stay in the per-condition table.
        MetricSpec("modality_gap", "acc1", "acc@1", ".4g", True, columns=("alpha", "mode"),
                   where={"alpha": (0, 1), "mode": ("paper",)}),
        MetricSpec("modality_gap", "gap_norm", "gap ‖g‖", ".3f", None),
        MetricSpec("modality_gap", "robustness", "robustness", ".3f", True,
                   columns=("alpha", "mode", "perturbation"), where={"alpha": (0, 1), "mode": ("paper",)},
                   order={"perturbation": ("gaussian", "quantize", "paraphrase")}),
        # Paper 3: accuracy under controlled latent shifts.
        # A shift run trains several classifiers: each architecture keeps its own columns.
        MetricSpec("shift", "auc", "AUC acc-vs-intensity", ".4g", True, columns=("arch", "family"),
                   order=SHIFT_FAMILIES),
        MetricSpec("shift", "accuracy_drop", "accuracy drop", ".4g", False, columns=("arch", "family"),
                   order=SHIFT_FAMILIES),
        MetricSpec("shift", "cas", "CAS", ".4g", True, columns=("arch",)),
        MetricSpec("shift", "accuracy", "accuracy", ".4g", True, columns=("family", "intensity"),
                   headline=False),
    ]
}


def spec_for(task: str, metric: str) -> MetricSpec | None:
    """The registered spec of ``(task, metric)``, or None."""
    return REGISTRY.get((task, metric))


def headline_specs(task: str) -> list[MetricSpec]:
    """The headline specs of a task, in registry order (the first one ranks the table)."""
    return [s for s in REGISTRY.values() if s.task == task and s.headline]


def format_value(value: float | None, fmt: str = GENERIC_FMT) -> str:
    """A number in the metric's format; missing or NaN shows as an em dash."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "—"
    return format(value, fmt)


def format_mean_std(mean: float | None, std: float | None, fmt: str = GENERIC_FMT) -> str:
    """``mean ± std`` (std omitted for a single seed)."""
    text = format_value(mean, fmt)
    if std is None or (isinstance(std, float) and math.isnan(std)) or text == "—":
        return text
    return f"{text} ± {format_value(std, fmt)}"
