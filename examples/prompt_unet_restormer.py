"""Scale-aware prompt injection on a real U-Net: spandrel's Restormer (decoder side, one extractor per scale).

Run: ``python examples/prompt_unet_restormer.py`` (a small Restormer; pass ``--dim 48`` for the paper's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mio_strategies.prompts import ExplicitPrompt, PromptInjector, PromptScale  # noqa: E402


def restormer_scales(dim: int) -> list[PromptScale]:
    """The U scales of Restormer (module names of the reference implementation that spandrel ships)."""
    return [
        PromptScale("encoder_level1", part="encoder", reduction=1, name="enc1"),
        PromptScale("encoder_level2", part="encoder", reduction=2, name="enc2"),
        PromptScale("encoder_level3", part="encoder", reduction=4, name="enc3"),
        PromptScale("latent", part="latent", reduction=8, name="latent", channels=8 * dim),
        PromptScale("decoder_level3", part="decoder", reduction=4, name="dec3", channels=4 * dim),
        PromptScale("decoder_level2", part="decoder", reduction=2, name="dec2", channels=2 * dim),
        PromptScale(["decoder_level1", "refinement"], part="decoder", reduction=1, name="dec1", channels=2 * dim),
        PromptScale("output", part="output", reduction=1, name="out"),
    ]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=8)
    args = ap.parse_args()
    from spandrel_extra_arches.architectures.Restormer.__arch.restormer_arch import Restormer

    net = Restormer(dim=args.dim, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 4, 8])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = net(x)
    with PromptInjector.attach(net, ExplicitPrompt(), scales=restormer_scales(args.dim)) as inj:
        for sc in inj.config()["scales"]:
            print(f"{sc['name']:>7} ({sc['part']}): {sc['targets']}")
        print(inj.parameter_report())
        with inj.prompt(task=["rain", "jpeg"]):
            print("identity at attach:", torch.equal(net(x), before))
    print("restored after detach:", torch.equal(net(x), before))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
