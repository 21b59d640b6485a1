"""The scorecard that heads the report: per paper, per preset and seed group, its claims' verdicts.

One :class:`PaperScore` per task with a card: the paper, then one :class:`Block` per seed group
(its preset and the models under test it holds) with the count of each verdict, and each claim
once, with its verdict in every block (:attr:`PaperScore.matrix`): a sweep over ten models adds
columns, not lines. The md and html renderers draw the same matrix, so both lead with the same answer.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

from bench.card import Paper
from bench.report.aggregate import Leaderboard
from bench.report.rows import SeedGroup
from bench.report.claims import ClaimLine
from bench.tasks import card_for

# Every verdict a claim can get (bench.claims), in the order a reader wants them counted.
VERDICTS = ("reproduced", "not reproduced", "inconclusive", "invalid", "not measured", "not applicable")
SYMBOLS = {"reproduced": "✓", "not reproduced": "✗", "inconclusive": "?", "invalid": "!", "not measured": "–",
           "not applicable": "∅"}


def verdict_order(status: str) -> int:
    """Position of a verdict in :data:`VERDICTS` (an unknown one sorts last)."""
    return VERDICTS.index(status) if status in VERDICTS else len(VERDICTS)


def slug(text: str) -> str:
    """An HTML id / markdown anchor fragment: lower case, ``[a-z0-9-]`` only."""
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


def claim_anchor(line: ClaimLine) -> str:
    """The id of a claim line's row in its task's claims table (unique per task, claim and group)."""
    return f"claim-{slug(line.task)}-{slug(line.claim.id)}-{line.row.group[:8]}"


@dataclass
class Block:
    """The claims of one seed group: what it ran and how each claim came out."""
    group: SeedGroup
    models: list[str]  # the models under test in the group (its leaderboard rows)
    lines: list[ClaimLine]  # in card order

    @property
    def title(self) -> str:
        """``preset`` plus the overrides that set this group apart (or the group's label without a preset)."""
        parts = [self.group.preset or self.group.label, *(self.group.overrides if self.group.preset else [])]
        return " ".join(p for p in parts if p)

    @property
    def counts(self) -> list[tuple[str, int]]:
        """(verdict, number of claims) for every verdict present, in :data:`VERDICTS` order."""
        found = Counter(line.verdict.status for line in self.lines)
        return sorted(found.items(), key=lambda kv: verdict_order(kv[0]))

    @property
    def targeted(self) -> tuple[int, int]:
        """(targeted claims reproduced, targeted claims) for the group's preset."""
        targeted = [line for line in self.lines if line.targeted]
        return sum(line.verdict.status == "reproduced" for line in targeted), len(targeted)


@dataclass
class PaperScore:
    """One paper's scorecard: the task reproducing it and a block per seed group."""
    task: str
    paper: Paper
    blocks: list[Block]

    @property
    def presets(self) -> list[str]:
        """The presets of its groups, in order (a group without one: its label)."""
        return list(dict.fromkeys(b.group.preset or b.group.label for b in self.blocks))

    def column_title(self, block: Block) -> str:
        """A group's column title: its overrides when every group shares one preset (shown once), else
        preset and overrides."""
        if len(self.presets) == 1 and self.blocks[0].group.preset:
            return " ".join(block.group.overrides) or self.presets[0]
        return block.title

    @property
    def matrix(self) -> list[list[ClaimLine | None]]:
        """One list per claim (card order): its line in each block (None where a block lacks it)."""
        ids = list(dict.fromkeys(line.claim.id for block in self.blocks for line in block.lines))
        found = [{line.claim.id: line for line in block.lines} for block in self.blocks]
        return [[lines.get(claim_id) for lines in found] for claim_id in ids]


def scorecard(boards: list[Leaderboard], claims: dict[str, list[ClaimLine]]) -> list[PaperScore]:
    """One entry per task whose card has claims, in task order; its blocks follow the leaderboard ranking."""
    out = []
    for board in boards:
        card, lines = card_for(board.task), claims.get(board.task, [])
        if card is None or not lines:
            continue
        blocks = []
        for group in board.groups:
            models = [r.model for r in board.rows if r.seed_group is group]
            blocks.append(Block(group, models, [line for line in lines if line.row is group]))
        out.append(PaperScore(board.task, card.paper, blocks))
    return out
