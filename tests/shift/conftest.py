"""Small real generators for the shift tests (an untrained decoder is enough for mechanics)."""
import pytest
import torch

from bench.shift.generators.vae import Decoder, VAEGenerator


@pytest.fixture
def tiny_vae() -> VAEGenerator:
    torch.manual_seed(0)
    return VAEGenerator(Decoder(latent_dim=8, num_classes=10, hidden=16), latent_dim=8, num_classes=10, tag="test")
