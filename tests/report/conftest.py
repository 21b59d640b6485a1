"""A realistic results folder written with the real :class:`bench.store.Run`.

It holds three tasks plus one unregistered task, three seeds of one config, a failed run, a
still-running run, a malformed run.json, a run whose metrics.jsonl has a corrupt line, and
foreign files, so the report is exercised on everything a real results folder can contain.
"""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from bench.provenance import config_hash, git_state, versions  # noqa: E402
from bench.report import Report, write_report  # noqa: E402
from bench.store import RUN_ID_ENV, Run  # noqa: E402

PROVENANCE = {
    "git": git_state(), "versions": versions(),
    "hardware": {"device": "x86_64", "n_devices": 1, "world_size": 1, "hostname": "test-host"},
}


def new_run(results_dir: Path, task: str, model: str, dataset: str, seed: int,
            extra_overrides: tuple[str, ...] = (), groups: dict | None = None) -> Run:
    """A Run with a config like ``bench`` composes (paths and logger excluded from the hash); ``groups``
    adds config groups (e.g. ``clip``)."""
    os.environ.pop(RUN_ID_ENV, None)  # each Run in one process must get its own id
    config = {
        "task": {"name": task}, "model": {"name": model}, "data": {"name": dataset},
        "extra": sorted(extra_overrides), "seed": seed, "skip_existing": False,
        "paths": {"results_dir": str(results_dir)}, "logger": {"mode": "disabled"}, **(groups or {}),
    }
    overrides = [f"experiment={task}/embedded", *extra_overrides, f"seed={seed}"]
    run = Run(results_dir, task, config, config_hash=config_hash(config), overrides=overrides,
              seed=seed, provenance=PROVENANCE)
    return run


def line_plot(x: list[float], y: list[float], title: str):
    fig, ax = plt.subplots(figsize=(3, 2))
    ax.plot(x, y, marker="o")
    ax.set_title(title)
    return fig


@dataclass
class Results:
    """The folder and the ids of the runs the tests assert on."""
    dir: Path
    ids: dict[str, str] = field(default_factory=dict)
    bad_paths: dict[str, Path] = field(default_factory=dict)


def _whitening(res: Results) -> None:
    # resnet20: three seeds of one config (formula fit r 0.90, 0.92, 0.94 -> 0.92 ± 0.02).
    for seed, r in zip((0, 1, 2), (0.90, 0.92, 0.94), strict=True):
        with new_run(res.dir, "whitening", "resnet20", "embedded_photos", seed) as run:
            run.set_model("resnet20", "trained", 270_000)
            run.set_dataset("embedded_photos", "train", 4000)
            run.log_metrics([
                {"metric": "formula_fit_r", "value": r,
                 "params": {"arch": "resnet20", "dataset": "embedded_photos", "labels": "true", "tau": 40 + seed}},
                {"metric": "formula_fit_r", "value": r - 0.1,
                 "params": {"arch": "resnet20", "dataset": "embedded_photos", "labels": "random", "tau": 80}},
                {"metric": "autocorr", "value": 0.2 + seed / 100, "higher_is_better": False,
                 "params": {"delta": 10, "filters": "trained"}},
                {"metric": "autocorr", "value": 0.6, "higher_is_better": False,
                 "params": {"delta": 2, "filters": "trained"}},
            ])
            run.save_figure("energy_profiles", line_plot([1, 2, 3], [1.0, 0.5, 0.2 + seed / 10], "energy"))
            res.ids[f"whitening/resnet20/{seed}"] = run.run_id
    # vgg11: one seed, better formula fit -> rank 1 (higher is better).
    with new_run(res.dir, "whitening", "vgg11", "embedded_photos", 0, ("model=vgg11",)) as run:
        run.set_model("vgg11", "trained", 9_000_000)
        run.set_dataset("embedded_photos", "train", 4000)
        run.log_metric("formula_fit_r", 0.97, params={"arch": "vgg11", "labels": "true", "tau": 30})
        res.ids["whitening/vgg11/0"] = run.run_id
    # A run that crashed: listed, never ranked.
    run = new_run(res.dir, "whitening", "vgg11", "cifar10", 0, ("model=vgg11", "data=cifar10"))
    with pytest.raises(RuntimeError), run:
        run.log_metric("formula_fit_r", 0.99, params={"labels": "true"})
        raise RuntimeError("CUDA out of memory")
    res.ids["whitening/failed"] = run.run_id
    # A run still in progress (entered, never exited): listed, never ranked.
    running = new_run(res.dir, "whitening", "resnet20", "cifar100", 0, ("data=cifar100",))
    running.__enter__()
    running.log_metric("formula_fit_r", 0.99, params={"labels": "true"})
    res.ids["whitening/running"] = running.run_id


def _modality_gap(res: Results) -> None:
    # A sweep over two CLIP configs: the card's ranking unit (clip.name, clip.pretrained) names each row.
    for model, acc, rob in (("ViT-B-16", 0.88, 0.70), ("ViT-L-14", 0.92, 0.75)):
        with new_run(res.dir, "modality_gap", model, "cifar10", 0, (f"model={model}",),
                     {"clip": {"name": model, "pretrained": "openai"}}) as run:
            run.set_model(model, "openai", 150_000_000)
            run.set_dataset("cifar10", "test", 10000)
            rows = [{"metric": "gap_norm", "value": 0.82, "higher_is_better": False}]
            for alpha in (0.0, 0.5, 1.0):
                for mode in ("paper", "symmetric"):
                    rows.append({"metric": "acc1", "value": acc, "params": {"alpha": alpha, "mode": mode}})
                # Two noise levels: the headline cell is their mean within the run.
                for level, drop in ((0.005, 0.0), (0.040, 0.1)):
                    rows.append({"metric": "robustness", "value": rob + 0.2 * alpha - drop,
                                 "params": {"alpha": alpha, "mode": "paper", "perturbation": "gaussian",
                                            "level": level, "trials": 8}})
            run.log_metrics(rows)
            run.save_figure("robustness_vs_alpha", line_plot([0, 0.5, 1], [rob, rob + 0.1, rob + 0.2], "rob"))
            res.ids[f"modality_gap/{model}"] = run.run_id


