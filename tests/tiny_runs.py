"""The tiny training runs the harness tests share: a config, seeded images and datasets, state equality."""

from __future__ import annotations

import torch

from mio_strategies.data import MiODataset

# overrides that make any preset a run of seconds (SRResNet, 4 channels, 1 block, 7 periods of 2 iterations)
TINY = [
    "backbone=srresnet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1",
    "periods=7", "period_iters=2", "batch_size=2", "patch_size=16", "val_size=24",
    "prompt_size=16", "log_every=1", "lr=1e-3", "lr_min=1e-5", "ema_decay=0.9",
]  # fmt: skip


def same_state(a, b) -> bool:
    """Exact equality of nested states (tensors compared bit for bit)."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same_state(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_state(x, y) for x, y in zip(a, b))
    return a == b


def images(n: int = 2) -> list[torch.Tensor]:
    """``n`` seeded 24 x 24 RGB images."""
    g = torch.Generator().manual_seed(0)
    return [torch.rand(3, 24, 24, generator=g) for _ in range(n)]


def tiny_data(cfg) -> MiODataset:
    """The training set of a tiny run: two images, the config's tasks, seed and random stream."""
    return MiODataset(images(), cfg.order_tasks, patch_size=cfg.patch_size, seed=cfg.seed, repeat=2, stream=cfg.stream)


def tiny_val(cfg) -> MiODataset:
    """The validation set of a tiny run: one image, no augmentation, a fixed seed."""
    return MiODataset(images(1), cfg.order_tasks, patch_size=cfg.val_size, augment=False, seed=99)
