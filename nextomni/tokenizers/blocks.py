"""Small convolutional building blocks shared by the image and audio tokenizers."""

from __future__ import annotations

from torch import Tensor, nn


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))), in 1-D or 2-D."""

    def __init__(self, channels: int, dims: int = 2):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        self.body = nn.Sequential(norm(channels), nn.SiLU(), conv(channels, channels, 3, padding=1),
                                  norm(channels), nn.SiLU(), conv(channels, channels, 3, padding=1))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