def _shift(res: Results) -> None:
    # One run trains two classifiers (the card's ranking unit: arch, width): two leaderboard rows.
    with new_run(res.dir, "shift", "resnet20+mlp_mixer", "edm_cifar10", 0) as run:
        run.set_model("resnet20+mlp_mixer", "trained", 270_000)
        run.set_dataset("edm_cifar10", "test", 500)
        rows = []
        for arch, width, slope in (("resnet20", 0.5, 1.0), ("mlp_mixer", 0.25, 2.0)):
            clf = {"arch": arch, "width": width, "aug": False, "n_train": 4000}
            rows.append({"metric": "base_accuracy", "value": 0.9, "split": "val", "params": {**clf, "base": "overlap"}})
            rows += [{"metric": "accuracy", "value": 0.9 - slope * t,
                      "params": {**clf, "family": "overlap", "intensity": t}} for t in (0.0, 0.1, 0.2, 0.3, 0.4)]
            rows += [{"metric": "auc", "value": 0.36 - 0.04 * slope, "params": {**clf, "family": "overlap"}},
                     {"metric": "accuracy_drop", "value": 0.4 * slope, "higher_is_better": False,
                      "params": {**clf, "family": "overlap"}}]
        # A generator metric names no classifier: it stays in the per-condition table.
        rows.append({"metric": "latent_mmd2", "value": 0.1, "higher_is_better": False,
                     "params": {"family": "overlap", "intensity": 0.4}})
        run.log_metrics(rows)
        run.save_figure("accuracy_vs_intensity", line_plot([0, 0.1, 0.2, 0.3, 0.4], [0.9, 0.8, 0.7, 0.6, 0.5], "acc"))
        res.ids["shift/resnet20+mlp_mixer"] = run.run_id


def _unregistered(res: Results) -> None:
    # A task the registry does not know: its runs still appear, with generic columns.
    for model, loss in (("mlp", 12.5), ("cnn", 3.0)):  # "12.5" < "3" as text: sorting must be numeric
        with new_run(res.dir, "toy", model, "digits", 0, (f"model={model}",)) as run:
            run.log_metric("loss", loss, higher_is_better=False)
            res.ids[f"toy/{model}"] = run.run_id


def _damage(res: Results) -> None:
    runs = res.dir / "runs"
    # A completed run whose metrics.jsonl then got a corrupt line: the run is skipped, reported.
    with new_run(res.dir, "shift", "vgg11", "edm_cifar10", 0, ("model=vgg11",)) as run:
        run.log_metric("auc", 0.99, params={"family": "overlap"})
    with open(run.dir / "metrics.jsonl", "a") as f:
        f.write('{"metric": "auc", "value": 0.9\n')
    res.bad_paths["corrupt_metrics"] = run.dir
    malformed = runs / "whitening" / "20240101-000000-deadbeef"
    malformed.mkdir(parents=True)
    (malformed / "run.json").write_text('{"schema_version": 1, "run_id": ')
    res.bad_paths["malformed_run_json"] = malformed
    invalid = runs / "whitening" / "20240101-000001-cafebabe"
    invalid.mkdir(parents=True)
    (invalid / "run.json").write_text('{"schema_version": 1, "task": "whitening"}')
    res.bad_paths["invalid_run_json"] = invalid
    (runs / "notes.txt").write_text("not a run")
    res.bad_paths["foreign_top"] = runs / "notes.txt"
    (runs / "whitening" / "old_leaderboard.csv").write_text("a,b\n")
    res.bad_paths["foreign_in_task"] = runs / "whitening" / "old_leaderboard.csv"
    (runs / "shift" / "scratch").mkdir()
    res.bad_paths["foreign_dir"] = runs / "shift" / "scratch"


@pytest.fixture(scope="session")
def _results_once(tmp_path_factory: pytest.TempPathFactory) -> Results:
    """The folder written once per session (through the real store: ~1 s of fsync'd writes and plots)."""
    res = Results(tmp_path_factory.mktemp("report") / "results")
    _whitening(res)
    _modality_gap(res)
    _shift(res)
    _unregistered(res)
    _damage(res)
    os.environ.pop(RUN_ID_ENV, None)
    return res


def _copy(res: Results, folder: Path) -> Results:
    out = Results(folder / "results", dict(res.ids))
    shutil.copytree(res.dir, out.dir, symlinks=True)
    out.bad_paths = {k: out.dir / p.relative_to(res.dir) for k, p in res.bad_paths.items()}
    return out


@pytest.fixture
def results(_results_once: Results, tmp_path: Path) -> Results:
    """A results folder with good, unfinished and broken runs (see the module docstring): each test gets its
    own copy, which it may change."""
    return _copy(_results_once, tmp_path)


@pytest.fixture(scope="module")
def reported(_results_once: Results, tmp_path_factory: pytest.TempPathFactory) -> tuple[Results, Report]:
    """A copy of the folder and the report written from it, shared by a module's tests that only read them."""
    res = _copy(_results_once, tmp_path_factory.mktemp("reported"))
    return res, write_report(res.dir)
