"""What a leaderboard is made of: seed groups (the runs of one config) and rows (a model under test
in one group, with its headline cells)."""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from bench.report.collect import RunData
from bench.report.units import unit_label


@dataclass
class Cell:
    """A metric aggregated over the seeds of a group."""
    mean: float | None
    std: float | None
    n: int


@dataclass
class SeedGroup:
    """The runs of one config that differ only by seed; claims are checked on it."""
    group: str  # its seedless config hash
    model: str  # the model name the runs recorded (e.g. ``resnet20+mlp_mixer`` for a run training both)
    dataset: str
    overrides: list[str]
    runs: list[RunData]

    @property
    def n_seeds(self) -> int:
        return len(self.runs)

    @property
    def seeds(self) -> list:
        return sorted((r.record["seed"] for r in self.runs), key=lambda s: (s is None, s))

    @property
    def preset(self) -> str | None:
        """The preset (``experiment=...``) the runs were launched with, if any."""
        return self.representative.record.get("preset")

    @property
    def shared_weights(self) -> str | None:
        """The weights identity every seed of the group evaluated, when they all share one (a seed
        sweep that never retrained the model: its spread says nothing about training), else None."""
        ids = {(r.record.get("model") or {}).get("weights") for r in self.runs}
        return ids.pop() if self.n_seeds > 1 and len(ids) == 1 and None not in ids else None

    @property
    def label(self) -> str:
        """``model / dataset overrides`` for captions and links."""
        return " ".join([f"{self.model} / {self.dataset}", *self.overrides])

    @property
    def representative(self) -> RunData:
        """The most recently finished run of the group (its plots stand for the group)."""
        return max(self.runs, key=lambda r: (r.record["finished_at"] or "", r.record["run_id"]))

    def provenance(self) -> str:
        """Git sha(s), date(s) and hardware of the runs behind this group."""
        shas = sorted({(r.record["git"]["sha"] or "unknown")[:8] + ("-dirty" if r.record["git"]["dirty"] else "")
                       for r in self.runs})
        dates = sorted({(r.record["finished_at"] or r.record["started_at"])[:10] for r in self.runs})
        hw = sorted({f"{r.record['hardware']['device']} ×{r.record['hardware']['n_devices']}" for r in self.runs})
        date = dates[0] if len(dates) == 1 else f"{dates[0]}…{dates[-1]}"
        return f"git {', '.join(shas)} · {date} · {'; '.join(hw)}"


@dataclass
class Row:
    """One leaderboard row: a model under test (``unit``) in one seed group, its headline cells."""
    seed_group: SeedGroup
    # the card's ranking-unit keys and their values ({} when the card declares none); None: the
    # whole config (figures naming none of the several models its runs hold)
    unit: dict | None
    cells: dict[str, Cell] = field(default_factory=dict)
    rank: int | None = None

    @property
    def model(self) -> str:
        """The model under test (``resnet20, width=0.5``), else the model name the runs recorded."""
        return unit_label(self.unit or {}) or self.seed_group.model

    @property
    def n_seeds(self) -> int:
        return self.seed_group.n_seeds

    @property
    def seeds(self) -> list:
        return self.seed_group.seeds

    @property
    def shared_weights(self) -> str | None:
        return self.seed_group.shared_weights

    @property
    def key(self) -> str:
        """Group hash and unit: unique within a task (an HTML anchor, a sort tiebreak)."""
        return f"{self.seed_group.group[:12]}:{json.dumps(self.unit, sort_keys=True, default=str)}"
