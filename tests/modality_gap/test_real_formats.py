"""The paper's other tasks end to end on tiny file sets in their real on-disk formats: COCO
retrieval (Karpathy-split dataset_coco.json + image folder) and A-OKVQA multiple choice
(aokvqa_v1p0_val.json + COCO 2017 images)."""
import json

import pytest

from bench.cli import execute
from bench.errors import DataError
from bench.modality_gap.datasets import load_eval_data
from bench.store import read_run
from tests.modality_gap.test_task import TINY, _rows

NAMES = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _digits(n: int):
    data = load_eval_data("mnist", n=n)
    return [(data.images[i].convert("RGB"), int(data.labels[i])) for i in range(n)]


@pytest.fixture
def coco(tmp_path):
    """12 COCO-style images with a Karpathy-split JSON (test split, 2-3 captions each, one train image)."""
    root = tmp_path / "coco"
    (root / "val2014").mkdir(parents=True)
    images = []
    for i, (img, label) in enumerate(_digits(13)):
        name = f"COCO_val2014_{i:012d}.jpg"
        img.save(root / "val2014" / name)
        sentences = [{"raw": f"a handwritten {NAMES[label]}.", "tokens": ["a", "handwritten", NAMES[label]]},
                     {"raw": f"the digit {NAMES[label]}. ", "tokens": ["the", "digit", NAMES[label]]}]
        if i % 2:
            sentences.append({"raw": f"a photo of the number {label}.", "tokens": []})
        images.append({"filepath": "val2014", "filename": name, "imgid": i, "cocoid": 1000 + i,
                       "split": "train" if i == 12 else "test", "sentences": sentences, "sentids": []})
    (root / "dataset_coco.json").write_text(json.dumps({"images": images, "dataset": "coco"}))
    return root


@pytest.fixture
def aokvqa(tmp_path):
    """10 A-OKVQA val questions over COCO 2017 images (val2017/<image_id:012d>.jpg)."""
    root = tmp_path / "coco2017"
    (root / "val2017").mkdir(parents=True)
    questions = []
    for i, (img, label) in enumerate(_digits(10)):
        image_id = 500000 + i
        img.save(root / "val2017" / f"{image_id:012d}.jpg")
        wrong = [NAMES[(label + k) % 10] for k in (3, 5, 7)]
        choices = wrong[:i % 4] + [NAMES[label]] + wrong[i % 4:]
        questions.append({"split": "val", "image_id": image_id, "question_id": f"q{i}",
                          "question": "Which digit is written here?", "choices": choices,
                          "correct_choice_idx": i % 4, "direct_answers": [NAMES[label]] * 10,
                          "difficult_direct_answer": False, "rationales": ["It is written."]})
    (root / "aokvqa_v1p0_val.json").write_text(json.dumps(questions))
    return root


@pytest.mark.integration  # an evaluation run on files in the real format
def test_coco_karpathy_retrieval_both_directions(compose, coco):
    data = load_eval_data("karpathy", captions_file=str(coco / "dataset_coco.json"), root=str(coco), split="test")
    assert len(data.images) == 12 and len(data.captions) == 30 and data.positives.sum() == 30
    _, rows = read_run(execute(compose(TINY + [
        "zeroshot=coco", f"zeroshot.root={coco}", f"zeroshot.captions_file={coco / 'dataset_coco.json'}",
        "zeroshot.n=null", "task.perturbations.paraphrase=[]", "task.perturbations.quantize=[]", "task.modes=[paper]"])))
    for direction in ("i2t", "t2i"):
        assert len(_rows(rows, "recall@1", direction=direction)) == 2
        assert _rows(rows, "robustness", direction=direction, perturbation="gaussian")
    # 30 captions in d=64: rank 29 < d, so the exact invariant holds in both directions
    assert {r["value"] for r in _rows(rows, "clean_predictions_changed")} == {0}


@pytest.mark.integration  # an evaluation run on files in the real format
def test_aokvqa_multiple_choice_accuracy_and_robustness(compose, aokvqa):
    questions = aokvqa / "aokvqa_v1p0_val.json"
    data = load_eval_data("aokvqa", captions_file=str(questions), root=str(aokvqa), split="val")
    assert len(data.choices) == 10 and all(len(c) == 4 for c in data.choices)
    first = json.loads(questions.read_text())[0]
    assert data.choices[0] == [f"Which digit is written here? {c}" for c in first["choices"]]
    assert data.labels.tolist() == [i % 4 for i in range(10)]
    _, rows = read_run(execute(compose(TINY + [
        "zeroshot=aokvqa", f"zeroshot.root={aokvqa}", f"zeroshot.captions_file={questions}", "zeroshot.n=null",
        "task.perturbations.paraphrase=[]", "task.modes=[paper,symmetric]"])))
    acc = [r["value"] for r in _rows(rows, "acc1", mode="paper")]
    assert len(acc) == 2 and acc[0] == acc[1]  # 40 pooled choices in d=64: the invariant holds
    for kind in ("gaussian", "quantize"):
        assert _rows(rows, "robustness", mode="paper", perturbation=kind, alpha=1.0)
        assert _rows(rows, "accuracy", mode="symmetric", perturbation=kind, alpha=1.0)


def test_aokvqa_without_answers_fails_clearly(aokvqa):
    questions = aokvqa / "aokvqa_v1p0_val.json"
    hidden = [{k: v for k, v in q.items() if k != "correct_choice_idx"} for q in json.loads(questions.read_text())]
    questions.write_text(json.dumps(hidden))
    with pytest.raises(DataError, match="correct_choice_idx"):
        load_eval_data("aokvqa", captions_file=str(questions), root=str(aokvqa), split="val")
