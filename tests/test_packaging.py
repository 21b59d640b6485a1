"""A wheel carries every config: ``pip install .`` (not editable) and ``bench experiment=<preset>`` work
outside a checkout, each task's conf/ found by the search-path plugin."""
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
    env = {**os.environ, "PYTHONPATH": str(site), "BENCH_ROOT": str(tmp_path)}
    env.pop("BENCH_TASKS", None)
    where = subprocess.run([sys.executable, "-c", "import bench; print(bench.__file__)"], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True).stdout
    assert where.startswith(str(site)), where  # the installed copy, not this checkout
    res = subprocess.run([sys.executable, "-m", "bench.cli", f"experiment={preset}", "--cfg", "job"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    assert f"task:\n  name: {name}\n" in res.stdout
