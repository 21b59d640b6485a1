"""Verdicts: the six statuses and the record a claim's check leaves in run.json and the report."""
from __future__ import annotations

import math
from dataclasses import dataclass

REPRODUCED = "reproduced"  # the interval clears the threshold on the claim's side
NOT_REPRODUCED = "not reproduced"  # the interval excludes the claim
INCONCLUSIVE = "inconclusive"  # the interval straddles the threshold
NOT_MEASURED = "not measured"  # the rows the claim needs are absent
NOT_APPLICABLE = "not applicable"  # a declared precondition about the mechanism fails (measured reason)
INVALID = "invalid"  # a validity gate failed, too few deciding items, or a non-finite statistic
STATUSES = (REPRODUCED, NOT_REPRODUCED, INCONCLUSIVE, NOT_MEASURED, NOT_APPLICABLE, INVALID)

DIRECTION, MAGNITUDE = "direction", "magnitude"
KINDS = (DIRECTION, MAGNITUDE)


def _num(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


@dataclass(frozen=True)
class Verdict:
    """The outcome of one claim on the rows of one run or one seed group."""
    claim: str
    status: str
    value: float | None = None  # the effect (the statistic on the data)
    low: float | None = None  # its interval (95% percentile bootstrap unless the check says otherwise)
    high: float | None = None
    threshold: float | None = None
    margin: float | None = None  # the deciding criterion's (value - threshold) / stderr, in the claim's direction
    figures: tuple[str, ...] = ()
    note: str = ""
    n_items: int | None = None  # distinct units read (None: no row carries items)
    n_deciding: int | None = None  # units whose compared values differ
    seeds: int = 0  # seeds that contributed rows
    kind: str = DIRECTION
    paper_value: float | None = None

    def as_record(self, targeted: bool = False) -> dict:
        """The JSON form stored in run.json's ``claims`` (non-finite numbers become null)."""
        return {"id": self.claim, "verdict": self.status, "value": _num(self.value), "low": _num(self.low),
                "high": _num(self.high), "threshold": _num(self.threshold), "paper_value": _num(self.paper_value),
                "kind": self.kind, "n_items": self.n_items, "n_deciding": self.n_deciding, "seeds": self.seeds,
                "margin": _num(self.margin), "figures": list(self.figures), "note": self.note,
                "targeted": targeted}
