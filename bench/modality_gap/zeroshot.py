"""Class names and prompt templates (the common CLIP evaluation convention) and prototypes.

A class set is a JSON file ``{"classnames": [...], "templates": ["a photo of a {c}.", ...],
"paraphrases": {"a photo of a {c}.": "a photograph of a {c}.", ...}, "aliases": [[name, other
names...], ...] (optional)}``; bench ships ``mnist``, ``cifar10`` and ``cifar100`` in ``assets/``,
and any path to such a file works too. The paraphrase table maps every template to one paraphrase,
so a paraphrased prototype averages as many templates as the clean one and differs only in wording.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.errors import DataError

ASSETS = Path(__file__).parent / "assets"


@dataclass(frozen=True)
class ClassSet:
    classnames: tuple[str, ...]
    templates: tuple[str, ...]
    paraphrase_templates: tuple[str, ...] = ()  # the paraphrase of each template, same order (or none)
    aliases: tuple[tuple[str, ...], ...] = ()  # other names per class (training captions only)

    def prompts(self, templates: tuple[str, ...] | None = None) -> list[str]:
        """Every template filled with every class name, template-major (T*C prompts)."""
        return [t.format(c=c) for t in (templates or self.templates) for c in self.classnames]

    def digest(self) -> str:
        """A short hash of names and templates: embeddings cached under it go stale when they change."""
        text = json.dumps([self.classnames, self.templates, self.paraphrase_templates])
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def load_class_set(name_or_path: str, classnames: list[str] | None = None) -> ClassSet:
    """A shipped class set by name, or a JSON file; ``classnames`` overrides the names (ImageFolder)."""
    path = Path(name_or_path) if name_or_path.endswith(".json") else ASSETS / f"{name_or_path}.json"
    if not path.is_file():
        shipped = ", ".join(p.stem for p in sorted(ASSETS.glob("*.json")))
        raise DataError(f"no class set {name_or_path!r}; use one of {shipped} or a path to a JSON file "
                        "with classnames and templates")
    spec = json.loads(path.read_text())
    table = spec.get("paraphrases", {})
    if table and set(table) != set(spec["templates"]):
        raise DataError(f"{path}: 'paraphrases' must map every template (and only those) to its paraphrase; "
                        f"missing: {sorted(set(spec['templates']) - set(table))}, "
                        f"extra: {sorted(set(table) - set(spec['templates']))}")
    paraphrased = [table[t] for t in spec["templates"]] if table else []
    if any("{c}" not in t for t in spec["templates"] + paraphrased):
        raise DataError(f"{path}: every template and paraphrase must contain the placeholder {{c}}")
    return ClassSet(tuple(classnames or spec["classnames"]), tuple(spec["templates"]), tuple(paraphrased),
                    tuple(tuple(a) for a in spec.get("aliases", ())))


def prototypes(text_embeddings: torch.Tensor) -> torch.Tensor:
    """Class prototypes from per-template embeddings (T x C x d): normalise each, average over
    templates, renormalise (the usual CLIP zero-shot recipe)."""
    unit = text_embeddings / text_embeddings.norm(dim=-1, keepdim=True)
    mean = unit.mean(0)
    return mean / mean.norm(dim=-1, keepdim=True)
