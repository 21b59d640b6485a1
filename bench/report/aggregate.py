"""Aggregate completed runs into one leaderboard per task.

Runs that differ only by seed form a *seed group*: their config hash computed without ``seed`` is
equal. A leaderboard row is one model under test (the card's ``ranking_unit``, see
:mod:`bench.report.units`) in one seed group: a group whose run trains two classifiers is two
rows; the figures of such a run that name none of its models (a comparison between them, a
property of its data) are the group's own row in a second table, never ranked. Every metric is
aggregated per group and per params combination (mean, sample std, number of seeds); the headline
columns of a task come from its card's metrics, and the rows of each
table are ranked by its first headline column. Claims are checked per seed group.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import dataclass, field

import pandas as pd

from bench.provenance import HASH_EXCLUDED_KEYS, config_hash
from bench.report.collect import RunData
from bench.card import Metric
from bench.report.metrics import GENERIC_FMT, headline_specs, spec_for
from bench.report.rows import Cell, Row, SeedGroup
from bench.report.units import belongs, row_unit, run_units
from bench.tasks import card_for

SEEDLESS_EXCLUDED = (*HASH_EXCLUDED_KEYS, "seed")


def group_hash(record: dict) -> str:
    """The config hash of a run without its seed: runs with equal group hashes are seeds of one config."""
    return config_hash(record["config"], exclude=SEEDLESS_EXCLUDED, task_version=record.get("task_version"))


def params_label(params: dict) -> str:
    """``k=v, k=v`` in key order (empty for no params)."""
    return ", ".join(f"{k}={v}" for k, v in sorted(params.items()))


@dataclass(frozen=True)
class Column:
    """One headline column: a metric under one combination of its column params."""
    key: str
    metric: str
    params: dict  # the values of the spec's column params (all params for unregistered metrics)
    label: str
    fmt: str
    higher_is_better: bool


@dataclass
class Leaderboard:
    """The ranked table of one task, plus its full per-condition aggregate."""
    task: str
    columns: list[Column]
    rows: list[Row]
    groups: list[SeedGroup]  # in the order of their best-ranked row
    conditions: pd.DataFrame  # one line per (group, metric, params): mean, std, n_seeds
    fallback: bool  # True when no card headline metric was found (generic columns)
    ranking_unit: tuple[str, ...] = ()  # the card's keys naming a model under test
    # Figures of a whole config that runs several models (they name none of them): one row per group.
    config_columns: list[Column] = field(default_factory=list)
    config_rows: list[Row] = field(default_factory=list)


def _values_frame(runs: list[RunData], unit_keys: tuple[str, ...]) -> pd.DataFrame:
    """One line per metric row of every run, with its group, canonical params key and the unit keys it
    names (JSON)."""
    records = []
    for run in runs:
        group = group_hash(run.record)
        for row in run.rows:
            records.append({
                "task": run.record["task"], "group": group, "run_id": run.record["run_id"],
                "metric": row["metric"], "params": json.dumps(row["params"], sort_keys=True),
                "value": math.nan if row["value"] is None else row["value"],
                "higher_is_better": row["higher_is_better"],
                "named": json.dumps(row_unit(unit_keys, row["params"], run.record["config"]), default=str),
            })
    columns = ["task", "group", "run_id", "metric", "params", "value", "higher_is_better", "named"]
    return pd.DataFrame.from_records(records, columns=columns)


def _by_unit(frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, list[dict]]]:
    """``frame`` with a ``unit`` column (JSON): each line repeated for every model under test of its
    run it belongs to; in a run with several models, a line naming none of them is the whole
    config's (``null``: a comparison between its models, a figure of its data). Also the models of
    each group, in first-seen order."""
    units: dict[str, list[dict]] = {}
    parts = []
    for (group, _), lines in frame.groupby(["group", "run_id"], sort=False):
        named = {n: json.loads(n) for n in lines["named"].unique()}
        found = run_units(named.values())
        known = units.setdefault(group, [])
        known.extend(u for u in found if u not in known)
        for unit in found:
            keep = [n for n, u in named.items() if belongs(u, unit) and (u or len(found) == 1)]
            parts.append(lines[lines["named"].isin(keep)].assign(unit=json.dumps(unit, default=str)))
        if len(found) > 1:
            parts.append(lines[lines["named"] == "{}"].assign(unit="null"))
    return (pd.concat(parts, ignore_index=True) if parts else frame.assign(unit=[])), units


def _across_seeds(frame: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Mean within each run (several rows on one key), then mean/std/count across the group's runs."""
    per_run = frame.groupby([*keys, "run_id"], sort=False, dropna=False).agg(
        value=("value", "mean"), higher_is_better=("higher_is_better", "first")).reset_index()
    return per_run.groupby(keys, sort=False, dropna=False).agg(
        mean=("value", "mean"), std=("value", "std"), n_seeds=("value", "count"),
        higher_is_better=("higher_is_better", "first")).reset_index()


