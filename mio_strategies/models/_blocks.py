"""Residual blocks of the tiny backbones in plain torch, with basicsr's module names and initialisation.

``SRResNet`` and ``ResUNet`` were built from basicsr's ``ResidualBlockNoBN`` and ``RCAB``; these blocks have
the same layers under the same names (so the same state dicts load) and draw their initial weights in the same
order from the same distributions (so a seed gives the same weights), without importing basicsr. A test
compares both, outputs and initial weights, where basicsr is installed.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["ChannelAttention", "RCAB", "ResidualBlockNoBN", "scaled_kaiming_init"]


def scaled_kaiming_init(modules: list[nn.Module], scale: float) -> None:
    """Kaiming-normal weights times ``scale`` and zero biases for every conv / linear layer in ``modules``
    (the initialisation of residual branches that starts them small).

    Example:
        >>> conv = nn.Conv2d(4, 4, 3)
        >>> scaled_kaiming_init([conv], 0.1)
        >>> float(conv.bias.abs().sum())
        0.0
    """
    for module in modules:
        for m in module.modules():
            if isinstance(m, (nn.Conv2d, nn.Linear)):
                nn.init.kaiming_normal_(m.weight)
                with torch.no_grad():
                    m.weight.mul_(scale)
                if m.bias is not None:
                    nn.init.zeros_(m.bias)


class ResidualBlockNoBN(nn.Module):
    """``x + conv2(relu(conv1(x)))``: two 3x3 convolutions without normalisation, branch initialised at 0.1x.

    Args:
        num_feat: channels in and out.

    Example:
        >>> ResidualBlockNoBN(8)(torch.zeros(1, 8, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, num_feat: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.relu = nn.ReLU(inplace=True)
        scaled_kaiming_init([self.conv1, self.conv2], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: features scaled per channel by a gate computed from their global average.

    Example:
        >>> ChannelAttention(8, 4)(torch.ones(1, 8, 2, 2)).shape
        torch.Size([1, 8, 2, 2])
    """

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        hidden = num_feat // squeeze_factor
        self.attention = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(num_feat, hidden, 1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, num_feat, 1),
            nn.Sigmoid(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.attention(x)


class RCAB(nn.Module):
    """RCAN's residual channel-attention block: ``x + CA(conv(relu(conv(x))))`` (torch's default initialisation).

    Example:
        >>> RCAB(8, squeeze_factor=4)(torch.zeros(1, 8, 4, 4)).shape
        torch.Size([1, 8, 4, 4])
    """

    def __init__(self, num_feat: int, squeeze_factor: int = 16) -> None:
        super().__init__()
        self.rcab = nn.Sequential(
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            nn.ReLU(True),
            nn.Conv2d(num_feat, num_feat, 3, 1, 1),
            ChannelAttention(num_feat, squeeze_factor),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.rcab(x)
