"""A wheel carries every config: ``pip install .`` (not editable) and ``bench experiment=<preset>`` work
outside a checkout, each task's conf/ found by the search-path plugin.

The wheel is installed with ``pip install --no-deps --target`` into a folder put first on PYTHONPATH: the
dependencies come from this venv, bench and its plugin from the folder. The developers' editable install
of bench (a setuptools finder appended to ``sys.meta_path``) answers only after ``sys.path``, and every
test checks that the modules it runs are the folder's."""
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from bench.tasks import tasks

REPO = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.integration  # builds a wheel (~10 s) and starts a Python per preset


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """The wheel built from this checkout, its file names, and the folder it is installed into."""
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w", str(out),
                    str(REPO)], check=True)
    wheel = next(out.glob("bench-*.whl"))
    site = out / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site), str(wheel)],
                   check=True)
    return site, set(zipfile.ZipFile(wheel).namelist())


def _installed_env(site: Path, root: Path) -> dict[str, str]:
    """The environment of a process that imports bench from ``site`` (and no other copy), results under ``root``."""
    env = {**os.environ, "PYTHONPATH": str(site), "BENCH_ROOT": str(root)}
    env.pop("BENCH_TASKS", None)
    code = "import bench, hydra_plugins.bench_tasks as p; print(bench.__file__); print(p.__file__)"
    where = subprocess.run([sys.executable, "-c", code], cwd=root, env=env, capture_output=True, text=True,
                           check=True).stdout.split()
    assert all(w.startswith(str(site)) for w in where), where  # the installed copy, not this checkout
    return env


def test_the_wheel_holds_every_tasks_configs_and_the_plugin(installed):
    _, names = installed
    assert "hydra_plugins/bench_tasks/bench_tasks.py" in names and "bench/conf/config.yaml" in names
    builtin = [t for t in tasks().values() if t.package.startswith("bench.")]
    assert builtin
    for task in builtin:
        folder = task.package.replace(".", "/") + "/conf"
        shipped = {n for n in names if n.startswith(folder + "/")}
        on_disk = {f"{folder}/{p.relative_to(REPO / folder)}" for p in (REPO / folder).rglob("*.yaml")}
        assert f"{folder}/task/{task.name}.yaml" in shipped and on_disk <= shipped, on_disk - shipped


@pytest.mark.parametrize("name", sorted(t.name for t in tasks().values() if t.package.startswith("bench.")))
def test_every_cards_preset_composes_from_the_installed_wheel(installed, name, tmp_path):
    site, _ = installed
    preset = tasks()[name].card.preset
    env = _installed_env(site, tmp_path)
    res = subprocess.run([sys.executable, "-m", "bench.cli", f"experiment={preset}", "--cfg", "job"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"task:\n  name: {name}\n" in res.stdout


ASSETS = Path(os.environ.get("BENCH_ASSETS") or REPO / ".cache" / "assets")


@pytest.mark.slow  # the whitening preset end to end: 13 min CPU on one thread (its ResNet20 Stage C)
@pytest.mark.skipif(not (ASSETS / "fashion_mnist").is_dir() or not (ASSETS / "pretrained_weights").is_dir(),
                    reason=f"no assets under {ASSETS}: run 'make assets' (or point BENCH_ASSETS at them)")
def test_the_installed_bench_command_runs_the_whitening_preset_from_another_directory(installed, tmp_path):
    """Issue 21's acceptance: the wheel's ``bench`` script, run from a folder that is not a checkout, completes
    ``experiment=whitening/embedded`` and records its run with the card's claims."""
    site, _ = installed
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {**_installed_env(site, tmp_path), "BENCH_ASSETS": str(ASSETS)}
    script = site / "bin" / "bench"  # the console script pip wrote for the wheel's entry point
    res = subprocess.run([str(script), "experiment=whitening/embedded"], cwd=elsewhere, env=env,
                         capture_output=True, text=True, timeout=3600)
    assert res.returncode == 0, res.stderr[-3000:]
    (record,) = (tmp_path / "results" / "runs" / "whitening").glob("*/run.json")
    run = json.loads(record.read_text())
    assert run["status"] == "completed" and run["claims"], run.get("status")
    assert not list(elsewhere.iterdir())  # nothing written where it was started: everything under BENCH_ROOT
