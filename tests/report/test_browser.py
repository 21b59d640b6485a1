"""The leaderboard page in a real browser: Debian's chromium, headless, offline, from file://.

A probe copy of the page (the real page plus a small script appended by this test) records the
rendered tables, whether every embedded plot decoded, and the row order after real header clicks;
``--dump-dom`` hands that record back. The ``?sort=`` view is checked on the unmodified page, and a
screenshot is kept in ``$BENCH_ARTIFACTS_DIR`` (else the test's results folder, screenshots/).
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

REPO = Path(__file__).resolve().parents[2]

PROBE = """
<pre id="probe"></pre>
<script>
window.addEventListener('load', function () {
  function rows(id) {
    return Array.from(document.getElementById(id).tBodies[0].rows)
      .map(function (r) { return Array.from(r.cells).map(function (c) { return c.textContent.trim(); }); });
  }
  var out = {tables: {}, images: [], clicks: []};
  document.querySelectorAll('table.sortable').forEach(function (t) {
    out.tables[t.id] = {headers: Array.from(t.tHead.rows[0].cells).map(function (c) { return c.dataset.key; }),
                        rows: rows(t.id)};
  });
  document.querySelectorAll('img').forEach(function (i) {
    out.images.push({alt: i.alt, complete: i.complete, width: i.naturalWidth, height: i.naturalHeight});
  });
  CLICKS.forEach(function (click) {
    var th = document.querySelector('#' + click[0] + ' th[data-key="' + click[1] + '"]');
    th.click();
    out.clicks.push({table: click[0], key: click[1], aria: th.getAttribute('aria-sort'), rows: rows(click[0])});
  });
  document.getElementById('probe').textContent = JSON.stringify(out);
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
    dom = dump_dom(page_url(probe_page))
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
    assert all(r[5] == "yes (modality_gap/embedded)" and "= 0 (1 curve(s), 3 points)" in r[6] for r in clean)
    rises = next(r for r in claims["rows"] if "(robustness_rises)" in r[0] and "ViT-B-16" in r[2])
    assert rises[3] == "0.200" and rises[4] == "reproduced" and "level=0.005: 0.7 → 0.9 (alpha 0→1)" in rises[6]
    fits = next(r for r in seen["tables"]["claims-whitening"]["rows"] if "(fits_formula)" in r[0])
    assert fits[3] == "—" and fits[4] == "not measured" and fits[6].startswith("no formula_fit_r[")
    whitening = seen["tables"]["board-whitening"]
    assert whitening["headers"][:5] == ["rank", "model", "dataset", "overrides", "seeds"]
    assert [r[:5] for r in whitening["rows"]] == [["1", "vgg11", "embedded_photos", "model=vgg11", "1"],
                                                  ["2", "resnet20", "embedded_photos", "—", "3"]]
    assert "0.920 ± 0.020" in whitening["rows"][1]
    assert len(seen["tables"]["skipped-files"]["rows"]) == len(results.bad_paths)

    # Every plot decoded to its real size (the base64 data URIs are intact).
    plots = sorted((results.dir / "runs").glob("*/*/artifacts/*.png"))
    assert len(seen["images"]) == 4
    assert all(i["complete"] and i["width"] > 0 for i in seen["images"])
    expected_sizes = {png_size(p) for p in plots}
    assert {(i["width"], i["height"]) for i in seen["images"]} <= expected_sizes

    clicks = seen["clicks"]
    assert [c["aria"] for c in clicks] == ["ascending", "descending"] * 3
    assert [r[1] for r in clicks[0]["rows"]] == ["resnet20", "vgg11"]
    assert [r[1] for r in clicks[1]["rows"]] == ["vgg11", "resnet20"]
    assert [r[5] for r in clicks[2]["rows"]] == ["3", "12.5"]
    assert [r[5] for r in clicks[3]["rows"]] == ["12.5", "3"]
    # Numeric sort on the mean, not on the "mean ± std" text.
    assert [r[5] for r in clicks[4]["rows"]] == ["0.920 ± 0.020", "0.970"]
    assert [r[5] for r in clicks[5]["rows"]] == ["0.970", "0.920 ± 0.020"]


def test_sort_query_and_screenshot(results, page):
    dom = dump_dom(page_url(page, "sort=model&dir=asc"))
    assert 'data-sorted="model:asc:' in dom
    table = re.search(r'<table class="sortable" id="board-whitening">(.*?)</table>', dom, re.S).group(1)
    models = re.findall(r"<tr><td[^>]*>\d+</td><td>([^<]+)</td>", table)
    assert models == ["resnet20", "vgg11"]

    out_dir = Path(os.environ.get("BENCH_ARTIFACTS_DIR") or results.dir / "screenshots")
    shot = screenshot(page_url(page), out_dir / "leaderboard.png", size=(1400, 2000))
    assert png_size(shot) == (1400, 2000)
    pixels = matplotlib.image.imread(shot)
    assert pixels.std() > 0.05, "the screenshot is blank"
    print(f"screenshot: {shot}")
