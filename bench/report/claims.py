"""The "Paper claims" table of each task: its card's claims checked on every seed group.

For each group (the runs of one config that differ only by seed) and each claim of the task's
card, the claim is checked on the group's seeds together (:meth:`bench.claims.Claim.evaluate_seeds`:
conditions pooled over seeds by their params, intervals bootstrapped over seeds and items): that is
the verdict. Beside it, the claim's value on
each seed's own rows gives "this suite, mean ± std over seeds". The report checks the metrics
itself, so v1 records (which carry no verdicts) and claims added to a card later are covered too.

A claim is *targeted* for a group when the card lists it under the group's preset
(``TaskCard.targets``); ``bench-report --check-claims`` fails when a targeted claim is not
reproduced.
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

import pandas as pd

from bench.claims import REPRODUCED, Claim, Verdict
from bench.report.aggregate import Leaderboard
from bench.report.rows import SeedGroup
from bench.report.metrics import format_mean_std
from bench.tasks import card_for


@dataclass
class ClaimLine:
    """One claim checked on one seed group."""
    task: str
    claim: Claim
    row: SeedGroup  # claims compare a card's models under test: checked per seed group
    verdict: Verdict  # on the group's seeds together
    per_seed: list[float]  # the claim's value on each seed that measured it
    preset: str | None
    targeted: bool

    @property
    def suite_text(self) -> str:
        """``mean ± std`` of the per-seed values (with the seed count), or an em dash."""
        if not self.per_seed:
            return "—"
        text = format_mean_std(_mean(self.per_seed), _std(self.per_seed), self.claim.fmt)
        return f"{text} (n={len(self.per_seed)})" if len(self.per_seed) > 1 else text

    @property
    def verdict_text(self) -> str:
        """The verdict, with its margin in stderr when the check is statistical."""
        margin = self.verdict.margin
        text = self.verdict.status
        if margin is not None and math.isfinite(margin):
            text += f" ({margin:+.1f} se)"
        return text

    @property
    def failed_target(self) -> bool:
        """A claim the group's preset targets that is not reproduced."""
        return self.targeted and self.verdict.status != REPRODUCED

    @property
    def evidence(self) -> str:
        """The figures the verdict used, then the check's note."""
        return "; ".join([*self.verdict.figures, *([self.verdict.note] if self.verdict.note else [])])


def _preset(row: SeedGroup) -> str | None:
    return row.representative.record.get("preset")


def claim_lines(board: Leaderboard) -> list[ClaimLine]:
    """Every claim of the task's card on every group of its leaderboard (none without a card)."""
    card = card_for(board.task)
    if card is None:
        return []
    lines = []
    for claim in card.claims:
        for row in board.groups:
            preset = _preset(row)
            values = [claim.evaluate(run.rows).value for run in row.runs]
            verdict = claim.evaluate_seeds([run.rows for run in row.runs], card.min_items(preset))
            lines.append(ClaimLine(board.task, claim, row, verdict,
                                   [v for v in values if v is not None and math.isfinite(v)],
                                   preset, claim.id in card.targeted(preset)))
    return lines


def claims_table(lines: list[ClaimLine]) -> pd.DataFrame:
    """Every claim line as a table (for ``leaderboard_claims.csv``)."""
    columns = ["task", "claim", "text", "paper", "model", "dataset", "overrides", "group", "preset", "targeted",
               "kind", "paper_value", "suite", "n_seeds", "mean", "std", "verdict", "value", "low", "high",
               "threshold", "n_items", "n_deciding", "seeds", "margin", "evidence"]
    return pd.DataFrame([{
        "task": line.task, "claim": line.claim.id, "text": line.claim.text, "paper": line.claim.paper,
        "model": line.row.model, "dataset": line.row.dataset, "overrides": " ".join(line.row.overrides),
        "group": line.row.group[:12], "preset": line.preset, "targeted": line.targeted,
        "suite": line.suite_text, "n_seeds": len(line.per_seed),
        "mean": _mean(line.per_seed) if line.per_seed else None,
        "std": _std(line.per_seed),
        **{k: v for k, v in line.verdict.as_record().items() if k in columns and k != "targeted"},
        "evidence": line.evidence,
    } for line in lines], columns=columns)


def _mean(values: list[float]) -> float:
    """The mean, summed as v/n so that values near the float maximum do not overflow."""
    return sum(v / len(values) for v in values)


def _std(values: list[float]) -> float | None:
    """The sample std, or None for fewer than two values or one that overflows (never raises)."""
    try:
        return statistics.stdev(values) if len(values) > 1 else None
    except OverflowError:
        return None
