"""The results store: ``results/runs/<task>/<run_id>/{run.json, metrics.jsonl, artifacts/}``.

The store is the source of truth (W&B is a mirror). A :class:`Run` is a context
manager: it writes ``run.json`` with status ``running`` on entry, and ``completed``
or ``failed`` on exit, so a crash is never mistaken for a finished run. Every file
is written atomically and validated against results schema v1. Only rank 0 writes.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import math
import os
import secrets
import time
import traceback
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from bench.artifacts import Artifacts
from bench.atomic import atomic_write_json, atomic_write_text
from bench.errors import Interrupted
from bench.schema import (
    SCHEMA_VERSION, SchemaError, loads_finite, preset_of, upgrade_run, validate_metric, validate_run)

log = logging.getLogger("bench")
RUN_ID_ENV = "BENCH_RUN_ID"  # how the CLI hands a DDP job's run id to its child ranks
# Written beside a "completed" record that does not validate: the run is re-done, the record kept.
INVALID_MARK = "INVALID.txt"


def new_run_id() -> str:
    """Timestamp plus 32 random bits: sortable, and unique for jobs started in the same second."""
    return f"{dt.datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(4)}"


def is_rank_zero() -> bool:
    """True in the process that owns the results (rank 0 of a distributed job, or a plain run)."""
    return all(os.environ.get(k, "0") == "0" for k in ("RANK", "LOCAL_RANK", "SLURM_PROCID"))


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def _json_scalar(value: Any) -> Any:
    """Make a param value JSON-safe (numpy scalars, tensors, paths become plain values)."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


