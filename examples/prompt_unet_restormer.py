"""Scale-aware prompt injection on a real U-Net: spandrel's Restormer (decoder side, one extractor per scale).

Run: ``python examples/prompt_unet_restormer.py`` (a small Restormer; pass ``--dim 48`` for the paper's).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mio_strategies.harness import prompt_scales
from mio_strategies.prompts import ExplicitPrompt, PromptInjector


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=8)
    args = ap.parse_args()
    from spandrel_extra_arches.architectures.Restormer.__arch.restormer_arch import Restormer

    net = Restormer(dim=args.dim, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 2, 4, 8])
    x = torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    before = net(x)
    with PromptInjector.attach(net, ExplicitPrompt(), scales=prompt_scales("restormer", {"dim": args.dim})) as inj:
        for sc in inj.config()["scales"]:
            print(f"{sc['name']:>7} ({sc['part']}): {sc['targets']}")
        print(inj.parameter_report())
        with inj.prompt(task=["rain", "jpeg"]):
            print("identity at attach:", torch.equal(net(x), before))
    print("restored after detach:", torch.equal(net(x), before))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
