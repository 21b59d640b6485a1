"""Small real generators for the shift tests (an untrained decoder is enough for mechanics)."""
import pickle
import sys
import textwrap

import pytest
import torch

from bench.shift.generators.edm import EDMPrecond
from bench.shift.generators.vae import Decoder, VAEGenerator

# A stand-in for the EDM source tree: a tiny conv net in its own importable package (removed after
# pickling, so unpickling works only through generator.edm_src), under EDM's preconditioning.
TINY_EDM_NETWORKS = textwrap.dedent('''
    import torch
    from torch import nn

    class TinyNet(nn.Module):
        """The raw network F(c_in x, c_noise, one-hot labels) of a tiny conditional denoiser."""

        def __init__(self, img_channels=3, label_dim=10, width=8):
            super().__init__()
            self.inp = nn.Conv2d(img_channels, width, 3, padding=1)
            self.label = nn.Linear(label_dim, width)
            self.out = nn.Conv2d(width, img_channels, 3, padding=1)

        def forward(self, x, c_noise, class_labels):
            emb = self.label(class_labels.to(torch.float32)) + c_noise[:, None]
            return self.out(torch.nn.functional.silu(self.inp(x) + emb[:, :, None, None]))
''')


@pytest.fixture
def tiny_vae() -> VAEGenerator:
    torch.manual_seed(0)
    return VAEGenerator(Decoder(latent_dim=8, num_classes=10, hidden=16), latent_dim=8, num_classes=10, tag="test")


@pytest.fixture
def edm_pickle(tmp_path):
    """``(network pickle, EDM source tree)``: a tiny 3x8x8 10-class denoiser pickled in the NVlabs
    dict format ({'ema': net, ...}) whose class lives in the source tree only."""
    src = tmp_path / "edm_src"
    for package in ("torch_utils", "dnnlib", "tiny_edm_training"):
        (src / package).mkdir(parents=True)
        (src / package / "__init__.py").write_text("")
    (src / "tiny_edm_training" / "networks.py").write_text(TINY_EDM_NETWORKS)
    sys.path.insert(0, str(src))
    try:
        from tiny_edm_training.networks import TinyNet

        torch.manual_seed(0)
        net = EDMPrecond(TinyNet(), img_resolution=8, img_channels=3, label_dim=10).eval()
        path = tmp_path / "edm-tiny-8x8-cond.pkl"
        with open(path, "wb") as f:
            pickle.dump({"ema": net, "augment_pipe": None, "dataset_kwargs": {}}, f)
    finally:
        sys.path.remove(str(src))
        for name in [m for m in sys.modules if m.split(".")[0] == "tiny_edm_training"]:
            del sys.modules[name]
    return path, src
