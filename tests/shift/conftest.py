"""Small real generators for the shift tests (an untrained decoder is enough for mechanics)."""
import pickle
import sys
import textwrap

import pytest
import torch

from bench.shift.generators.vae import Decoder, VAEGenerator

# A stand-in for the EDM source tree: a preconditioned denoiser with EDM's interface
# (EDMPrecond's c_skip/c_out/c_in/c_noise around a tiny conv net), in its own importable package
# that the test removes after pickling, so unpickling works only through generator.edm_src.
TINY_EDM_NETWORKS = textwrap.dedent('''
    import torch
    from torch import nn

    class TinyPrecond(nn.Module):
        def __init__(self, img_resolution=8, img_channels=3, label_dim=10, sigma_data=0.5, width=8):
            super().__init__()
            self.img_resolution, self.img_channels, self.label_dim = img_resolution, img_channels, label_dim
            self.sigma_min, self.sigma_max, self.sigma_data = 0.0, float("inf"), sigma_data
            self.inp = nn.Conv2d(img_channels, width, 3, padding=1)
            self.label = nn.Linear(label_dim, width)
            self.out = nn.Conv2d(width, img_channels, 3, padding=1)

        def forward(self, x, sigma, class_labels=None):
            x = x.to(torch.float32)
            sigma = sigma.to(torch.float32).reshape(-1, 1, 1, 1)
            sd = self.sigma_data
            c_skip = sd ** 2 / (sigma ** 2 + sd ** 2)
            c_out = sigma * sd / (sigma ** 2 + sd ** 2).sqrt()
            c_in = 1 / (sd ** 2 + sigma ** 2).sqrt()
            emb = self.label(class_labels.to(torch.float32))[:, :, None, None] + sigma.log() / 4
            return c_skip * x + c_out * self.out(torch.nn.functional.silu(self.inp(c_in * x) + emb))

        def round_sigma(self, sigma):
            return torch.as_tensor(sigma)
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
        from tiny_edm_training.networks import TinyPrecond

        torch.manual_seed(0)
        path = tmp_path / "edm-tiny-8x8-cond.pkl"
        with open(path, "wb") as f:
            pickle.dump({"ema": TinyPrecond().eval(), "augment_pipe": None, "dataset_kwargs": {}}, f)
    finally:
        sys.path.remove(str(src))
        for name in [m for m in sys.modules if m.split(".")[0] == "tiny_edm_training"]:
            del sys.modules[name]
    return path, src
