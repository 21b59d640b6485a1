"""A paper's claim: its check, its kind, the paper's figure, gates, preconditions and the deciding-item floor."""
from __future__ import annotations

import dataclasses
import logging
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from bench.claims.checks import Gate
from bench.claims.resample import N_BOOT, Resampler
from bench.claims.stats import Unmeasured
from bench.claims.verdict import (
    INCONCLUSIVE, INVALID, KINDS, NOT_APPLICABLE, NOT_MEASURED, NOT_REPRODUCED, REPRODUCED, Verdict)

log = logging.getLogger(__name__)

DECIDED = (REPRODUCED, NOT_REPRODUCED)
NO_UNITS = ("the value has no sampling units (one seed; no row carries items or a stderr), so nothing measures its "
            "uncertainty: a statistic exact by construction is declared with Claim(exact=True); ")


@dataclass(frozen=True)
class Claim:
    """One finding of the paper: what it says, the paper's figure, and the check of it.

    ``kind``: "direction" (an effect's sign) or "magnitude" (its size, against ``paper_value`` or a
    size the card declares as this suite's reading). ``gates``: validity gates (any failing -> "invalid",
    naming it). ``applies``: preconditions about the mechanism (any failing -> "not applicable", with the
    measured reason). ``min_deciding``: fewer items whose compared values differ -> "invalid".
    ``exact``: the statistic is exact by construction (a deterministic property of fixed inputs, such as
    "no clean prediction changes" on the evaluated set), so a value with no sampling units (one seed, no
    items, no stderr) is judged as written; without it such a value reads "inconclusive"."""
    id: str
    text: str
    paper: str  # the paper's own figure(s), or what it states when it gives none
    check: Any  # AtLeast / AtMost / Within / Monotone (anything with rows, compared and judge)
    fmt: str = ".3f"  # how the measured value is shown
    kind: str = "direction"
    paper_value: float | None = None
    gates: tuple[Gate, ...] = ()
    applies: tuple[Gate, ...] = ()
    min_deciding: int | None = None
    exact: bool = False

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"claim {self.id!r}: kind must be one of {', '.join(KINDS)}, not {self.kind!r}")
        for name in ("gates", "applies"):  # one Gate or several
            value = getattr(self, name)
            object.__setattr__(self, name, (value,) if isinstance(value, Gate) else tuple(value))

    def evaluate(self, rows: Sequence[dict], min_items: int | None = None) -> Verdict:
        """The verdict on one run's rows."""
        return self.evaluate_seeds([rows], min_items)

    def evaluate_seeds(self, runs: Sequence[Sequence[dict]], min_items: int | None = None,
                       n_boot: int = N_BOOT) -> Verdict:
        """The verdict on the rows of several seeds of one config (one list of rows per seed).

        ``min_items``: the units per seed and item set the preset declares (fewer read: invalid). A
        check that raises is recorded as invalid, with the error (not "not measured", which says the
        rows are absent): a bug in one check must not lose a finished run's record."""
        try:
            return self._evaluate(Resampler(runs, self.id, n_boot), min_items)
        except Unmeasured as e:
            return self._done(Verdict(self.id, NOT_MEASURED, note=str(e)))
        except Exception as e:
            log.exception("claim %s: check failed", self.id)
            return self._done(Verdict(self.id, INVALID, note=f"check failed: {type(e).__name__}: {e}"))

    def _done(self, verdict: Verdict, **changes: Any) -> Verdict:
        return dataclasses.replace(verdict, claim=self.id, kind=self.kind, paper_value=self.paper_value, **changes)

    def _evaluate(self, sample: Resampler, min_items: int | None) -> Verdict:
        sample.prepare(self.check.rows(sample.rows))  # one resampling pass per seed and item set
        count = sample.items_read(self.check.compared(sample.rows))
        n_deciding = count.n_deciding
        verdict = self._done(self.check.judge(sample), n_items=count.n_items, n_deciding=n_deciding,
                             seeds=count.seeds)
        for status, gates in ((INVALID, self.gates), (NOT_APPLICABLE, self.applies)):
            failed = [why for why in (g.failure(sample) for g in gates) if why]
            if failed:
                return dataclasses.replace(verdict, status=status, note="; ".join(failed))
        if not all(x is None or math.isfinite(x) for x in (verdict.value, verdict.low, verdict.high)):
            return dataclasses.replace(verdict, status=INVALID, note="the statistic is not finite (overflow or "
                                                                     "division by zero): " + verdict.note)
        if min_items is not None and count.smallest is not None and count.smallest < min_items:
            return dataclasses.replace(verdict, status=INVALID, note=f"a seed read {count.smallest} item(s) of an "
                                       f"item set, fewer than the {min_items} the preset declares; " + verdict.note)
        if self.min_deciding is not None and (n_deciding or 0) < self.min_deciding:
            return dataclasses.replace(verdict, status=INVALID, note=f"{n_deciding or 0} deciding item(s), fewer "
                                       f"than the {self.min_deciding} declared; " + verdict.note)
        if not self.exact and verdict.status in DECIDED and sample.unsampled(self.check.rows(sample.rows)):
            return dataclasses.replace(verdict, status=INCONCLUSIVE, note=NO_UNITS + verdict.note)
        return verdict


def evaluate(claims: Iterable[Claim], rows: Sequence[dict], min_items: int | None = None) -> list[Verdict]:
    """Every claim's verdict on one run's ``rows``."""
    return [c.evaluate(rows, min_items) for c in claims]
