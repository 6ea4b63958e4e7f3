"""The paper's prompt extractor: three strided convolutions with ReLU, then a global mean."""

from __future__ import annotations

import torch
from torch import nn

from ..utils.validation import positive_int
from ._init import check_generator, default_generator, make_layer, seeded_init_

__all__ = ["PromptExtractor"]


class PromptExtractor(nn.Module):
    """Map a prompt image ``(B, C, H, W)`` to a prompt vector ``(B, embed_dim)``.

    Layers (the reference's): zero-pad 1, conv 7x7 stride 2, ReLU, pad 1, conv 3x3 stride 2, ReLU,
    pad 1, conv 3x3 stride 2, ReLU, global mean over space. Any resolution works.

    Args:
        in_channels: channels of the prompt image (1 for explicit prompts, 3 for RGB inputs).
        embed_dim: width of every conv and of the output vector (the paper uses 64).
        generator: seeds the initial weights (default: ``torch.Generator().manual_seed(0)``).

    Raises:
        ValueError: ``in_channels`` or ``embed_dim`` not a positive integer.
        TypeError: ``generator`` is not a ``torch.Generator``.

    Example:
        >>> ext = PromptExtractor(3)
        >>> ext(torch.zeros(2, 3, 40, 56)).shape
        torch.Size([2, 64])
    """

    def __init__(self, in_channels: int, embed_dim: int = 64, *, generator: torch.Generator | None = None) -> None:
        super().__init__()
        for name, v in (("in_channels", in_channels), ("embed_dim", embed_dim)):
            positive_int(name, v)
        check_generator(generator, "PromptExtractor(generator=...)")
        self.in_channels = in_channels
        self.embed_dim = embed_dim
        self.conv1 = make_layer(nn.Conv2d, in_channels, embed_dim, 7, stride=2, padding=1)
        self.conv2 = make_layer(nn.Conv2d, embed_dim, embed_dim, 3, stride=2, padding=1)
        self.conv3 = make_layer(nn.Conv2d, embed_dim, embed_dim, 3, stride=2, padding=1)
        seeded_init_(self, generator if generator is not None else default_generator())

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.conv1(image))
        x = torch.relu(self.conv2(x))
        x = torch.relu(self.conv3(x))
        return x.mean(dim=(-2, -1))
