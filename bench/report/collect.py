"""Read every run under ``results/runs/`` without ever crashing on a bad file.

Each run directory is read and validated with :func:`bench.store.read_run` (any results schema
version; v1 records are migrated on read).
A run that does not validate, and any file that is not part of a run (a stray file, a folder
without ``run.json``, a run filed under the wrong task), is reported by path and skipped; the
good runs are always kept. Two completed runs of the same config and seed (identical
``config_hash``: e.g. two sweeps racing) count once: the earliest is kept, the others are
listed as duplicates instead of being counted as extra seeds.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from bench.schema import SchemaError
from bench.store import INVALID_MARK, iter_run_dirs, read_run

# What the store writes inside a run directory; anything else there is reported as foreign.
RUN_DIR_ENTRIES = {"run.json", "metrics.jsonl", "artifacts", INVALID_MARK}


@dataclass(frozen=True)
class Problem:
    """A file that could not be used, and why."""
    path: Path
    reason: str


@dataclass
class RunData:
    """One validated run: its record, its metric rows and the PNG plots it saved."""
    dir: Path
    record: dict
    rows: list[dict]
    plots: list[Path] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.record["status"]


@dataclass
class Collection:
    """Everything found under ``results/runs/``, sorted into usable runs and problems."""
    completed: list[RunData]
    unfinished: list[RunData]  # failed or still running: listed, never ranked
    problems: list[Problem]


def _read(run_dir: Path, task_dir: str) -> RunData | Problem:
    try:
        record, rows = read_run(run_dir)
    except (SchemaError, OSError, UnicodeDecodeError) as e:
        # The message names the file (and line) with its full path; keep it relative to the run.
        return Problem(run_dir, str(e).replace(f"{run_dir}/", ""))
    if record["task"] != task_dir or record["run_id"] != run_dir.name:
        return Problem(run_dir, f"run.json says task={record['task']!r}, run_id={record['run_id']!r}, "
                                f"which does not match its location runs/{task_dir}/{run_dir.name}")
    foreign = [r for r in rows if r["run_id"] != record["run_id"] or r["task"] != record["task"]]
    if foreign:
        return Problem(run_dir / "metrics.jsonl",
                       f"{len(foreign)} row(s) belong to another run (run_id {foreign[0]['run_id']})")
    plots = sorted((run_dir / "artifacts").glob("*.png"))
    return RunData(run_dir, record, rows, plots)


def _foreign_entries(root: Path, run_dirs: set[Path]) -> list[Problem]:
    """Files and folders under ``runs/`` that are not part of any run directory."""
    found = []
    for task_entry in sorted(root.iterdir()):
        if not task_entry.is_dir():
            found.append(Problem(task_entry, "not a task folder (expected runs/<task>/<run_id>/)"))
            continue
        for entry in sorted(task_entry.iterdir()):
            if entry not in run_dirs:
                what = "folder without run.json" if entry.is_dir() else "file outside any run folder"
                found.append(Problem(entry, f"foreign {what}"))
    for run_dir in sorted(run_dirs):
        for entry in sorted(run_dir.iterdir()):
            # Temporary files of an atomic write in progress start with '.'; they are not foreign.
            if entry.name not in RUN_DIR_ENTRIES and not entry.name.startswith("."):
                found.append(Problem(entry, "foreign file inside a run folder (ignored; the run is kept)"))
    return found


def _dedupe(runs: list[RunData]) -> tuple[list[RunData], list[Problem]]:
    """Keep the earliest run of each (task, config_hash, seed); the others become problems."""
    first: dict[tuple, RunData] = {}
    extras = []
    for run in sorted(runs, key=lambda r: (r.record["started_at"], r.record["run_id"])):
        key = (run.record["task"], run.record["config_hash"], run.record["seed"])
        if key in first:
            extras.append(Problem(run.dir, f"duplicate of run {first[key].record['run_id']} (same config_hash "
                                           "and seed): not counted as another seed"))
        else:
            first[key] = run
    kept = {id(r) for r in first.values()}
    return [r for r in runs if id(r) in kept], extras


def collect(results_dir: Path) -> Collection:
    """Read every run under ``results_dir/runs``; never raises for a bad run or a stray file."""
    root = Path(results_dir) / "runs"
    completed: list[RunData] = []
    unfinished: list[RunData] = []
    problems: list[Problem] = []
    if not root.is_dir():
        return Collection(completed, unfinished, problems)
    run_dirs = set(iter_run_dirs(results_dir))
    for run_dir in sorted(run_dirs):
        got = _read(run_dir, run_dir.parent.name)
        if isinstance(got, Problem):
            problems.append(got)
        elif got.status == "completed":
            completed.append(got)
        else:
            unfinished.append(got)
    completed, duplicates = _dedupe(completed)
    problems.extend(duplicates)
    problems.extend(_foreign_entries(root, run_dirs))
    return Collection(completed, unfinished, sorted(problems, key=lambda p: str(p.path)))
