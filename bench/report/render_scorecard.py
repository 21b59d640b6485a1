"""The scorecard as HTML: one card per paper, a column per seed group, a line per claim linked to its evidence."""
from __future__ import annotations

from bench.report.claims import ClaimLine
from bench.report.page import escape
from bench.report.scorecard import SYMBOLS, VERDICTS, Block, PaperScore, claim_anchor, slug


def _group_head(paper: PaperScore, block: Block) -> str:
    hit, targeted = block.targeted
    target = f"targeted: {hit} of {targeted} reproduced" if targeted else "no targeted claim"
    counts = " ".join(f'<span class="badge v-{slug(status)}" title="{escape(status)}">{n} {SYMBOLS.get(status, "")}'
                      "</span>" for status, n in block.counts)
    return (f'<th class="g" title="{escape(block.title)}: {escape("; ".join(block.models))}; {target}">'
            f'<div>{escape(paper.column_title(block))}</div><div class="m">{escape("; ".join(block.models))}</div>'
            f'<div class="counts">{counts}</div></th>')


def _claim_row(lines: list[ClaimLine | None]) -> str:
    first = next(line for line in lines if line is not None)
    targeted = any(line is not None and line.targeted for line in lines)
    text = (f'<td class="c{" targeted" if targeted else ""}"><a href="#{claim_anchor(first)}" '
            f'title="{escape(first.claim.text)} ({escape(first.claim.id)})">{escape(first.claim.text)}</a></td>')
    cells = "".join(
        "<td></td>" if line is None else
        f'<td><a href="#{claim_anchor(line)}" title="{escape(line.verdict_text)}{" · targeted" if line.targeted else ""}">'
        f'<span class="badge v-{slug(line.verdict.status)}">{SYMBOLS.get(line.verdict.status, "•")}</span></a></td>'
        for line in lines)
    return f"<tr>{text}{cells}</tr>"


def render_scorecard(papers: list[PaperScore]) -> str:
    """The scorecard: one card per paper; a column per seed group (its models, its verdict counts), a
    line per claim with its verdict in each group, linked to its evidence."""
    if not papers:
        return ""
    cards = []
    for paper in papers:
        arxiv = f" · arXiv:{escape(paper.paper.arxiv)}" if paper.paper.arxiv else ""
        head = "<th>claim</th>" + "".join(_group_head(paper, b) for b in paper.blocks)
        body = "".join(_claim_row(lines) for lines in paper.matrix)
        presets = escape(", ".join(paper.presets))
        cards.append(f'<article class="paper" id="paper-{slug(paper.task)}"><h3>{escape(paper.paper.title)}</h3>'
                     f'<p class="cite">{escape(paper.paper.authors)}, {escape(paper.paper.venue)}{arxiv} · task '
                     f'<a href="#task-{escape(paper.task)}">{escape(paper.task)}</a> · {presets}</p>'
                     f'<table class="score"><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></article>')
    legend = " · ".join(f'<span class="badge v-{slug(v)}">{SYMBOLS[v]}</span> {escape(v)}' for v in VERDICTS)
    return ('<section id="scorecard"><h2>Scorecard</h2><div class="papers">' + "".join(cards) + "</div>"
            f'<p class="note">{legend}. A column per preset and config (its models under test and how many claims '
            "got each verdict), a line per claim (bold: a claim the preset targets); click a verdict for its "
            "evidence.</p></section>")
