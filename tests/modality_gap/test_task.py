"""The task end to end through the CLI evaluator, and (slow) the paper's claims on the embedded model."""
import json

import pytest

from bench.cli import execute
from bench.store import read_run

TINY = ["experiment=modality_gap/embedded_mnist", "logger=none", "clip.train.epochs=1", "clip.train.n_train=256",
        "clip.train.batch_size=64", "zeroshot.n=200", "task.trials=3", "task.alphas=[0.0,1.0]",
        "task.perturbations.quantize=[32]", "task.perturbations.paraphrase=[1.0]", "trainer.enable_progress_bar=false"]


def _rows(rows, metric, **params):
    return [r for r in rows if r["metric"] == metric and all(r["params"].get(k) == v for k, v in params.items())]


def test_embedded_task_end_to_end_records_validate(compose, bench_root, monkeypatch):
    run_dir = execute(compose(TINY))
    record, rows = read_run(run_dir)  # validates both files against schema v1
    assert record["status"] == "completed" and record["model"]["name"] == "bench-mnist-clip"
    assert record["dataset"] == {"name": "mnist", "split": "test", "n": 200}
    assert _rows(rows, "gap_norm")[0]["value"] > 0
    for mode in ("paper", "symmetric"):
        for kind in ("gaussian", "quantize", "paraphrase"):
            assert _rows(rows, "robustness", mode=mode, perturbation=kind, alpha=1.0)
        assert (run_dir / "artifacts" / f"alpha_sweep_{mode}_gaussian.png").is_file()
    acc = [r["value"] for r in _rows(rows, "acc1", mode="paper")]
    assert len(acc) == 2 and acc[0] == acc[1]  # the exact invariant on real embeddings
    assert _rows(rows, "train_gap_norm") and (run_dir / "artifacts" / "gap_dynamics.png").is_file()
    caches = list((bench_root / ".cache" / "bench" / "modality_gap").rglob("*.safetensors"))
    assert len(caches) == 2  # the trained checkpoint and the embeddings
    # A second run reuses both caches and reproduces every metric.
    monkeypatch.delenv("BENCH_RUN_ID", raising=False)  # a new run, not another rank of the first
    _, rows2 = read_run(execute(compose(TINY)))
    assert [r["value"] for r in rows2 if not r["metric"].startswith("train_")] == \
           [r["value"] for r in rows if not r["metric"].startswith("train_")]


def test_retrieval_both_directions_and_the_subspace_choice(compose):
    """mnist_pairs: 120 captions in d=64, so the gallery's rank is d. subspace=rank leaves g' = 0
    (no prediction changes); k=5 < rank moves the gap and records how many clean predictions change."""
    base = TINY + ["zeroshot=mnist_pairs", "task.perturbations.paraphrase=[]", "task.perturbations.quantize=[]",
                   "task.modes=[paper]"]
    _, rows = read_run(execute(compose(base + ["task.subspace=rank"])))
    for direction in ("i2t", "t2i"):
        r1 = _rows(rows, "recall@1", direction=direction)
        r10 = _rows(rows, "recall@10", direction=direction)
        assert len(r1) == 2 and r10[0]["value"] >= r1[0]["value"]
        assert _rows(rows, "robustness", direction=direction, perturbation="gaussian")
    assert {r["value"] for r in _rows(rows, "clean_predictions_changed")} == {0}
    _, rows_k = read_run(execute(compose(base + ["task.subspace='k=5'"])))
    gap = {r["params"]["alpha"]: r["value"] for r in _rows(rows_k, "gap_norm_after", direction="i2t")}
    assert gap[1.0] < gap[0.0]
    # which direction's neighbours a 1-epoch CLIP changes at k=5 depends on its draw (i2t 0 of 200, t2i 95 of
    # 120 since each training stream has its own seed); a shift that moved nothing would change neither
    changed = sum(r["value"] for r in _rows(rows_k, "clean_predictions_changed", alpha=1.0))
    assert changed > 0


@pytest.mark.slow
def test_embedded_model_shows_the_papers_claims(compose):
    """Full embedded training (issue 12's acceptance): acc1 >= 0.85 and exactly flat in alpha; the gap
    forms from an isotropic init (>= 2x the random-halves reference at the end); at the smallest
    sigma^2 (E||eps||^2 = sigma^2) Rob >= 0.8 at alpha 0 and closing the gap raises it; the paraphrase drop
    is reported at alpha 0 and 1."""
    _, rows = read_run(execute(compose(["experiment=modality_gap/embedded_mnist", "logger=none",
                                        "task.perturbations.quantize=[]", "task.modes=[paper]"])))
    acc = {r["params"]["alpha"]: r["value"] for r in _rows(rows, "acc1")}
    assert acc[0.0] >= 0.85 and len(set(acc.values())) == 1, acc
    assert _rows(rows, "train_gap_over_null_init")[0]["value"] < 2.0
    assert _rows(rows, "train_gap_over_null_final")[0]["value"] >= 2.0
    rob0 = _rows(rows, "robustness", perturbation="gaussian", level=0.005, alpha=0.0)[0]
    assert rob0["value"] >= 0.8 and rob0["params"]["convention"] == "norm"
    gain = _rows(rows, "robustness_gain", perturbation="gaussian", level=0.005, alpha=1.0)[0]
    assert gain["value"] > 0, gain  # its stderr is over the 1,000 digits now (43 of them flip): no 2-stderr bar
    drops = {r["params"]["alpha"]: r["value"] for r in _rows(rows, "accuracy_drop", perturbation="paraphrase", level=1.0)}
    assert {0.0, 1.0} <= set(drops)
    print(json.dumps({"acc1": acc[0.0], "rob0": rob0["value"], "gain": gain["value"], "drops": drops}))