def _column(spec: Metric | None, metric: str, params: dict, higher_is_better: bool,
            unit_keys: tuple[str, ...]) -> Column:
    """The headline column a metric row falls in; all params split unregistered metrics. A column
    param the row does not have is left out of its label (older records lack newer params), and so
    is a ranking-unit key (the model under test is the row, not a column)."""
    shown = {k: params[k] for k in spec.columns if k in params} if spec else params
    shown = {k: v for k, v in shown.items() if k not in unit_keys}
    display = spec.display if spec else metric
    label = f"{display} [{params_label(shown)}]" if shown else display
    direction = higher_is_better if spec is None or spec.higher_is_better is None else spec.higher_is_better
    return Column(f"{metric}|{json.dumps(shown, sort_keys=True)}", metric, shown, label,
                  spec.fmt if spec else GENERIC_FMT, bool(direction))


def _headline(frame: pd.DataFrame, task: str, unit_keys: tuple[str, ...]
              ) -> tuple[pd.DataFrame, dict[str, Column], bool]:
    """The rows of ``frame`` that head the table, each tagged with its column key."""
    specs = {s.name: s for s in headline_specs(task)}
    registered = frame[frame["metric"].isin(specs)]
    fallback = registered.empty
    chosen = frame if fallback else registered
    columns: dict[str, Column] = {}
    keys = []
    for metric, params_json, hib in zip(chosen["metric"], chosen["params"], chosen["higher_is_better"], strict=True):
        params = json.loads(params_json)
        spec = None if fallback else specs[metric]
        if spec is not None and not spec.selects(params):
            keys.append(None)
            continue
        column = _column(spec, metric, params, hib, unit_keys)
        keys.append(column.key)
        columns.setdefault(column.key, column)
    chosen = chosen.assign(column=keys).dropna(subset=["column"])

    def order(c: Column) -> tuple:
        # Card order first (the first spec ranks the table), then the spec's preferred values.
        if fallback:
            return (c.metric, c.label)
        return (list(specs).index(c.metric), specs[c.metric].column_sort_key(c.params))

    ordered = sorted(columns.values(), key=order)
    return chosen, {c.key: c for c in ordered}, fallback


def _distinguishing_overrides(runs_by_group: dict[str, list[RunData]]) -> dict[str, list[str]]:
    """Each group's overrides without seed/path/logging keys (and its preset) and, when there are
    several groups, without the overrides that every group shares."""
    def relevant(override: str, record: dict) -> bool:
        key = override.lstrip("+~").split("=", 1)[0].split(".", 1)[0]
        # experiment=<preset> is the group's preset, shown on its own when the run recorded it
        return key not in SEEDLESS_EXCLUDED and not (key == "experiment" and record.get("preset"))

    own = {g: [o for o in runs[0].record["overrides"] if relevant(o, runs[0].record)]
           for g, runs in runs_by_group.items()}
    if len(own) < 2:
        return own
    shared = set.intersection(*(set(v) for v in own.values()))
    return {g: [o for o in v if o not in shared] for g, v in own.items()}


def _named(record: dict, key: str, config_key: str | None = None) -> str:
    """The model/dataset name the run recorded, else its config's ``name``, else an em dash."""
    section = record["config"].get(config_key or key)
    fallback = section.get("name") if isinstance(section, dict) else None
    return str(record[key]["name"] or fallback or "—")


# A value beyond sqrt(float max) has no finite square, so no finite spread over seeds: such a value
# (a hand-edited or overflowing record) is shown but never ranked.
RANKABLE = math.sqrt(sys.float_info.max)


