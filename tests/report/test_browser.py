"""The leaderboard page in a real browser: Debian's chromium, headless, offline, from file://.

A probe copy of the page (the real page plus a small script appended by this test) records, in a
1,400 x 900 window, the rendered tables, whether every plot (files beside the page) decoded, the
layout (no element wider than the screen, with every <details> closed and then opened; where the
scorecard sits), and the row order after real header clicks; ``--dump-dom`` hands that record back.
The ``?sort=`` view is checked on the unmodified page, and screenshots are kept in
``$BENCH_ARTIFACTS_DIR`` (else the test's results folder, screenshots/).
"""
from __future__ import annotations

import html
import json
import os
import re
import struct
import subprocess
from pathlib import Path

import matplotlib.image
import pytest

from bench.report import write_report
from bench.report.browser import chromium_path, dump_dom, find_chromium, page_url, screenshot
from bench.tasks import card_for

REPO = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.integration  # headless Chromium renders the page

SCREEN = (1400, 900)

PROBE = """
<pre id="probe"></pre>
<script>
window.addEventListener('load', function () {
  function rows(id) {
    return Array.from(document.getElementById(id).tBodies[0].rows)
      .map(function (r) { return Array.from(r.cells).map(function (c) { return c.textContent.trim(); }); });
  }
  function layout() {  // every rendered element that is wider than the screen or sticks out of it
    var vw = document.documentElement.clientWidth, wide = [];
    document.querySelectorAll('body *').forEach(function (el) {
      var r = el.getBoundingClientRect();
      if ((r.width || r.height) && (r.right > vw + 0.5 || r.left < -0.5)) {
        wide.push(el.tagName + '#' + el.id + '.' + el.className + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
      }
    });
    return {viewport: vw, scroll_width: document.documentElement.scrollWidth, wide: wide};
  }
  var out = {tables: {}, images: [], clicks: [], height: window.innerHeight};
  document.querySelectorAll('table.sortable').forEach(function (t) {
    out.tables[t.id] = {headers: Array.from(t.tHead.rows[0].cells).map(function (c) { return c.dataset.key; }),
                        rows: rows(t.id)};
  });
  var card = document.getElementById('scorecard').getBoundingClientRect();
  out.scorecard = {top: card.top, bottom: card.bottom, counts: Array.from(document.querySelectorAll(
    '#scorecard .counts')).map(function (c) { return c.getBoundingClientRect().bottom; })};
  out.links = Array.from(document.querySelectorAll('#scorecard td:not(.c) a')).map(function (a) {
    var target = document.getElementById(a.getAttribute('href').slice(1));
    return {title: a.title, row: target ? target.tagName + ':' + target.cells[4].textContent.trim() : null};
  });
  out.closed = layout();
  document.querySelectorAll('details').forEach(function (d) { d.open = true; });
  out.opened = layout();
  CLICKS.forEach(function (click) {
    var th = document.querySelector('#' + click[0] + ' th[data-key="' + click[1] + '"]');
    th.click();
    out.clicks.push({table: click[0], key: click[1], aria: th.getAttribute('aria-sort'), rows: rows(click[0])});
  });
  var images = Array.from(document.querySelectorAll('img'));
  images.forEach(function (i) { i.loading = 'eager'; });  // lazy ones below the fold: load them now
  setTimeout(function () {  // (virtual time: --virtual-time-budget lets the loads finish first)
    images.forEach(function (i) {
      out.images.push({src: i.getAttribute('src'), complete: i.complete, width: i.naturalWidth,
                       height: i.naturalHeight});
    });
    document.getElementById('probe').textContent = JSON.stringify(out);
  }, 1000);
});
</script>
"""

# (table id, header key) clicked in order: each header twice (ascending, then descending).
CLICKS = [["board-whitening", "model"], ["board-whitening", "model"],
          ["board-toy", "loss"], ["board-toy", "loss"],
          ["board-whitening", "formula_fit_r.labels=true"], ["board-whitening", "formula_fit_r.labels=true"]]


