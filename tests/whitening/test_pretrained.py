"""Stage B: the real pretrained first layers, loaded through the registry from the files
scripts/assets/pretrained_weights.sh installs (skipped, naming that command, where they are absent)."""
import os
import subprocess
from pathlib import Path

import pytest
import torch

from bench.models import create_model, first_conv
from bench.whitening.pretrained import INSTALL, load_image_set

ROOT = Path(__file__).resolve().parents[2]
ASSETS = Path(os.environ.get("BENCH_ASSETS") or ROOT / ".cache" / "assets") / "pretrained_weights"
MODELS = {"tv_mobilenet_v2": ("mobilenet_v2-b0353104.pth", "foolbox_imagenet", 1000, 32),
          "efficientnet_lite0": ("efficientnet-lite0-57934424.pth", "foolbox_imagenet", 1000, 32),
          "keras_cifar_cnn": ("cifar10_cnn.h5", "foolbox_cifar10", 10, 64)}


def _installed(name: str) -> Path:
    path = ASSETS / MODELS[name][0]
    if not path.is_file() or len(list((ASSETS / "foolbox").glob("*"))) != 40:
        pytest.skip(f"{path} or the foolbox images are not installed: run {INSTALL}")
    return path


@pytest.mark.parametrize("name", list(MODELS))
def test_pretrained_weights_load_through_the_registry_and_classify_their_images(name):
    """The right weights in the right layout: they classify genuine images of their own dataset (the
    labels are in foolbox's file names) at their own preprocessing. Measured: MobileNetV2 18/20,
    EfficientNet-Lite0 17/20, the Keras CNN 20/20."""
    weights = _installed(name)
    _, images, classes, filters = MODELS[name]
    model = create_model(name, num_classes=classes, weights=str(weights)).eval()
    conv = first_conv(model)
    assert conv.kernel_size == (3, 3) and conv.out_channels == filters and conv.in_channels == 3
    x, y = load_image_set(ASSETS, images, model.input_cfg)
    assert x.shape[-1] == model.input_cfg["image_size"]
    with torch.no_grad():
        acc = float((model(x).argmax(1) == y).float().mean())
    assert acc >= 0.75, acc


def test_a_missing_image_set_names_the_install_command(tmp_path):
    from bench.errors import DataError

    with pytest.raises(DataError, match="holds 0 of the 20 imagenet_.*pretrained_weights.sh"):
        load_image_set(tmp_path, "foolbox_imagenet", {"image_size": 224, "pixel_scale": 1.0, "mean": (0, 0, 0),
                                                      "std": (1, 1, 1)})


def test_stage_b_rows_in_a_study(compose, bench_root):
    """The study records each pretrained layer's fit with its baselines (stage=pretrained); a model whose
    weights are absent is one warning naming the install command, and the rest still runs."""
    from bench.cli import execute
    from bench.store import read_run

    weights = _installed("keras_cifar_cnn")
    run_dir = execute(compose([
        "task=whitening", "data=digits", "data.n_train=100", "data.n_test=50", "data.batch_size=50",
        "model=linear_cnn", "model.width=0.25", "trainer.max_epochs=1", "trainer.enable_progress_bar=false",
        "task.record_steps=[1]", "task.autocorr_max_delta=4", "task.autocorr_images=16", "task.tau_grid_size=20",
        "logger=none", f"task.assets_dir={ASSETS}",
        f"task.pretrained=[{{name: keras_cifar_cnn, weights: '{weights}', images: foolbox_cifar10}},"
        f"{{name: tv_mobilenet_v2, weights: '{bench_root}/absent.pth', images: foolbox_imagenet}}]"]))
    rows = [r for r in read_run(run_dir)[1] if r["params"].get("stage") == "pretrained"]
    metrics = {(r["metric"], r["params"].get("grid")) for r in rows}
    assert {("formula_fit_r", "paper"), ("fit_margin", "paper"), ("formula_t", "paper"), ("fit_edge", "paper"),
            ("power_r", None), ("lambda_r", None), ("pretrained_acc", None)} <= metrics
    assert {r["params"]["arch"] for r in rows} == {"keras_cifar_cnn"}
    # the images are the units: every fit figure carries its jackknife standard error over the 20 images
    margin = next(r for r in rows if r["metric"] == "fit_margin" and r["params"]["grid"] == "paper")
    assert margin["n"] == 20 and margin["stderr"] > 0


def test_asset_script_without_pip_names_the_command(tmp_path):
    """No pip anywhere (a PATH holding only the tools the script uses): one line naming the command, exit 0."""
    import shutil

    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("bash", "sha256sum", "cut", "ls", "wc", "mktemp", "rm", "mkdir", "unzip", "cp", "mv", "basename"):
        if shutil.which(tool):
            (bindir / tool).symlink_to(shutil.which(tool))
    env = {"PATH": str(bindir), "BENCH_ROOT": str(tmp_path), "VENV": str(tmp_path / "novenv")}
    out = subprocess.run([str(bindir / "bash"), str(ROOT / "scripts" / "assets" / "pretrained_weights.sh")], env=env,
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "pretrained_weights: not installed (no pip): run 'make install' then 'make assets'"


def test_a_missing_dataset_still_measures_stage_b(compose, bench_root, caplog):
    """Without the study's dataset installed, Stage B still runs; the trained stage is one warning naming
    the fix and its claims read not measured."""
    from bench.cli import execute
    from bench.store import read_run

    weights = _installed("keras_cifar_cnn")
    run_dir = execute(compose([
        "task=whitening", "data=cifar10", f"data.root={bench_root}/no-cifar", "model=vgg11_bn", "logger=none",
        f"task.assets_dir={ASSETS}",
        f"task.pretrained=[{{name: keras_cifar_cnn, weights: '{weights}', images: foolbox_cifar10}}]"]))
    record, rows = read_run(run_dir)
    assert record["status"] == "completed"
    assert {r["params"].get("stage") for r in rows} == {"pretrained"}
    assert "cifar10 not found under" in caplog.text and "trained models are not measured" in caplog.text