def _rank(rows: list[Row], column: Column | None) -> None:
    """Rank rows by ``column`` (ties share a rank; rows without a value, or with one beyond
    ``RANKABLE``, are unranked, listed last)."""
    if column is None:
        return
    means = pd.Series([r.cells[column.key].mean if column.key in r.cells else math.nan for r in rows],
                      dtype="float64")
    means[means.abs() > RANKABLE] = math.nan
    ranks = means.rank(method="min", ascending=not column.higher_is_better)
    for row, rank in zip(rows, ranks, strict=True):
        row.rank = None if math.isnan(rank) else int(rank)
    rows.sort(key=lambda r: (r.rank is None, r.rank or 0, r.model, r.seed_group.dataset, r.key))


def _leaderboard(task: str, runs: list[RunData]) -> Leaderboard:
    card = card_for(task)
    unit_keys = tuple(card.ranking_unit) if card else ()
    frame = _values_frame(runs, unit_keys)
    runs_by_group: dict[str, list[RunData]] = {}
    for run in runs:
        runs_by_group.setdefault(group_hash(run.record), []).append(run)
    overrides = _distinguishing_overrides(runs_by_group)
    groups = {g: SeedGroup(g, _named(rs[0].record, "model"), _named(rs[0].record, "dataset", "data"), overrides[g], rs)
              for g, rs in runs_by_group.items()}

    by_unit, units = _by_unit(frame)
    chosen, columns, fallback = _headline(by_unit, task, unit_keys)
    rows = {(g, json.dumps(u, default=str)): Row(groups[g], u) for g in groups for u in units.get(g, [{}])}
    rows.update({(g, "null"): Row(groups[g], None) for g in set(by_unit.loc[by_unit["unit"] == "null", "group"])})
    for line in _across_seeds(chosen, ["group", "unit", "column"]).itertuples():
        # A non-finite aggregate (e.g. the std of values near the float limit overflows) is shown
        # as missing and never ranked.
        std = float(line.std) if math.isfinite(line.std) else None
        mean = float(line.mean) if math.isfinite(line.mean) else None
        row = rows[(line.group, line.unit)]
        if row.seed_group.shared_weights:
            std = None  # not a spread over trainings: every seed evaluated the same weights
        row.cells[line.column] = Cell(mean, std, int(line.n_seeds))
    models = [r for r in rows.values() if r.unit is not None]
    configs = [r for r in rows.values() if r.unit is None and r.cells]
    model_columns = [c for c in columns.values() if any(c.key in r.cells for r in models)]
    _rank(models, next(iter(model_columns), None))
    ranked_groups = list(dict.fromkeys(r.seed_group.group for r in models))
    configs.sort(key=lambda r: ranked_groups.index(r.seed_group.group))

    conditions = _across_seeds(frame, ["group", "metric", "params"])
    conditions.insert(0, "task", task)
    return Leaderboard(task, model_columns, models, [groups[g] for g in ranked_groups], conditions, fallback,
                       unit_keys, [c for c in columns.values() if any(c.key in r.cells for r in configs)], configs)


def build_leaderboards(runs: list[RunData]) -> list[Leaderboard]:
    """One leaderboard per task (sorted by task name) from the completed runs."""
    by_task: dict[str, list[RunData]] = {}
    for run in runs:
        by_task.setdefault(run.record["task"], []).append(run)
    return [_leaderboard(task, by_task[task]) for task in sorted(by_task)]


def conditions_table(boards: list[Leaderboard]) -> pd.DataFrame:
    """The full per-condition aggregate of every task, with row identity and provenance (for CSV)."""
    lines = []
    for board in boards:
        groups = {g.group: g for g in board.groups}
        best = {}  # each group's best rank (its rows are its models under test)
        for r in board.rows:
            best.setdefault(r.seed_group.group, r.rank)
        for c in board.conditions.itertuples():
            row = groups[c.group]
            spec = spec_for(board.task, c.metric)
            hib = c.higher_is_better if spec is None or spec.higher_is_better is None else spec.higher_is_better
            lines.append({
                "task": board.task, "rank": best[c.group], "model": row.model, "dataset": row.dataset,
                "overrides": " ".join(row.overrides), "group": row.group[:12], "metric": c.metric,
                "display": spec.display if spec else c.metric, "params": params_label(json.loads(c.params)),
                "mean": c.mean, "std": c.std, "n_seeds": int(c.n_seeds), "higher_is_better": bool(hib),
                "seeds": " ".join(map(str, row.seeds)), "shared_weights": row.shared_weights,
                "run_ids": " ".join(sorted(r.record["run_id"] for r in row.runs)),
                "provenance": row.provenance(),
            })
    return pd.DataFrame(lines)

