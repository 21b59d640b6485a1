"""The scorecard and the forest plot: verdict counts per seed group, and what each claim's row draws."""
from __future__ import annotations

from dataclasses import dataclass, replace

import pytest

from bench.claims import AtLeast, AtMost, Claim, Monotone, Value, Verdict
from bench.report import write_report
from bench.report.claims import ClaimLine
from bench.report.forest import Z95, caption, claim_point


@pytest.fixture
def report(results):
    return write_report(results.dir)


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
    # monotone_decline and mixer_least_robust hold on the fixture; it has no aug or n_train rows
    assert shift.counts == [("reproduced", 2), ("not measured", 2)] and shift.targeted == (1, 1)
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


@dataclass(frozen=True)
class WithInterval(Verdict):
    """A verdict carrying the interval fields the statistics engine adds (low, high, threshold)."""
    low: float | None = None
    high: float | None = None
    threshold: float | None = None
    paper_value: float | None = None


def _line(check, verdict: Verdict) -> ClaimLine:
    return ClaimLine("t", Claim("c", "a claim", "paper", check), None, verdict, [], None, False)


def test_a_claims_interval_comes_from_the_verdict_else_its_stderr_else_it_is_a_point():
    at_least = AtLeast(Value("m"), 0.9)
    own = claim_point(_line(at_least, WithInterval("c", "reproduced", 0.95, 0.01, 5.0, low=0.93, high=0.96,
                                                   threshold=0.92, paper_value=0.94)))
    assert (own.low, own.high, own.interval, own.threshold, own.side, own.paper_value) == \
        (0.93, 0.96, "interval", 0.92, 1, 0.94)
    se = claim_point(_line(at_least, Verdict("c", "reproduced", 0.95, 0.01, 5.0)))
    assert se.interval == "±1.96 se" and se.low == pytest.approx(0.95 - Z95 * 0.01) and se.threshold == 0.9
    point = claim_point(_line(AtMost(Value("m"), 0.0), Verdict("c", "not reproduced", 0.2)))
    assert (point.low, point.high, point.interval, point.side) == (None, None, "point", -1)
    falls = claim_point(_line(Monotone("acc", along="t", rising=False), Verdict("c", "reproduced", -0.4, None, 3.0)))
    assert (falls.threshold, falls.side) == (0.0, -1)  # a monotone check's change must clear 0 downwards
    missing = claim_point(_line(at_least, Verdict("c", "not measured", note="no m rows")))
    assert missing.value is None and missing.status == "not measured"
    assert "value ± 1.96 stderr" in caption([_line(at_least, Verdict("c", "reproduced", 0.95, 0.01))])
    assert "bootstrap interval" in caption([_line(at_least, replace(WithInterval("c", "reproduced", 0.9),
                                                                     low=0.8, high=1.0))])
