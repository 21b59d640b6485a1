#!/usr/bin/env bash
# Fashion-MNIST (Zalando, 60,000 train + 10,000 test 28x28 images, 10 clothing classes) from Debian's
# `dataset-fashion-mnist` package, which installs the four original idx files (gzipped) under
# /usr/share/datasets/fashion-mnist/. They are copied to ${BENCH_ROOT:-.}/.cache/assets/fashion_mnist/ and
# checked against the sha256 sums below (package 0.0~git20200523.55506a9-1, the upstream release files).
# Idempotent; without root/apt it prints the command to run and exits 0 (tests that need the data skip).
set -euo pipefail

DEST="${BENCH_ROOT:-.}/.cache/assets/fashion_mnist"
SRC=/usr/share/datasets/fashion-mnist
PACKAGE=dataset-fashion-mnist
declare -A SHA256=(
  [train-images-idx3-ubyte.gz]=b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7
  [train-labels-idx1-ubyte.gz]=0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056
  [t10k-images-idx3-ubyte.gz]=cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa
  [t10k-labels-idx1-ubyte.gz]=8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05
)

ok() {  # every file present in $1 with its sha256
  local f
  for f in "${!SHA256[@]}"; do
    [ -f "$1/$f" ] && [ "$(sha256sum "$1/$f" | cut -d' ' -f1)" = "${SHA256[$f]}" ] || return 1
  done
}

ok "$DEST" && exit 0
if ! ok "$SRC"; then
  if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null; then
    echo "fashion_mnist: not installed (needs root and apt): run 'apt-get install -y $PACKAGE' then 'make assets'"
    exit 0
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "$PACKAGE" >/dev/null 2>&1 || { apt-get update -qq >/dev/null 2>&1 || true
    apt-get install -y -qq "$PACKAGE" >/dev/null 2>&1 || {
      echo "fashion_mnist: apt-get could not install $PACKAGE: run 'apt-get update && apt-get install -y $PACKAGE' then 'make assets'"
      exit 0; }; }
  if ! ok "$SRC"; then
    echo "fashion_mnist: $SRC does not hold the expected files (sha256 mismatch): reinstall with 'apt-get install --reinstall -y $PACKAGE'" >&2
    exit 1
  fi
fi
mkdir -p "$DEST"
for f in "${!SHA256[@]}"; do
  cp "$SRC/$f" "$DEST/.$f.tmp" && mv "$DEST/.$f.tmp" "$DEST/$f"  # atomic: a torn copy never has the final name
done
ok "$DEST" || { echo "fashion_mnist: copies in $DEST fail their sha256 check; delete the folder and rerun" >&2; exit 1; }
echo "fashion_mnist: $DEST (4 idx files, sha256 checked)"
