"""A run's artifacts: ``results/runs/<task>/<run_id>/artifacts/<name>.<png|safetensors|json>``, each written
atomically by rank 0 alone (figures mirrored to W&B)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bench.atomic import atomic_save, atomic_write_json


class Artifacts:
    """The artifact writers of :class:`bench.store.Run` (which sets ``artifacts_dir``, ``is_writer`` and
    ``tracker``)."""
    artifacts_dir: Path
    is_writer: bool
    tracker: Any

    def artifact_path(self, name: str) -> Path:
        """Where an artifact called ``name`` lives (inside ``artifacts/``)."""
        path = (self.artifacts_dir / name).resolve()
        if self.artifacts_dir.resolve() not in path.parents:
            raise ValueError(f"artifact name {name!r} escapes the run's artifacts directory")
        return path

    def save_figure(self, name: str, fig: Any, dpi: int = 120) -> Path:
        """Save a matplotlib figure as ``artifacts/<name>.png`` (atomic) and mirror it to W&B."""
        import matplotlib.pyplot as plt

        path = self.artifact_path(f"{name}.png")
        if self.is_writer:
            atomic_save(path, lambda tmp: fig.savefig(tmp, dpi=dpi, bbox_inches="tight", format="png"))
            if self.tracker is not None:
                self.tracker.log_image(name, path)
        plt.close(fig)
        return path

    def save_tensors(self, name: str, tensors: dict[str, Any]) -> Path:
        """Save named arrays as ``artifacts/<name>.safetensors`` (atomic)."""
        import torch
        from safetensors.torch import save_file

        path = self.artifact_path(f"{name}.safetensors")
        if self.is_writer:
            clean = {k: torch.as_tensor(v).detach().cpu().contiguous() for k, v in tensors.items()}
            atomic_save(path, lambda tmp: save_file(clean, tmp))
        return path

    def save_json(self, name: str, obj: Any) -> Path:
        """Save a JSON artifact ``artifacts/<name>.json`` (atomic)."""
        path = self.artifact_path(f"{name}.json")
        if self.is_writer:
            atomic_write_json(path, obj)
        return path
