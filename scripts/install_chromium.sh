#!/usr/bin/env bash
# A headless chromium for the leaderboard browser test (tests/report/test_browser.py) and
# `bench-report --screenshot`. Idempotent. In order:
#   1. a browser already present ($BENCH_CHROMIUM, chromium, chromium-browser, google-chrome): use it;
#   2. root (or password-less sudo) and apt: install Debian's chromium;
#   3. otherwise install nothing and exit 0: the browser test is then reported as skipped, with this
#      reason, in pytest's summary (a machine without root still passes `make test`).
set -euo pipefail

for candidate in "${BENCH_CHROMIUM:-}" chromium chromium-browser google-chrome google-chrome-stable; do
    [ -n "$candidate" ] || continue
    if path=$(command -v "$candidate" 2>/dev/null); then
        echo "chromium present: $path"
        exit 0
    fi
done

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    SUDO="sudo -n"
else
    echo "install_chromium.sh: no chromium here and no root to apt-get install it; the browser test will be" \
         "skipped (install chromium, or set BENCH_CHROMIUM to a chromium/chrome binary, to run it)" >&2
    exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_chromium.sh: no apt-get on this machine; the browser test will be skipped" \
         "(install chromium with the system's package manager, or set BENCH_CHROMIUM)" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update
$SUDO apt-get install -y --no-install-recommends chromium fonts-dejavu-core
/usr/bin/chromium --version
