"""Headless chromium for the leaderboard page: screenshots and rendered DOM.

Uses ``$BENCH_CHROMIUM`` or a chromium/chrome on PATH (``scripts/install_chromium.sh`` installs
Debian's where it can). The flags keep
it offline and stateless: a fresh profile per call, no background networking, no sandbox
(needed when running as root in a container).
"""
from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

from bench.errors import BenchError

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars")


CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def find_chromium() -> str | None:
    """``$BENCH_CHROMIUM``, else the first chromium/chrome on PATH (or Debian's /usr/bin/chromium)."""
    if os.environ.get("BENCH_CHROMIUM"):
        return os.environ["BENCH_CHROMIUM"]
    found = next((p for p in map(shutil.which, CANDIDATES) if p), None)
    return found or ("/usr/bin/chromium" if Path("/usr/bin/chromium").is_file() else None)


def chromium_path() -> str:
    """The chromium executable; a clear error if there is none."""
    path = find_chromium()
    if path is None or not Path(path).is_file():
        raise BenchError(f"chromium not found ({path or 'none of ' + ', '.join(CANDIDATES) + ' on PATH'}); install "
                         "it with `bash scripts/install_chromium.sh` (Debian: apt-get install chromium) or set "
                         "BENCH_CHROMIUM")
    return path


def _chromium(args: list[str], timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="bench-chromium-") as profile:
        cmd = [chromium_path(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args]
        try:
            res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BenchError(f"chromium did not finish within {timeout:.0f}s: {' '.join(cmd)}") from None
    if res.returncode != 0:
        raise BenchError(f"chromium exited with {res.returncode}: {res.stderr.strip()[-1500:]}")
    return res.stdout


def page_url(html_path: Path, query: str = "") -> str:
    """The ``file://`` URL of a page, with an optional ``?query``."""
    url = Path(html_path).resolve().as_uri()
    return f"{url}?{query}" if query else url


def dump_dom(url: str, timeout: float = 120, size: tuple[int, int] = (1400, 900), settle_ms: int = 0) -> str:
    """The DOM of ``url`` after its scripts ran (``--dump-dom``) in a ``size`` window; ``settle_ms`` of
    virtual time lets asynchronous work (image decoding, promises) finish first."""
    settle = [f"--virtual-time-budget={settle_ms}"] if settle_ms else []
    return _chromium([f"--window-size={size[0]},{size[1]}", *settle, "--dump-dom", url], timeout)


def screenshot(url: str, out: Path, size: tuple[int, int] = (1400, 2000), timeout: float = 120) -> Path:
    """A PNG screenshot of ``url`` written to ``out``."""
    out = Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    # Chromium writes the file itself; shoot into a temp name first so ``out`` is never half-written.
    tmp = out.with_name(f".{out.stem}.tmp.png")
    _chromium([f"--window-size={size[0]},{size[1]}", f"--screenshot={tmp}", url], timeout)
    if not tmp.is_file():
        raise BenchError(f"chromium wrote no screenshot for {url}")
    os.replace(tmp, out)
    return out
