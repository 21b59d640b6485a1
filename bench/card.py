"""Task cards: one declarative description per task, kept in the task's own package.

A task is a package ``<pkg>`` with ``<pkg>/card.py`` defining ``CARD = TaskCard(...)`` and
``<pkg>/task.py`` exposing ``run(cfg, run)`` and ``SCHEMAS``; :mod:`bench.tasks` finds it (no
central list). The card says which paper the task reproduces, which config groups it reads,
how its metrics are shown on the leaderboard, its embedded preset, and the paper's claims
(:mod:`bench.claims`) that every run and every seed group is checked against.

A minimal card (see docs/adding_a_task.md)::

    from bench.card import Metric, Paper, TaskCard
    from bench.claims import AtLeast, Claim, Value

    CARD = TaskCard(
        name="toy", version="1", preset="toy/tiny", groups=("task",),
        paper=Paper("A toy paper", "Doe", "NeurIPS 2030", "3001.00001"),
        metrics=(Metric("acc", "accuracy", higher_is_better=True),),
        claims=(Claim("learns", "the model learns", paper="acc 0.99",
                      check=AtLeast(Value("acc"), 0.9)),),
        targets={"toy/tiny": ("learns",)},
    )

Adding a metric to the leaderboard is one ``Metric(...)`` line; adding a claim is one
``Claim(...)`` (see :mod:`bench.claims` for the statistics and checks); ``targets`` lists,
per preset, the claims that preset is meant to reproduce (``bench-report --check-claims``
fails when one of them is not reproduced).
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bench.claims import Claim


@dataclass(frozen=True)
class Paper:
    """The paper a task reproduces."""
    title: str
    authors: str
    venue: str
    arxiv: str | None = None

    @property
    def cite(self) -> str:
        """``Authors, Venue (arXiv id)``."""
        return f"{self.authors}, {self.venue}" + (f" (arXiv {self.arxiv})" if self.arxiv else "")


@dataclass(frozen=True)
class Metric:
    """How one metric of a task is shown on the leaderboard.

    ``columns`` are the params that split the metric into several headline columns (e.g.
    ``alpha`` for accuracy at alpha=0 and alpha=1); ``where`` keeps only some values of a param
    for the headline (rows without that param pass). Other params (a fitted ``tau``, a noise
    ``level``) are averaged within a run for the headline cell; the per-condition table keeps
    them apart. ``headline=False`` only lends the display name, direction and format to the
    per-condition tables. The first headline metric's first column ranks the task's table.
    """
    name: str
    display: str
    fmt: str = ".3f"
    # True: higher is better; False: lower is better; None: take each row's higher_is_better.
    higher_is_better: bool | None = None
    columns: tuple[str, ...] = ()
    where: Mapping[str, tuple] = field(default_factory=dict)
    # Preferred order of column param values (listed first, in this order; others follow sorted).
    order: Mapping[str, tuple] = field(default_factory=dict)
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


@dataclass(frozen=True)
class TaskCard:
    """Everything bench needs to know about a task besides its code."""
    name: str  # the ``task.name`` of its config and the runs/<task>/ folder
    version: str  # bump when the protocol changes what a metric means
    paper: Paper
    groups: tuple[str, ...]  # the config groups its SCHEMAS validate
    preset: str  # the embedded preset `make run` runs (``conf/experiment/<preset>.yaml``)
    metrics: tuple[Metric, ...] = ()
    claims: tuple[Claim, ...] = ()
    # preset -> the claims it is meant to reproduce (checked by ``bench-report --check-claims``)
    targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind, names in (("metric", [m.name for m in self.metrics]), ("claim", [c.id for c in self.claims])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"task card {self.name!r}: duplicate {kind} {', '.join(dupes)}")
        known = {c.id for c in self.claims}
        for preset, ids in self.targets.items():
            unknown = [i for i in ids if i not in known]
            if unknown:
                raise ValueError(f"task card {self.name!r}: preset {preset!r} targets unknown claim(s) "
                                 f"{', '.join(unknown)}; known: {', '.join(sorted(known))}")

    def metric(self, name: str) -> Metric | None:
        """The display spec of metric ``name``, or None."""
        return next((m for m in self.metrics if m.name == name), None)

    @property
    def headline_metrics(self) -> list[Metric]:
        """The headline metrics in card order (the first ranks the table)."""
        return [m for m in self.metrics if m.headline]

    def targeted(self, preset: str | None) -> tuple[str, ...]:
        """The claim ids ``preset`` is meant to reproduce (none for an unknown or missing preset)."""
        return tuple(self.targets.get(preset, ())) if preset else ()