class Run(Artifacts):
    """One benchmark run being recorded. Use as ``with Run(...) as run: run.log_metric(...)``."""

    def __init__(self, results_dir: str | os.PathLike, task: str, config: dict, *, config_hash: str,
                 overrides: list[str], seed: int | None, provenance: dict[str, Any],
                 tracker: Any = None, sweep: dict | None = None, run_id: str | None = None) -> None:
        self.task = task
        # ``run_id``: a DDP child rank names its parent's run (the CLI passes it on, see RUN_ID_ENV)
        self.run_id = run_id or new_run_id()
        self.dir = Path(results_dir) / "runs" / task / self.run_id
        self.artifacts_dir = self.dir / "artifacts"
        self.is_writer = is_rank_zero()
        self.tracker = tracker
        self._rows: list[dict] = []
        self._t0 = time.monotonic()
        self.record: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "run_id": self.run_id, "task": task,
            "status": "running", "error": None, "started_at": _now(), "finished_at": None,
            "wall_time_s": None, "config": config, "config_hash": config_hash,
            "overrides": list(overrides), "seed": seed, "sweep": sweep,
            "preset": preset_of(overrides), "claims": None,
            "model": {"name": None, "source": None, "n_params": None},
            "dataset": {"name": None, "split": None, "n": None},
            "wandb": {"mode": getattr(tracker, "mode", "disabled"),
                      "run_id": getattr(tracker, "run_id", None)},
            **provenance,
        }

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> Run:
        try:
            if self.is_writer:
                if (self.dir / "run.json").exists():
                    raise FileExistsError(f"{self.dir} already holds a run; refusing to overwrite it")
                self.artifacts_dir.mkdir(parents=True, exist_ok=True)
                self._write_record()
        except BaseException:  # __exit__ will not run: release what __init__ took
            self._release(exit_code=1)
            raise
        return self

    def __exit__(self, exc_type, exc, tb) -> bool:
        failed = exc_type is not None
        if isinstance(exc, Interrupted):
            self.record["error"] = f"interrupted ({exc}); run the command again to resume"
        elif failed:
            self.record["error"] = "".join(traceback.format_exception_only(exc_type, exc)).strip()[-2000:]
        write_error = None
        if self.is_writer:
            try:
                self.flush()
            except OSError as e:  # e.g. a full disk: the run did not complete, and its record must say so
                write_error, failed = e, True
                self.record["error"] = self.record["error"] or f"{type(e).__name__}: {e} (writing metrics.jsonl)"
        self.record["status"] = "failed" if failed else "completed"
        self.record["finished_at"] = _now()
        self.record["wall_time_s"] = round(time.monotonic() - self._t0, 3)
        if self.is_writer:
            self._write_final_record()
        if self.tracker is not None:
            self.tracker.log_table("metrics", self._rows)
        self._release(exit_code=1 if failed else 0)
        if write_error is not None and exc is None:
            raise write_error
        return False

    def _write_final_record(self) -> None:
        """The record's last state; on a full disk (the atomic write needs room for a second copy) it is
        overwritten in place, in the blocks the record already holds, so no run stays ``running``."""
        try:
            self._write_record()
        except OSError:
            text = json.dumps(self.record, indent=2, sort_keys=True, allow_nan=False) + "\n"
            with open(self.dir / "run.json", "r+") as f:
                f.write(text)
                f.truncate()
                f.flush()
                os.fsync(f.fileno())

    def _release(self, exit_code: int) -> None:
        """Finish the W&B run."""
        if self.tracker is not None:
            self.tracker.finish(exit_code=exit_code)

    def _write_record(self) -> None:
        validate_run(self.record, what=str(self.dir / "run.json"))
        atomic_write_json(self.dir / "run.json", self.record)

    # -- resumable training ----------------------------------------------------------------
    def note_resumed(self, name: str, *, step: int, epoch: int, checkpoint: str) -> None:
        """Record that training ``name`` resumed from ``checkpoint`` at ``step`` (epoch ``epoch``)."""
        self.record.setdefault("resumed", []).append(
            {"training": name, "step": int(step), "epoch": int(epoch), "checkpoint": checkpoint})
        if self.is_writer:
            self._write_record()

    # -- what was run on -------------------------------------------------------------------
    def set_model(self, name: str, source: str, n_params: int | None, weights: str | None = None) -> None:
        """Record the model evaluated (registry name, where its weights came from, size) and ``weights``,
        the identity of the weights evaluated (a sha256 or a pretrained tag; the report marks seeds that
        share it)."""
        self.record["model"] = {"name": name, "source": source, "n_params": n_params, "weights": weights}
        if self.is_writer:
            self._write_record()

    def set_claims(self, claims: list[dict]) -> None:
        """Record the task card's claim verdicts on this run (see :func:`bench.tasks.record_claims`)."""
        self.record["claims"] = claims
        if self.is_writer:
            self._write_record()
        if self.tracker is not None:
            self.tracker.log_claims(claims)

    def set_dataset(self, name: str, split: str, n: int | None) -> None:
        """Record the dataset evaluated on."""
        self.record["dataset"] = {"name": name, "split": split, "n": n}
        if self.is_writer:
            self._write_record()

    # -- metrics ---------------------------------------------------------------------------
    def log_metric(self, metric: str, value: float, *, params: dict | None = None, split: str = "test",
                   n: int | None = None, stderr: float | None = None, higher_is_better: bool = True,
                   items: Iterable[float] | None = None, item_set: str | None = None,
                   measured: dict | None = None, flush: bool = True) -> dict:
        """Record one metric value under the conditions ``params``; NaN is stored as null.

        ``items``: the per-item values whose mean is ``value`` (item i is unit i of ``item_set``;
        Monte-Carlo trials are averaged within an item, never listed as items): claims resample them
        (:mod:`bench.claims`). ``measured``: measured quantities that must not split seed groups."""
        value = float(value)
        row = {
            "run_id": self.run_id, "task": self.task, "metric": metric,
            "value": value if math.isfinite(value) else None,
            "params": {str(k): _json_scalar(v) for k, v in (params or {}).items()},
            "split": split, "n": None if n is None else int(n),
            "stderr": None if stderr is None or not math.isfinite(stderr) else float(stderr),
            "higher_is_better": bool(higher_is_better),
        }
        if items is not None:
            row["items"] = [float(x) for x in (items.tolist() if hasattr(items, "tolist") else items)]
            mean = math.fsum(x / len(row["items"]) for x in row["items"]) if row["items"] else math.nan
            if math.isfinite(value) and not math.isclose(mean, value, rel_tol=1e-6, abs_tol=1e-9):
                raise ValueError(f"metric {metric!r}: value {value!r} is not the mean of its {len(row['items'])} "
                                 f"items ({mean!r})")
        if item_set is not None:
            row["item_set"] = str(item_set)
        if measured is not None:
            row["measured"] = {str(k): _json_scalar(v) for k, v in measured.items()}
        validate_metric(row)
        self._rows.append(row)
        if self.tracker is not None:
            self.tracker.log_row(row)
        if flush:
            self.flush()
        return row

    def log_metrics(self, rows: Iterable[dict]) -> None:
        """Record many metrics (each a dict of :meth:`log_metric` keyword arguments), one write."""
        for row in rows:
            self.log_metric(**row, flush=False)
        self.flush()

    @property
    def metrics(self) -> list[dict]:
        """The rows recorded so far."""
        return list(self._rows)

    def flush(self) -> None:
        """Rewrite metrics.jsonl atomically with every row recorded so far."""
        if self.is_writer:
            text = "".join(json.dumps(r, sort_keys=True, allow_nan=False) + "\n" for r in self._rows)
            atomic_write_text(self.dir / "metrics.jsonl", text)


