"""Small convolutional building blocks shared by the image and audio tokenizers."""

from __future__ import annotations

from torch import Tensor, nn


def norm(channels: int) -> nn.GroupNorm:
    return nn.GroupNorm(min(8, channels), channels)


class ChannelNorm(nn.Module):
    """LayerNorm over the channels of each position alone. GroupNorm's statistics span the
    whole map, so with it every output depends on everything in the input."""

    def __init__(self, channels: int):
        super().__init__()
        self.norm = nn.LayerNorm(channels)

    def forward(self, x: Tensor) -> Tensor:
        return self.norm(x.movedim(1, -1)).movedim(-1, 1)


class ResBlock(nn.Module):
    """x + conv(act(norm(conv(act(norm(x)))))), in 1-D or 2-D. `local`: 1x1 convolutions and
    `ChannelNorm`, so each position's output depends on that position's input only."""

    def __init__(self, channels: int, dims: int = 2, local: bool = False):
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv1d
        k = 1 if local else 3
        n = ChannelNorm if local else norm
        self.body = nn.Sequential(n(channels), nn.SiLU(), conv(channels, channels, k, padding=k // 2),
                                  n(channels), nn.SiLU(), conv(channels, channels, k, padding=k // 2))

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)
