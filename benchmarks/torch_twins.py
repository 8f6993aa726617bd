"""PyTorch twins of dltool's models: the same layers under the same state-dict keys.

A dltool model's weights load into its twin (``benchmarks.models.copy_weights(model, twin,
torch)``), so the twin does the same arithmetic: the benchmarks time it against dltool's and the
model tests take it as their oracle. Import this module only where PyTorch is installed.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn


class TorchGenerator(nn.Module):
    """``dltool.models.dcgan.Generator`` in PyTorch."""

    def __init__(self, latent_dim: int, channels: int, features: int, image_size: int) -> None:
        super().__init__()
        side = image_size // 4
        self.net = nn.Sequential(
            nn.Linear(latent_dim, 2 * features * side * side, bias=False),
            nn.Unflatten(1, (2 * features, side, side)),
            nn.BatchNorm2d(2 * features),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * features, features, 4, 2, 1, bias=False),
            nn.BatchNorm2d(features),
            nn.ReLU(),
            nn.ConvTranspose2d(features, channels, 4, 2, 1),
            nn.Tanh(),
        )

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z)


class TorchDiscriminator(nn.Module):
    """``dltool.models.dcgan.Discriminator`` in PyTorch."""

    def __init__(self, channels: int, features: int, image_size: int) -> None:
        super().__init__()
        side = image_size // 4
        self.net = nn.Sequential(
            nn.Conv2d(channels, features, 4, 2, 1),
            nn.LeakyReLU(0.2),
            nn.Conv2d(features, 2 * features, 4, 2, 1, bias=False),
            nn.BatchNorm2d(2 * features),
            nn.LeakyReLU(0.2),
            nn.Flatten(),
            nn.Linear(2 * features * side * side, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).squeeze(1)


class TorchRNNLanguageModel(nn.Module):
    """``dltool.models.language.RNNLanguageModel`` without dropout, in PyTorch."""

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int,
        hidden_size: int,
        num_layers: int,
        cell: str,
        tie_weights: bool = False,
    ) -> None:
        super().__init__()
        self.drop = nn.Dropout(0.0)  # called as dltool's model calls its own, at p=0
        self.encoder = nn.Embedding(vocab_size, embedding_dim)
        rnn = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}[cell]
        self.rnn = rnn(embedding_dim, hidden_size, num_layers=num_layers, batch_first=True)
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.encoder.weight

    def forward(self, tokens: torch.Tensor, state: Any = None) -> tuple[torch.Tensor, Any]:
        output, state = self.rnn(self.drop(self.encoder(tokens)), state)
        return self.decoder(self.drop(output)), state
