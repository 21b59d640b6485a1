"""The metric rows of modality_gap's sweeps: robustness under a perturbation along the alpha sweep, and the
per-template paraphrase rows, each with the per-query items the claims resample."""
from __future__ import annotations


def robustness_rows(rows: list[dict], base: dict, kind: str, item_set: str, with_items: bool) -> list[dict]:
    """Metric rows of one sweep. Robustness and accuracy rows carry their per-query values (averaged over
    the trials) as ``items`` when ``with_items`` (the rows claims read); gaussian rows carry the convention
    as a param and the measured mean ||eps||/||x|| as ``measured`` (it differs per seed: seeds pool by
    config). Per level: the queries that flip at the first alpha (``flipping_queries``) and, at alpha 1,
    the measured fraction of flips removed F = 1 - (1 - Rob_1)/(1 - Rob_0) (``flip_reduction``, a point
    value: claims compute it with intervals from the robustness items); robustness_gain is robustness
    minus that at the first alpha; paraphrase rows add the accuracy drop (clean minus paraphrased)."""
    out, first = [], {}
    for r in rows:
        params = {**base, "alpha": r["alpha"], "perturbation": kind, "level": r["level"], "trials": r["trials"]}
        extra: dict = {}
        if kind == "gaussian":
            params["convention"] = r["convention"]
            extra["measured"] = {"noise_ratio": round(r["noise_ratio"], 6)}
        n = len(r["robustness_items"])
        for metric, key in (("robustness", "robustness_items"), ("accuracy", "accuracy_items")):
            items = {"items": r[key], "item_set": item_set} if with_items else {}
            out.append({"metric": metric, "value": float(r[key].mean()), "stderr": r[f"{metric}_stderr"],
                        "params": params, "n": n, **items, **extra})
        level_params = {k: v for k, v in params.items() if k != "alpha"}
        rob0 = first.setdefault(r["level"], r)
        if rob0 is r:
            out.append({"metric": "flipping_queries", "value": int((r["robustness_items"] < 1).sum()),
                        "params": params, "n": n, "higher_is_better": False, **extra})
        else:
            out.append({"metric": "robustness_gain", "value": r["robustness_gain"],
                        "stderr": r["robustness_gain_stderr"], "params": {**params, "reference_alpha": rob0["alpha"]},
                        "n": n, **extra})
        if r["alpha"] == 1.0 and rob0["robustness"] < 1:
            f = 1 - (1 - r["robustness"]) / (1 - rob0["robustness"])
            out.append({"metric": "flip_reduction", "value": f, "params": {**level_params, "alpha": 1.0,
                                                                           "reference_alpha": rob0["alpha"]},
                        "n": n, **extra})
        if kind == "paraphrase":
            out.append({"metric": "accuracy_drop", "value": r["clean_accuracy"] - r["accuracy"],
                        "stderr": r["accuracy_stderr"], "params": params, "n": n, "higher_is_better": False})
    return out


def paraphrase_template_rows(rows: list[dict], base: dict, item_set: str) -> list[dict]:
    """Per template (and the ensemble) and alpha: the accuracy drop under paraphrase (items: per-query
    clean minus paraphrased correctness) and robustness to it (items: prediction unchanged); per
    template: the paraphrase shift's share along g' (``paraphrase_shift_along_gap``) and the 95th
    percentile of that share over random directions (``paraphrase_shift_along_gap_null``)."""
    out = []
    for r in rows:
        params = {**base, "perturbation": "paraphrase", "template": r["template"]}
        if "share_along_gap" in r:
            out.append({"metric": "paraphrase_shift_along_gap", "value": r["share_along_gap"], "params": params})
            out.append({"metric": "paraphrase_shift_along_gap_null", "value": r["share_random_95"], "params": params})
            continue
        params["alpha"] = r["alpha"]
        drop = r["clean"] - r["paraphrased"]
        n = len(drop)
        out.append({"metric": "accuracy_drop", "value": float(drop.mean()), "params": params, "n": n,
                    "items": drop, "item_set": item_set, "higher_is_better": False})
        out.append({"metric": "robustness", "value": float(r["unchanged"].mean()), "params": params, "n": n,
                    "items": r["unchanged"], "item_set": item_set})
    return out
