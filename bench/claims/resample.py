"""The bootstrap behind every interval: seeds resampled, then items resampled within each seed.

A claim is checked on the rows of one or more seeds (runs of one config). Each replicate ``b``
draws ``k`` seeds with replacement (``k`` = the number of seeds; none drawn when there is one),
and for every drawn slot ``j`` resamples the items of that seed: a row with ``items`` is worth the
mean of its items under the slot's resample, and every row of that seed and ``item_set`` uses the
*same* resampled indices, so two conditions measured on the same images are compared image by
image (a paired bootstrap). The pairing is by (seed, item set): every row of one seed and item set
is resampled in one pass, drawn from a generator keyed by the claim, the seed, the slot and the
item set's name, whichever of those rows a statistic asks for first. A condition's value in a
replicate is the mean over the drawn slots. Rows without ``items`` fall back to their ``stderr`` (a
normal draw around the value) or, without one, to their value: their spread then comes from the
seeds alone, and a single seed's such rows have no sampling units at all (:meth:`Resampler.unsampled`:
a claim reads them "inconclusive" unless its statistic is exact by construction).

Monte-Carlo trials never enter here: a task averages them within an item, so running 10x more
trials only makes each item's value more precise, never the items more numerous.

Every draw is seeded from the claim id (and the seed, slot and item set), so a verdict is the same
on every machine and at every evaluation order.
"""
from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bench.claims.rows import params_key

N_BOOT = 2000  # replicates per interval (percentile intervals at 95% want >= 1000)
_CHUNK = 2_000_000  # resampled indices held at once (memory: 16 bytes each)


def stable_hash(text: str) -> int:
    """A process-independent 32-bit hash (Python's ``hash`` of a str is salted per process)."""
    return zlib.crc32(text.encode())


