"""Evaluation data: image classification sets (embedded MNIST, Fashion-MNIST, CIFAR-10/100, ImageFolder),
image-caption retrieval sets (a Karpathy-split JSON for COCO/Flickr, or embedded MNIST captions)
and multiple-choice VQA (A-OKVQA's JSON + COCO images).

Images come out as PIL images so every open_clip model's own preprocessing applies.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import torch
from PIL import Image

from bench.errors import DataError
from bench.modality_gap.zeroshot import ClassSet, load_class_set

CLASSIFICATION = ("mnist", "fashion_mnist", "cifar10", "cifar100", "imagefolder")
RETRIEVAL = ("mnist_pairs", "karpathy")
MULTIPLE_CHOICE = ("aokvqa",)


@dataclass
class EvalData:
    """Images, plus either class labels and a class set, or captions with a positives mask."""
    name: str
    split: str
    images: Sequence[Any]  # PIL images (indexable)
    labels: torch.Tensor | None = None
    class_set: ClassSet | None = None
    captions: list[str] | None = None
    positives: torch.Tensor | None = None  # N_images x N_captions bool
    choices: list[list[str]] | None = None  # multiple choice: per image, its C candidate texts (labels = correct one)

    @property
    def is_retrieval(self) -> bool:
        return self.captions is not None

    @property
    def is_multiple_choice(self) -> bool:
        return self.choices is not None


class _MnistImages:
    def __init__(self, pixels: torch.Tensor) -> None:
        self.pixels = pixels

    def __len__(self) -> int:
        return len(self.pixels)

    def __getitem__(self, i: int) -> Image.Image:
        return Image.fromarray(self.pixels[i, 0].numpy(), mode="L")


class _TorchvisionImages:
    """A torchvision dataset's images without its labels."""
    def __init__(self, dataset: Any) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, i: int) -> Image.Image:
        return self.dataset[i][0]


class _ImageFiles:
    def __init__(self, paths: list[Path]) -> None:
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> Image.Image:
        with Image.open(self.paths[i]) as img:
            return img.convert("RGB")


def _take(n: int | None, total: int) -> torch.Tensor:
    """The first ``n`` indices of a fixed permutation (seed 0): a reproducible class-balanced-ish subset."""
    if n is None or n >= total:
        return torch.arange(total)
    return torch.randperm(total, generator=torch.Generator().manual_seed(0))[:n].sort().values


class _Subset:
    def __init__(self, base: Sequence[Any], idx: torch.Tensor) -> None:
        self.base, self.idx = base, idx.tolist()

    def __len__(self) -> int:
        return len(self.idx)

    def __getitem__(self, i: int) -> Any:
        return self.base[self.idx[i]]


def load_eval_data(name: str, *, split: str = "test", n: int | None = None, root: str | None = None,
                   data_dir: str = "data", classes: str | None = None, captions_file: str | None = None,
                   download: bool = False) -> EvalData:
    """Load one evaluation set; a :class:`DataError` names the fix when files are missing."""
    if name == "mnist" or name == "mnist_pairs":
        from bench.data.embedded import load_mnist

        pixels, labels = load_mnist(split)
        idx = _take(n, len(labels))
        data = EvalData(name, split, _MnistImages(pixels[idx]), labels[idx], load_class_set(classes or "mnist"))
        return _mnist_pairs(data) if name == "mnist_pairs" else data
    if name == "fashion_mnist":
        from bench.data.fashion_mnist import load_fashion_mnist

        pixels, labels = load_fashion_mnist(split, root)
        idx = _take(n, len(labels))
        return EvalData(name, split, _MnistImages(pixels[idx]), labels[idx], load_class_set(classes or name))
    if name in ("cifar10", "cifar100"):
        import torchvision

        cls = torchvision.datasets.CIFAR10 if name == "cifar10" else torchvision.datasets.CIFAR100
        where = root or str(Path(data_dir) / name)
        try:
            base = cls(where, train=split == "train", download=download)
        except RuntimeError:
            raise DataError(f"{name} not found under {where}; add zeroshot.download=true (needs network) "
                            f"or point zeroshot.root at an extracted copy") from None
        labels = torch.tensor(base.targets)
        idx = _take(n, len(labels))
        return EvalData(name, split, _Subset(_TorchvisionImages(base), idx), labels[idx], load_class_set(classes or name))
    if name == "imagefolder":
        import torchvision

        if not root or not Path(root).is_dir():
            raise DataError(f"imagefolder needs zeroshot.root=<dir with one sub-folder per class>, got {root!r}")
        base = torchvision.datasets.ImageFolder(root)
        labels = torch.tensor(base.targets)
        idx = _take(n, len(labels))
        names = [c.replace("_", " ") for c in base.classes]
        return EvalData(name, split, _Subset(_TorchvisionImages(base), idx), labels[idx],
                        load_class_set(classes or "cifar10", classnames=names))
    if name == "karpathy":
        return _karpathy(captions_file, root, split, n)
    if name == "aokvqa":
        return _aokvqa(captions_file, root, split, n)
    known = ', '.join(CLASSIFICATION + RETRIEVAL + MULTIPLE_CHOICE)
    raise DataError(f"unknown evaluation set {name!r}; choose one of {known}")