# -- reading ---------------------------------------------------------------------------------
def _load(path: Path, what: str) -> Any:
    return _parse(path.read_text(), what)


def _parse(text: str, what: str) -> Any:
    try:
        return loads_finite(text)
    except json.JSONDecodeError as e:
        raise SchemaError(f"{what}: not valid JSON ({e})") from None
    except ValueError as e:  # NaN, Infinity, 1e400
        raise SchemaError(f"{what}: {e}") from None


def read_run(run_dir: Path) -> tuple[dict, list[dict]]:
    """Read and validate one run directory; raise :class:`SchemaError`/``OSError`` naming the file.

    A ``completed`` run must have metrics: a completed record without ``metrics.jsonl`` (or with
    an empty one) is refused rather than read as a run that measured nothing."""
    run_json = run_dir / "run.json"
    record = upgrade_run(_load(run_json, str(run_json)), what=str(run_json))
    rows = []
    metrics = run_dir / "metrics.jsonl"
    if metrics.exists():
        for i, line in enumerate(metrics.read_text().splitlines(), 1):
            if not line.strip():
                continue
            row = _parse(line, f"{metrics}:{i}")
            validate_metric(row, what=f"{metrics}:{i}")
            rows.append(row)
    if record["status"] == "completed" and not rows:
        raise SchemaError(f"{metrics}: a completed run without metrics "
                          f"({'empty' if metrics.exists() else 'missing'})")
    return record, rows


def iter_run_dirs(results_dir: Path, task: str | None = None) -> Iterator[Path]:
    """Every directory under ``results/runs/`` that looks like a run (has a run.json)."""
    root = Path(results_dir) / "runs"
    pattern = f"{task}/*/run.json" if task else "*/*/run.json"
    for run_json in sorted(root.glob(pattern)):
        yield run_json.parent


def find_completed(results_dir: Path, task: str, config_hash: str) -> Path | None:
    """The directory of a completed, valid run of ``task`` with this ``config_hash``, if any.

    Both run.json and metrics.jsonl are read through the schema. A record that says
    ``completed`` but does not validate is not a result: it is marked with ``INVALID.txt``
    (kept, never deleted, so it can be inspected) and the config counts as not done."""
    for run_dir in iter_run_dirs(results_dir, task):
        try:
            status, digest = _status(run_dir)
        except (OSError, ValueError):
            continue
        if digest != config_hash or status != "completed" or (run_dir / INVALID_MARK).exists():
            continue
        try:
            read_run(run_dir)
        except (SchemaError, OSError, UnicodeDecodeError) as e:
            log.warning("skip_existing: %s says completed but does not validate; running the config again "
                        "(the record is kept, marked %s): %s", run_dir, INVALID_MARK, e)
            if is_rank_zero():
                atomic_write_text(run_dir / INVALID_MARK, f"{_now()} not used by skip_existing; the config is "
                                                          f"run again. Reason:\n{e}\n")
            continue
        return run_dir
    return None


def _status(run_dir: Path) -> tuple[Any, Any]:
    """A record's status and config hash, read leniently (to find the candidates to validate)."""
    record = json.loads((run_dir / "run.json").read_text())
    if not isinstance(record, dict):
        raise ValueError("run.json is not an object")
    return record.get("status"), record.get("config_hash")
