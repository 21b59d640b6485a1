"""A CLIP bench trains is an open_clip ``local-dir:`` folder: another program loads it with plain
open_clip (no bench import) and gets bench's acc1."""
import json
import subprocess
import sys

import pytest

from bench.cli import execute
from bench.modality_gap.datasets import load_eval_data
from bench.modality_gap.zeroshot import ASSETS
from bench.store import read_run
from tests.modality_gap.test_task import TINY, _rows

PLAIN_OPEN_CLIP = """
import json, sys
from pathlib import Path
import open_clip, torch
from PIL import Image

folder, images_dir, assets = sys.argv[1:4]
model, _, preprocess = open_clip.create_model_and_transforms("local-dir:" + folder)
tokenizer = open_clip.get_tokenizer("local-dir:" + folder)
model.eval()
spec = json.loads(Path(assets).read_text())
labels = json.loads((Path(images_dir) / "labels.json").read_text())
with torch.no_grad():
    x = torch.stack([preprocess(Image.open(Path(images_dir) / f"{i}.png")) for i in range(len(labels))])
    img = torch.nn.functional.normalize(model.encode_image(x), dim=-1)
    protos = []
    for c in spec["classnames"]:
        t = torch.nn.functional.normalize(model.encode_text(tokenizer([t.format(c=c) for t in spec["templates"]])), dim=-1)
        protos.append(torch.nn.functional.normalize(t.mean(0), dim=-1))
    logits = 100 * img @ torch.stack(protos).T
acc1 = (logits.argmax(-1) == torch.tensor(labels)).double().mean().item()
assert not any(m == "bench" or m.startswith("bench.") for m in sys.modules), "bench was imported"
print(json.dumps({"acc1": acc1}))
"""


@pytest.mark.integration  # trains and runs a CLIP, then a second Python
def test_trained_clip_loads_in_plain_open_clip_with_the_same_acc1(compose, bench_root, tmp_path):
    _, rows = read_run(execute(compose(TINY + ["task.modes=[paper]", "task.perturbations.quantize=[]",
                                               "task.perturbations.paraphrase=[]"])))
    acc1 = _rows(rows, "acc1", alpha=0.0)[0]["value"]
    folders = [p.parent for p in (bench_root / ".cache").rglob("open_clip_config.json")]
    assert len(folders) == 1
    config = json.loads((folders[0] / "open_clip_config.json").read_text())
    assert {"model_cfg", "preprocess_cfg"} <= set(config) and config["preprocess_cfg"]["mean"][0] == 0.1307
    data = load_eval_data("mnist", n=200)  # TINY's evaluation set
    images = tmp_path / "images"
    images.mkdir()
    for i in range(len(data.images)):
        data.images[i].save(images / f"{i}.png")
    (images / "labels.json").write_text(json.dumps(data.labels.tolist()))
    out = subprocess.run([sys.executable, "-c", PLAIN_OPEN_CLIP, str(folders[0]), str(images),
                          str(ASSETS / "mnist.json")], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert json.loads(out.stdout.strip().splitlines()[-1])["acc1"] == acc1
