"""Hand-written reference modules for `modelc bench --reference module:bench/references.py:CLASS`
where neither torchvision nor the spec at another level is the reference. Plain torch, the way
a PyTorch author writes them; their state_dict keys are the specs' so weights are shared."""

from __future__ import annotations

import torch
from torch import nn


class LSTM(nn.Module):
    """torch.nn.LSTM(512, 512, 2), batch first (cuDNN's kernel on CUDA): specs/lstm.model."""

    def __init__(self, input_size: int = 512, hidden: int = 512, layers: int = 2) -> None:
        super().__init__()
        self.lstm = nn.LSTM(input_size, hidden, layers, batch_first=True)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        y, (h, c) = self.lstm(x)
        return y, h, c
