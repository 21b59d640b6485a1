"""The embedded default generator: a class-conditional VAE trained on MNIST; its decoder
``G(z, y)`` (z ~ N(0, I_d), y a digit) is deterministic and fast on a CPU."""
from __future__ import annotations

from typing import Any

import lightning as L
import torch
from torch import nn
from torch.nn import functional as F

from bench.shift.generators.base import Generator, weights_hash


class Decoder(nn.Module):
    """(z, one-hot y) -> MLP -> 1x28x28 logits (an MLP: trains in seconds on a CPU)."""

    def __init__(self, latent_dim: int, num_classes: int, hidden: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(nn.Linear(latent_dim + num_classes, hidden), nn.ReLU(),
                                 nn.Linear(hidden, 2 * hidden), nn.ReLU(), nn.Linear(2 * hidden, 28 * 28))

    def forward(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        h = torch.cat([z, F.one_hot(y, self.num_classes).to(z.dtype)], 1)
        return self.net(h).view(len(z), 1, 28, 28)


class Encoder(nn.Module):
    """(x, one-hot y) -> MLP -> mean and log-variance of q(z | x, y)."""

    def __init__(self, latent_dim: int, num_classes: int, hidden: int) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.net = nn.Sequential(nn.Linear(28 * 28 + num_classes, 2 * hidden), nn.ReLU(),
                                 nn.Linear(2 * hidden, hidden), nn.ReLU(), nn.Linear(hidden, 2 * latent_dim))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = torch.cat([x.flatten(1), F.one_hot(y, self.num_classes).to(x.dtype)], 1)
        mean, logvar = self.net(h).chunk(2, dim=1)
        return mean, logvar.clamp(-10, 10)


class ConditionalVAE(L.LightningModule):
    """Bernoulli-likelihood conditional VAE; ``beta`` weighs the KL term (the ELBO at beta=1); ``optim``,
    ``scheduler``: the ``generator.train`` nodes (built by :func:`bench.training.configure_optimizers`)."""

    def __init__(self, optim: dict[str, Any], scheduler: dict[str, Any] | None = None, latent_dim: int = 16,
                 num_classes: int = 10, hidden: int = 256, beta: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.encoder = Encoder(latent_dim, num_classes, hidden)
        self.decoder = Decoder(latent_dim, num_classes, hidden)

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], batch_idx: int) -> torch.Tensor:
        x, y = batch
        mean, logvar = self.encoder(x, y)
        z = mean + torch.randn_like(mean) * (0.5 * logvar).exp()
        recon = F.binary_cross_entropy_with_logits(self.decoder(z, y), x, reduction="sum") / len(x)
        kl = 0.5 * (mean.pow(2) + logvar.exp() - 1 - logvar).sum(1).mean()
        loss = recon + self.hparams.beta * kl
        self.log_dict({"vae/recon": recon, "vae/kl": kl}, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def configure_optimizers(self):
        from bench.training import configure_optimizers

        return configure_optimizers(self, self.parameters(), self.hparams.optim, self.hparams.scheduler,
                                    "generator.train")


class VAEGenerator(Generator):
    """The decoder of a trained :class:`ConditionalVAE` as ``G(z, y)`` (sigmoid of its logits)."""

    def __init__(self, decoder: Decoder, latent_dim: int, num_classes: int, tag: str,
                 device: torch.device = torch.device("cpu")) -> None:
        self.decoder = decoder.eval().to(device)
        self.device = device
        self.latent_shape = (latent_dim,)
        self.image_shape = (1, 28, 28)
        self.num_classes = num_classes
        self.weights_hash = weights_hash(decoder)
        self.id = f"vae-{tag}"

    def _decode(self, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.decoder(z, y))
