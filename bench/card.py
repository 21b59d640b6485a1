"""Task cards: one declarative description per task, kept in the task's own package.

A task is a package ``<pkg>`` with ``<pkg>/card.py`` defining ``CARD = TaskCard(...)`` and
``<pkg>/task.py`` exposing ``run(cfg, run)`` and ``SCHEMAS``; :mod:`bench.tasks` finds it (no
central list). The card says which paper the task reproduces, how its metrics are shown on the
leaderboard, its embedded preset, and the paper's claims (:mod:`bench.claims`) that every run and every
seed group is checked against. The config groups a task reads are its ``SCHEMAS``' keys, said nowhere else.

A minimal card (see docs/adding_a_task.md)::

    from bench.card import Metric, Paper, TaskCard
    from bench.claims import AtLeast, Claim, Value

    CARD = TaskCard(
        name="toy", version="1", preset="toy/tiny",
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

A preset is *declared* before it runs, not from what passed: ``seeds`` (the seeds `make run` and a
study run: ``bench -m experiment=<preset> seed=0,1,2``), ``items`` (the units each seed evaluates
per item set; a claim that read fewer is "invalid"), ``cannot_test`` (claim id -> why the preset
cannot measure it) and ``threads`` (what `make run` runs it with; 1 unless declared). For a preset
that declares its seeds, every claim of the card is either a target
or in ``cannot_test``: a claim the preset can measure is a target, whatever its outcome.
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
    preset: str  # the embedded preset `make run` runs (``experiment/<preset>.yaml`` in the task's ``conf/``)
    metrics: tuple[Metric, ...] = ()
    claims: tuple[Claim, ...] = ()
    # preset -> the claims it is meant to reproduce (checked by ``bench-report --check-claims``)
    targets: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # preset -> the seeds it runs (``make run`` sweeps them; enough that no verdict hangs on one seed)
    seeds: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # preset -> the units per seed in every item set its claims read (fewer read: the verdict is invalid)
    items: Mapping[str, int] = field(default_factory=dict)
    # preset -> the CPU threads `make run` runs it with (default 1): a number declared with the preset, never
    # a share of the machine, since it changes the bits of every result (recorded in each run's provenance)
    threads: Mapping[str, int] = field(default_factory=dict)
    # preset -> {claim id: why the preset cannot measure it}, said in advance
    cannot_test: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    # The unit a leaderboard row ranks, the model under test: metric-row params (e.g. ``arch``: one run
    # trains several classifiers) or dotted config keys (e.g. ``clip.name``: one model per run), each
    # looked up in a row's params first, then in its run's config. Empty: one row per config group.
    ranking_unit: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        for kind, names in (("metric", [m.name for m in self.metrics]), ("claim", [c.id for c in self.claims])):
            dupes = sorted({n for n in names if names.count(n) > 1})
            if dupes:
                raise ValueError(f"task card {self.name!r}: duplicate {kind} {', '.join(dupes)}")
        for preset, ids in self.targets.items():
            self._known(ids, f"preset {preset!r} targets")
        for preset, reasons in self.cannot_test.items():
            self._known(reasons, f"preset {preset!r} cannot_test")
            blank = [i for i, why in reasons.items() if not str(why).strip()]
            both = sorted(set(reasons) & set(self.targets.get(preset, ())))
            if blank or both:
                raise ValueError(f"task card {self.name!r}: preset {preset!r}: " + (
                    f"cannot_test needs a reason for {', '.join(blank)}" if blank else
                    f"{', '.join(both)} both targeted and in cannot_test"))
        for preset, seeds in self.seeds.items():
            if not seeds or len(set(seeds)) != len(seeds) or not all(isinstance(x, int) and x >= 0 for x in seeds):
                raise ValueError(f"task card {self.name!r}: preset {preset!r} seeds must be distinct integers "
                                 f">= 0, not {seeds!r}")
            undeclared = [c.id for c in self.claims if c.id not in self.targets.get(preset, ())
                          and c.id not in self.cannot_test.get(preset, {})]
            if undeclared:
                raise ValueError(f"task card {self.name!r}: preset {preset!r} neither targets nor says why it "
                                 f"cannot test {', '.join(undeclared)} (every claim a preset can measure is a "
                                 "target; the others go in cannot_test with the reason)")
        for preset, n in self.items.items():
            if not isinstance(n, int) or n < 1:
                raise ValueError(f"task card {self.name!r}: preset {preset!r} items must be a positive integer")

    def _known(self, ids, what: str) -> None:
        unknown = [i for i in ids if i not in {c.id for c in self.claims}]
        if unknown:
            raise ValueError(f"task card {self.name!r}: {what} unknown claim(s) {', '.join(unknown)}; "
                             f"known: {', '.join(sorted(c.id for c in self.claims))}")

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

    def seeds_for(self, preset: str) -> tuple[int, ...]:
        """The seeds ``preset`` declares (empty: the config's own seed)."""
        return tuple(self.seeds.get(preset, ()))

    def threads_for(self, preset: str) -> int:
        """The threads ``preset`` declares for `make run` (1 unless declared)."""
        return int(self.threads.get(preset, 1))

    def min_items(self, preset: str | None) -> int | None:
        """The units per item set ``preset`` declares its claims read (None: not declared)."""
        return self.items.get(preset) if preset else None