@pytest.fixture(scope="session")
def chromium() -> Path:
    """A headless chromium: present, or installed by scripts/install_chromium.sh (which needs root).
    Where none can be had, the browser tests are skipped and pytest's summary says why."""
    if find_chromium() is None:
        res = subprocess.run(["bash", str(REPO / "scripts" / "install_chromium.sh")],
                             capture_output=True, text=True, timeout=900)
        if res.returncode != 0:
            pytest.fail(f"scripts/install_chromium.sh failed:\n{res.stderr[-2000:]}")
        if find_chromium() is None:
            pytest.skip(f"no chromium: {res.stderr.strip() or 'install_chromium.sh installed none'}")
    return Path(chromium_path())


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk."""
    with open(path, "rb") as f:
        header = f.read(24)
    assert header[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    return struct.unpack(">II", header[16:24])


def probe(page: Path) -> dict:
    """Open a probe copy of ``page`` in chromium and return what the probe script recorded."""
    probe_page = page.with_name("leaderboard.probe.html")
    script = PROBE.replace("CLICKS", json.dumps(CLICKS))
    probe_page.write_text(page.read_text().replace("</body>", script + "</body>"))
    dom = dump_dom(page_url(probe_page), size=SCREEN, settle_ms=5_000)
    match = re.search(r'<pre id="probe">(.*?)</pre>', dom, re.S)
    assert match and match.group(1), "the probe script did not run (no JavaScript in chromium?)"
    return json.loads(html.unescape(match.group(1)))


@pytest.fixture
def page(results, chromium) -> Path:
    return write_report(results.dir).outputs["html"]


def test_rendered_tables_images_and_click_sorting(results, page):
    seen = probe(page)
    assert sorted(seen["tables"]) == sorted(
        ["board-modality_gap", "board-shift", "board-toy", "board-whitening", "conditions-modality_gap",
         "conditions-shift", "conditions-toy", "conditions-whitening", "unfinished-runs", "skipped-files",
         "claims-modality_gap", "claims-shift", "claims-whitening"])  # toy has no card: no claims table
    # The Paper claims table: one line per (claim, seed group), the verdict backed by its figures.
    claims = seen["tables"]["claims-modality_gap"]
    assert claims["headers"] == ["claim", "paper", "config", "this", "verdict", "targeted", "evidence"]
    clean = [r for r in claims["rows"] if "(clean_accuracy_unchanged)" in r[0]]
    assert [r[4] for r in clean] == ["reproduced", "reproduced"]
    assert all(r[5] == "yes" and "= 0 (exact) (1 curve(s), 3 points)" in r[6] for r in clean)
    rises = next(r for r in claims["rows"] if "(robustness_rises)" in r[0] and "ViT-B-16" in r[2])
    # the card declares 100 deciding items; the fixture's rows list none: an honest "invalid"
    assert rises[3] == "0.200" and rises[4] == "invalid" and "level=0.005: 0.7 → 0.9 (alpha 0→1)" in rises[6]
    assert "0 deciding item(s), fewer than the 100 declared" in rises[6]
    fits = next(r for r in seen["tables"]["claims-whitening"]["rows"] if "(fits_formula)" in r[0])
    assert fits[3] == "—" and fits[4] == "not measured" and fits[6].startswith("no formula_fit_r[")
    whitening = seen["tables"]["board-whitening"]
    assert whitening["headers"][:6] == ["rank", "model", "preset", "dataset", "overrides", "seeds"]
    assert [r[:6] for r in whitening["rows"]] == [
        ["1", "vgg11", "whitening/embedded", "embedded_photos", "model=vgg11", "1"],
        ["2", "resnet20", "whitening/embedded", "embedded_photos", "—", "3"]]
    assert "0.920 ± 0.020" in whitening["rows"][1]
    # shift: one row per classifier the run trained (the card's ranking unit)
    assert [r[1] for r in seen["tables"]["board-shift"]["rows"]] == ["resnet20, width=0.5", "mlp_mixer, width=0.25"]
    assert len(seen["tables"]["skipped-files"]["rows"]) == len(results.bad_paths)

    # Every plot decoded to its real size: the run plots and a forest plot per task with claims.
    plots = sorted((results.dir / "runs").glob("*/*/artifacts/*.png")) + sorted((results.dir / "forest").glob("*.png"))
    assert len(seen["images"]) == 7  # the latest run of each seed group shows its plots
    assert all(i["complete"] and i["width"] > 0 for i in seen["images"]), seen["images"]
    assert {(i["width"], i["height"]) for i in seen["images"]} <= {png_size(p) for p in plots}
    assert sum(i["src"].startswith("forest/") for i in seen["images"]) == 3

    clicks = seen["clicks"]
    assert [c["aria"] for c in clicks] == ["ascending", "descending"] * 3
    assert [r[1] for r in clicks[0]["rows"]] == ["resnet20", "vgg11"]
    assert [r[1] for r in clicks[1]["rows"]] == ["vgg11", "resnet20"]
    assert [r[6] for r in clicks[2]["rows"]] == ["3", "12.5"]
    assert [r[6] for r in clicks[3]["rows"]] == ["12.5", "3"]
    # Numeric sort on the mean, not on the "mean ± std" text.
    assert [r[6] for r in clicks[4]["rows"]] == ["0.920 ± 0.020", "0.970"]
    assert [r[6] for r in clicks[5]["rows"]] == ["0.970", "0.920 ± 0.020"]


def test_the_page_fits_the_screen_and_leads_with_the_scorecard(page):
    """At 1,400 px no element is wider than the screen (folded cells closed or opened), and the
    scorecard starts on the first screen with every block's verdict counts on it."""
    seen = probe(page)
    for state in ("closed", "opened"):
        layout = seen[state]
        assert layout["viewport"] == SCREEN[0]
        assert not layout["wide"], f"wider than the screen ({state} details): {layout['wide'][:10]}"
        assert layout["scroll_width"] <= SCREEN[0]
    card = seen["scorecard"]
    assert 0 <= card["top"] < 200 and len(card["counts"]) == 5  # 3 papers: whitening and modality_gap 2 groups each
    assert max(card["counts"]) <= seen["height"], card
    # A verdict per claim and group, each linking to its line in the claims table with the same verdict.
    groups = {"whitening": 2, "modality_gap": 2, "shift": 1}
    assert len(seen["links"]) == sum(len(card_for(task).claims) * n for task, n in groups.items())
    for link in seen["links"]:
        assert link["row"] and link["row"].startswith("TR:")
        assert link["title"].startswith(link["row"][3:]), link


def test_sort_query_and_screenshots(results, page):
    dom = dump_dom(page_url(page, "sort=model&dir=asc"))
    assert 'data-sorted="model:asc:' in dom
    table = re.search(r'<table class="sortable" id="board-whitening">(.*?)</table>', dom, re.S).group(1)
    models = re.findall(r'<tr><td[^>]*>\d+</td><td class="id">([^<]+)</td>', table)
    assert models == ["resnet20", "vgg11"]

    out_dir = Path(os.environ.get("BENCH_ARTIFACTS_DIR") or results.dir / "screenshots")
    for name, size in (("leaderboard_first_screen.png", SCREEN), ("leaderboard.png", (SCREEN[0], 2400))):
        shot = screenshot(page_url(page), out_dir / name, size=size)
        assert png_size(shot) == size
        pixels = matplotlib.image.imread(shot)
        assert pixels.std() > 0.05, f"the screenshot {shot} is blank"
        print(f"screenshot: {shot}")