def _mnist_pairs(data: EvalData) -> EvalData:
    """MNIST retrieval: the gallery is every (template, name) caption; an image's positives are its
    class's captions (several correct captions per image, as in COCO)."""
    cs = data.class_set
    names = [(c, (c,) + (cs.aliases[i] if cs.aliases else ())) for i, c in enumerate(cs.classnames)]
    captions, caption_class = [], []
    for i, (_, aliases) in enumerate(names):
        for alias in dict.fromkeys(aliases):
            for t in cs.templates:
                captions.append(t.format(c=alias))
                caption_class.append(i)
    positives = data.labels.unsqueeze(1) == torch.tensor(caption_class).unsqueeze(0)
    return EvalData("mnist_pairs", data.split, data.images, data.labels, cs, captions, positives)


def _karpathy(captions_file: str | None, image_root: str | None, split: str, n: int | None) -> EvalData:
    """COCO/Flickr in the Karpathy-split layout: {"images": [{"filepath"?, "filename", "split",
    "sentences": [{"raw": ...}, ...]}, ...]}."""
    if not captions_file or not Path(captions_file).is_file():
        raise DataError(f"karpathy retrieval needs zeroshot.captions_file=<dataset_coco.json or "
                        f"dataset_flickr30k.json>, got {captions_file!r}")
    if not image_root or not Path(image_root).is_dir():
        raise DataError(f"karpathy retrieval needs zeroshot.root=<image directory>, got {image_root!r}")
    entries = [e for e in json.loads(Path(captions_file).read_text())["images"]
               if e.get("split") == split or (split == "train" and e.get("split") == "restval")]
    if not entries:
        raise DataError(f"{captions_file} has no images in split {split!r}")
    entries = [entries[i] for i in _take(n, len(entries)).tolist()]
    paths, captions, owner = [], [], []
    for i, e in enumerate(entries):
        paths.append(Path(image_root) / e.get("filepath", "") / e["filename"])
        for s in e["sentences"]:
            captions.append(s["raw"].strip())
            owner.append(i)
    missing = [p for p in paths[:20] if not p.is_file()]
    if missing:
        raise DataError(f"image {missing[0]} listed in {captions_file} is missing under zeroshot.root={image_root}")
    positives = torch.arange(len(paths)).unsqueeze(1) == torch.tensor(owner).unsqueeze(0)
    return EvalData("karpathy", split, _ImageFiles(paths), captions=captions, positives=positives)


def aokvqa_prompt(question: str, choice: str) -> str:
    """The text scored against the image for one answer choice: the question followed by the choice."""
    return f"{question.strip()} {choice.strip()}"


def _aokvqa(questions_file: str | None, coco_root: str | None, split: str, n: int | None) -> EvalData:
    """A-OKVQA multiple choice: ``aokvqa_v1p0_<split>.json`` (a list of {"question_id", "image_id",
    "question", "choices", "correct_choice_idx", ...}) and COCO 2017 images under
    ``<coco_root>/<split>2017/<image_id:012d>.jpg`` (the layout of A-OKVQA's own loader)."""
    if not questions_file or not Path(questions_file).is_file():
        raise DataError(f"aokvqa needs zeroshot.captions_file=<aokvqa_v1p0_{split}.json>, got {questions_file!r}")
    if not coco_root or not Path(coco_root).is_dir():
        raise DataError(f"aokvqa needs zeroshot.root=<COCO directory holding {split}2017/>, got {coco_root!r}")
    entries = json.loads(Path(questions_file).read_text())
    if not isinstance(entries, list) or not entries:
        raise DataError(f"{questions_file} is not an A-OKVQA question list")
    if any(e.get("correct_choice_idx") is None for e in entries):
        raise DataError(f"{questions_file} has no correct_choice_idx (the test split's answers are hidden); use val")
    entries = [entries[i] for i in _take(n, len(entries)).tolist()]
    sizes = {len(e["choices"]) for e in entries}
    if len(sizes) != 1:
        raise DataError(f"{questions_file}: every question needs the same number of choices, found {sorted(sizes)}")
    paths = [Path(coco_root) / f"{split}2017" / f"{int(e['image_id']):012d}.jpg" for e in entries]
    missing = [p for p in paths[:20] if not p.is_file()]
    if missing:
        raise DataError(f"image {missing[0]} of {questions_file} is missing under zeroshot.root={coco_root}")
    choices = [[aokvqa_prompt(e["question"], c) for c in e["choices"]] for e in entries]
    labels = torch.tensor([int(e["correct_choice_idx"]) for e in entries])
    return EvalData("aokvqa", split, _ImageFiles(paths), labels, choices=choices)