class Resampler:
    """The bootstrap draws of one claim on the rows of ``runs`` (one list of rows per seed)."""

    def __init__(self, runs: Sequence[Sequence[dict]], key: str, n_boot: int = N_BOOT) -> None:
        self.runs = [[r for r in rows if r.get("value") is not None] for rows in runs]
        self.rows = [r for rows in self.runs for r in rows]
        self._seed_of = {id(r): s for s, rows in enumerate(self.runs) for r in rows}
        self._position = {id(r): i for rows in self.runs for i, r in enumerate(rows)}
        self._units: dict[tuple[int, str], list[dict]] = {}  # (seed, item set) -> its rows with items
        # in a canonical order (metric, params), so the draws do not depend on the order rows were logged in
        for r in sorted(self.rows, key=lambda r: (r["metric"], params_key(r["params"]))):
            if r.get("items"):
                self._units.setdefault((self.seed_of(r), self.item_set_of(r)), []).append(r)
        self.k, self.n_boot, self.key = len(self.runs), n_boot, stable_hash(key)
        rng = np.random.default_rng([self.key, 0])
        # slots[b, j]: the seed drawn in slot j of replicate b
        self.slots = rng.integers(0, self.k, (n_boot, self.k)) if self.k > 1 else np.zeros((n_boot, 1), int)
        self._draws: dict[int, np.ndarray] = {}  # id(row) -> (k slots, n_boot) values

    def seed_of(self, row: dict) -> int:
        """The index of the seed (run) a row came from."""
        return self._seed_of[id(row)]

    def item_set_of(self, row: dict) -> str:
        """The units a row's items belong to: its ``item_set``, or a name of its own (unpaired: one per
        seed and row, so no two rows share it)."""
        return row.get("item_set") or f"unpaired row {self.seed_of(row)}:{self._position[id(row)]}"

    def unsampled(self, rows: Sequence[dict]) -> bool:
        """True when ``rows`` carry no sampling units: at most one seed, and no row with items or a stderr
        (every replicate then equals the value, whatever the data's real uncertainty)."""
        return len({self.seed_of(r) for r in rows}) <= 1 and not any(r.get("items") or r.get("stderr") for r in rows)

    def prepare(self, rows: Sequence[dict]) -> None:
        """Compute the replicate values of ``rows``; a row with items brings every row of its seed and item
        set into the same pass, so rows asked for in different calls are still paired item by item."""
        for r in rows:
            if id(r) in self._draws:
                continue
            s = self.seed_of(r)
            if not r.get("items"):
                self._draws[id(r)] = self._plain(r, s)
                continue
            name = self.item_set_of(r)
            group = self._units[(s, name)]
            for row, draws in zip(group, self._resample_items(group, s, name), strict=True):
                self._draws[id(row)] = draws

    def point(self, rows: Sequence[dict]) -> float:
        """One condition's value over the seeds, without resampling: the mean over seeds of each seed's
        mean row value."""
        per_seed: dict[int, list[dict]] = {}
        for r in rows:
            per_seed.setdefault(self.seed_of(r), []).append(r)
        with np.errstate(over="ignore", invalid="ignore"):
            points = [sum(r["value"] / len(same) for r in same) for same in per_seed.values()]
            return sum(p / len(points) for p in points)

    def _plain(self, row: dict, s: int) -> np.ndarray:
        """A row without items: its value, spread by its stderr when it has one."""
        shape = (self.k, self.n_boot)
        if not row.get("stderr"):
            return np.full(shape, float(row["value"]))
        # keyed by the row's position in its run: two rows of one condition get independent errors
        rng = np.random.default_rng([self.key, 2, s, self._position[id(row)]])
        with np.errstate(over="ignore", invalid="ignore"):
            return row["value"] + row["stderr"] * rng.standard_normal(shape)

    def _resample_items(self, group: list[dict], s: int, name: str) -> np.ndarray:
        """(rows, k slots, n_boot): each row's item mean under each slot's resample of the item set."""
        lengths = {len(r["items"]) for r in group}
        if len(lengths) > 1:
            raise ValueError(f"item set {name!r} has rows of {sorted(lengths)} items in one run; rows of one "
                             "item set must list the same units in the same order")
        items = np.array([r["items"] for r in group], dtype=float)  # (rows, n)
        n = items.shape[1]
        # Items with the same values in every row are interchangeable: resampling n items is drawing
        # how many of each distinct column (a multinomial over the distinct columns), which is exact
        # and cheap when few items differ (0/1 correctness, robustness that is mostly 1).
        patterns, weight = np.unique(items.T, axis=0, return_counts=True)  # (m, rows), (m,)
        out = np.empty((len(group), self.k, self.n_boot))
        with np.errstate(over="ignore", invalid="ignore"):
            for j in range(self.k):
                rng = np.random.default_rng([self.key, 1, s, j, stable_hash(name)])
                if len(weight) <= n // 4:
                    counts = rng.multinomial(n, weight / n, size=self.n_boot)  # (n_boot, m)
                    out[:, j] = ((patterns / n).T @ counts.T)
                    continue
                step = max(1, _CHUNK // n)
                for b0 in range(0, self.n_boot, step):
                    c = min(step, self.n_boot - b0)
                    idx = rng.integers(0, n, (c, n)) + n * np.arange(c)[:, None]
                    counts = np.bincount(idx.ravel(), minlength=c * n).reshape(c, n)
                    out[:, j, b0:b0 + c] = (items / n) @ counts.T
        return out

    def pooled(self, rows: Sequence[dict]) -> np.ndarray:
        """One condition's value over the seeds: ``[point, replicate 1, ..., replicate n_boot]``.

        The point is the mean over seeds of each seed's mean row value; a replicate is the mean over
        its drawn slots (slots whose seed lacks the condition are left out; none left: NaN)."""
        self.prepare(rows)
        per_seed: dict[int, list[dict]] = {}
        for r in rows:
            per_seed.setdefault(self.seed_of(r), []).append(r)
        table = np.full((self.k, self.k, self.n_boot), np.nan)  # (seed, slot, replicate)
        with np.errstate(over="ignore", invalid="ignore"):
            for s, same in per_seed.items():
                table[s] = sum(self._draws[id(r)] / len(same) for r in same)
            drawn = table[self.slots, np.arange(self.slots.shape[1])[None, :], np.arange(self.n_boot)[:, None]]
            present = ~np.isnan(drawn)
            count = present.sum(axis=1)
            reps = (np.where(present, drawn, 0.0) / np.where(count, count, 1)[:, None]).sum(axis=1)  # v/n: no overflow
        reps[count == 0] = np.nan
        return np.concatenate([[self.point(rows)], reps])

    def items_read(self, compared: Sequence[Sequence[dict]]) -> ItemCount:
        """How many units a claim read, and how many of them decide it.

        ``compared``: the groups of rows the claim compares (a difference's two conditions, one curve
        of a monotone trend; a single condition alone). ``n_items``: the distinct units (item set,
        index) among rows with items. An item *decides* when its values differ between the rows of
        one group, item set and seed (an item a group reads through one row only decides too)."""
        rows = [r for group in compared for r in group]
        seeds = len({self.seed_of(r) for r in rows})
        sizes: dict[str, int] = {}
        deciding: dict[str, np.ndarray] = {}
        for group in compared:
            same: dict[tuple[str, int], list[dict]] = {}
            for r in group:
                if r.get("items"):
                    same.setdefault((self.item_set_of(r), self.seed_of(r)), []).append(r)
            for (name, _), rs in same.items():
                values = np.array([r["items"] for r in rs], dtype=float)
                differ = (values != values[0]).any(axis=0) if len(rs) > 1 else np.ones(values.shape[1], bool)
                sizes[name] = min(values.shape[1], sizes.get(name, values.shape[1]))
                deciding[name] = differ if name not in deciding else _union(deciding[name], differ)
        if not sizes:
            return ItemCount(None, None, seeds, None)
        return ItemCount(sum(len(d) for d in deciding.values()), sum(int(d.sum()) for d in deciding.values()),
                         seeds, min(sizes.values()))


def _union(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Index-wise OR of two seeds' deciding masks of one item set (a seed that evaluated fewer units
    decides none of the ones it did not read)."""
    n = max(len(a), len(b))
    return np.pad(a, (0, n - len(a))) | np.pad(b, (0, n - len(b)))


@dataclass(frozen=True)
class ItemCount:
    """The units a claim read: ``n_items`` and ``n_deciding`` (None without items), the seeds that
    contributed rows, and the fewest units one seed evaluated in any item set."""
    n_items: int | None
    n_deciding: int | None
    seeds: int
    smallest: int | None
