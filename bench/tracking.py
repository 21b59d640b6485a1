"""W&B mirroring. Offline by default; ``logger=wandb_online`` goes online, ``logger=none`` turns it off.

One W&B run per bench run. Lightning's ``WandbLogger`` attaches to that same run, and steps
outside Lightning (analyses, plots) log through :class:`Tracker`, so a bench run is one W&B run.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from bench.config import LoggerMode
from bench.store import is_rank_zero


def _key(row: dict) -> str:
    """A readable W&B key for a metric row: ``metric/k=v,k=v``."""
    params = ",".join(f"{k}={v}" for k, v in sorted(row["params"].items()))
    return re.sub(r"[^\w@.=,/-]", "_", f"{row['metric']}/{params}" if params else row["metric"])


class Tracker:
    """Mirror of a run's metrics and plots to W&B; every method is a no-op when disabled."""

    def __init__(self, mode: str, project: str, save_dir: str | os.PathLike, *, name: str | None = None,
                 group: str | None = None, tags: list[str] | None = None, config: dict | None = None) -> None:
        if mode not in tuple(LoggerMode):  # the config is checked by its schema; this guards a direct call
            raise ValueError(f"logger.mode must be one of {', '.join(LoggerMode)}, not {mode!r}")
        self.mode = mode if is_rank_zero() else "disabled"
        self.run = None
        self.run_id: str | None = None
        if self.mode == "disabled":
            return
        import wandb

        Path(save_dir).mkdir(parents=True, exist_ok=True)
        self.run = wandb.init(mode=self.mode, project=project, dir=str(save_dir), name=name, group=group,
                              tags=tags, config=config, reinit="finish_previous",
                              settings=wandb.Settings(silent=True, console="off"))
        self.run_id = self.run.id

    @property
    def enabled(self) -> bool:
        return self.run is not None

    def lightning_logger(self, prefix: str = "") -> Any:
        """A Lightning ``WandbLogger`` bound to this run, or ``False`` (Lightning's 'no logger').

        ``prefix`` separates several trainings inside one bench run (e.g. one per model)."""
        if not self.enabled:
            return False
        from lightning.pytorch.loggers import WandbLogger

        return WandbLogger(experiment=self.run, prefix=prefix)

    def log_row(self, row: dict) -> None:
        if self.enabled:
            self.run.log({_key(row): row["value"]})

    def log_image(self, name: str, path: Path) -> None:
        if self.enabled:
            import wandb

            self.run.log({f"plots/{name}": wandb.Image(str(path))})

    def log_table(self, name: str, rows: list[dict]) -> None:
        if self.enabled and rows:
            import wandb

            cols = ["metric", "value", "params", "split", "n", "stderr", "higher_is_better"]
            table = wandb.Table(columns=cols, data=[[str(r[c]) if c == "params" else r[c] for c in cols]
                                                    for r in rows])
            self.run.log({name: table})

    def log_claims(self, claims: list[dict]) -> None:
        """The task card's claim verdicts: ``claims/<id>`` in the run summary, plus a table."""
        if self.enabled and claims:
            import wandb

            for c in claims:
                self.run.summary[f"claims/{c['id']}"] = c["verdict"]
            cols = ["id", "verdict", "value", "low", "high", "n_deciding", "seeds", "targeted", "figures", "note"]
            self.run.log({"claims": wandb.Table(columns=cols, data=[
                [" | ".join(c[k]) if k == "figures" else c[k] for k in cols] for c in claims])})

    def finish(self, exit_code: int = 0) -> None:
        if self.enabled:
            self.run.finish(exit_code=exit_code)
            self.run = None
