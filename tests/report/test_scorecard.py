"""The scorecard and the forest plot: verdict counts per seed group, and what each claim's row draws."""
from __future__ import annotations

import pytest

from bench.claims import AtLeast, AtMost, Claim, Monotone, Value, Verdict, Within
from bench.report.claims import ClaimLine
from bench.report.forest import claim_point


@pytest.fixture
def report(reported):
    return reported[1]


def test_the_scorecard_counts_every_verdict_per_seed_group_and_leads_the_markdown(report):
    papers = {p.task: p for p in report.scorecard}
    assert sorted(papers) == ["modality_gap", "shift", "whitening"]  # toy has no card
    assert papers["whitening"].paper.arxiv and len(papers["whitening"].blocks) == 2  # resnet20 (3 seeds), vgg11
    for paper in papers.values():
        for block in paper.blocks:
            assert sum(n for _, n in block.counts) == len(block.lines) == len(report.claims[paper.task]) // len(
                paper.blocks)
    shift = papers["shift"].blocks[0]
    assert shift.models == ["resnet20, width=0.5", "mlp_mixer, width=0.25"]
    # monotone_decline declines on the fixture but is inconclusive: one seed whose rows carry no items or stderr
    # measures no uncertainty; mixer_least_robust is invalid (no items: 0 of the 20 declared deciding images);
    # no aug rows, one training-set size, no full-width classifier (the paper's sizes)
    assert shift.counts == [("inconclusive", 1), ("invalid", 1), ("not measured", 7)] and shift.targeted == (0, 4)
    md = report.outputs["markdown"].read_text()
    order = [md.index(s) for s in ("## Scorecard", "](forest/modality_gap.png)", "| rank | model |",
                                   "### Paper claims: modality_gap")]
    assert order == sorted(order)  # scorecard, forest plot, tables
    assert "arXiv:" in md.split("## modality_gap")[0]
    assert "(#paper-claims-modality_gap)" in md  # each claim line links to its evidence


def test_make_run_writes_one_forest_plot_per_task_with_claims(report):
    forests = {k: v for k, v in report.outputs.items() if k.startswith("forest ")}
    assert sorted(forests) == ["forest modality_gap", "forest shift", "forest whitening"]
    for path in forests.values():
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5_000


def _line(check, verdict: Verdict) -> ClaimLine:
    return ClaimLine("t", Claim("c", "a claim", "paper", check), None, verdict, [], None, False)


def test_each_claim_row_draws_its_verdicts_interval_threshold_side_and_paper_figure():
    at_least = AtLeast(Value("m"), 0.9)
    own = claim_point(_line(at_least, Verdict("c", "reproduced", 0.95, 0.93, 0.96, 0.9, 5.0, paper_value=0.94)))
    assert (own.low, own.high, own.threshold, own.side, own.band, own.paper_value) == (0.93, 0.96, 0.9, 1, None, 0.94)
    exact = claim_point(_line(AtMost(Value("m"), 0.0), Verdict("c", "not reproduced", 0.2, 0.2, 0.2, 0.0)))
    assert (exact.low, exact.high, exact.side) == (None, None, -1)  # an exact value: no bar
    falls = claim_point(_line(Monotone("acc", along="t", rising=False), Verdict("c", "reproduced", -0.4, -0.5, -0.3,
                                                                                 0.0)))
    assert (falls.threshold, falls.side) == (0.0, -1)  # a monotone check's change must clear 0 downwards
    band = claim_point(_line(Within(Value("m"), 0.05, 0.2), Verdict("c", "inconclusive", 0.1, 0.0, 0.3, 0.05)))
    assert (band.band, band.side) == ((0.05, 0.2), None)
    missing = claim_point(_line(at_least, Verdict("c", "not measured", note="no m rows")))
    assert missing.value is None and missing.low is None and missing.status == "not measured"
