"""Overhead of PromptInjector's hooks against the same computation written inline.

Four variants of one SRResNet (basicsr MSRResNet, 64 channels, 16 blocks, x2: basicsr's smallest
upscale; the MiO setting's x1 tail is lighter, which only makes the body's share larger), timed for forward+backward
on the CPU, interleaved repeat by repeat:

- hooked:   the backbone with an injector attached (explicit prompt after every residual block,
            after conv_hr and on the 3-channel output: the reference's SRResNet_EP placement, except that
            MSRResNet's shared LeakyReLU puts conv_hr's modulation before the activation);
- inline:   a hand-written module computing exactly the same thing inline (the reference's way);
- detached: the same backbone after ``injector.detach()``;
- bare:     a backbone that was never hooked.

It prints the median time of each and the ratios hooked/inline (target <= 1.05) and detached/bare
(target 1.00 within noise). Run: ``python benchmarks/injector_overhead.py [--repeats 5]``.
"""

from __future__ import annotations

import argparse
import copy
import re
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from mio_strategies.prompts import ExplicitPrompt, PromptInjector
from mio_strategies.utils.basicsr_compat import import_basicsr


class InlineSRResNetEP(nn.Module):
    """SRResNet with explicit-prompt modulation written inline (what the reference's fork does)."""

    def __init__(self, backbone: nn.Module, injector: PromptInjector):
        super().__init__()
        self.conv_first, self.body = backbone.conv_first, backbone.body
        self.upconv1, self.pixel_shuffle = backbone.upconv1, backbone.pixel_shuffle
        self.conv_hr, self.conv_last = backbone.conv_hr, backbone.conv_last
        self.extractor = copy.deepcopy(injector.encoders[0])
        self.register_buffer("maps", injector.source.maps.clone())
        mods = injector.modulators
        self.body_mods = nn.ModuleList(copy.deepcopy(mods[f"body__{i}"]) for i in range(len(self.body)))
        self.hr_mod = copy.deepcopy(mods["conv_hr"])
        self.last_mod = copy.deepcopy(mods["conv_last"])

    @staticmethod
    def _mod(feat, mod, p):
        s, b = mod(p)
        return feat * (1 + s[:, :, None, None]) + b[:, :, None, None]

    def forward(self, x, task_ids):
        p = self.extractor(self.maps)[task_ids]
        feat = F.leaky_relu(self.conv_first(x), 0.1)
        for block, mod in zip(self.body, self.body_mods):
            feat = self._mod(block(feat), mod, p)
        feat = F.leaky_relu(self.pixel_shuffle(self.upconv1(feat)), 0.1)
        feat = F.leaky_relu(self._mod(self.conv_hr(feat), self.hr_mod, p), 0.1)
        out = self._mod(self.conv_last(feat), self.last_mod, p)
        return out + F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def _randomize(module: nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.02)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=4, help="timed repeats per variant (default 4)")
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--channels", type=int, default=64)
    ap.add_argument("--blocks", type=int, default=16)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: PyTorch's default)")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    arch = import_basicsr("archs.srresnet_arch")

    def backbone() -> nn.Module:
        net = arch.MSRResNet(num_feat=args.channels, num_block=args.blocks, upscale=2)
        _randomize(net, 0)
        return net

    hooked = backbone()
    injector = PromptInjector.attach(
        hooked, ExplicitPrompt(), targets=[re.compile(r"body\.\d+"), "conv_hr", "conv_last"],
        example_input=torch.zeros(1, 3, 16, 16),
    )
    _randomize(injector.modulators, 1)
    inline = InlineSRResNetEP(backbone(), injector)
    detached, bare = backbone(), backbone()
    detached_inj = injector.copy_for(detached)
    detached_inj.detach()

    g = torch.Generator().manual_seed(0)
    x = torch.rand(args.batch, 3, args.size, args.size, generator=g)
    ids = torch.randint(0, 7, (args.batch,), generator=g)

    def run_hooked():
        with injector.prompt(task=ids):
            return hooked(x)

    variants = {
        "hooked": (run_hooked, list(hooked.parameters()) + list(injector.parameters())),
        "inline": (lambda: inline(x, ids), list(inline.parameters())),
        "detached": (lambda: detached(x), list(detached.parameters())),
        "bare": (lambda: bare(x), list(bare.parameters())),
    }
    with torch.no_grad():
        err = (run_hooked() - inline(x, ids)).abs().max().item()
        err_d = (detached(x) - bare(x)).abs().max().item()
    print(f"SRResNet {args.channels} ch, {args.blocks} blocks, batch {args.batch}, {args.size}x{args.size}, "
          f"CPU threads {torch.get_num_threads()}, {len(injector.target_names)} prompt targets")
    print(f"max |hooked - inline| = {err:.2e}; max |detached - bare| = {err_d:.2e}")

    def step(name: str) -> float:
        fn, params = variants[name]
        for p in params:
            p.grad = None
        t0 = time.perf_counter()
        fn().square().mean().backward()
        return time.perf_counter() - t0

    for name in variants:  # warm-up
        step(name)
    times: dict[str, list[float]] = {n: [] for n in variants}
    order = list(variants)
    for r in range(args.repeats):
        for name in order[r % 4:] + order[: r % 4]:  # rotate the order every repeat
            times[name].append(step(name))
    med = {n: statistics.median(t) for n, t in times.items()}
    for n in variants:
        print(f"{n:>9}: median {med[n] * 1e3:8.1f} ms  (runs: {', '.join(f'{t * 1e3:.0f}' for t in times[n])})")
    best = {n: min(t) for n, t in times.items()}  # least disturbed run: robust on a shared machine
    print(f"hooked / inline  = {med['hooked'] / med['inline']:.3f} (medians), {best['hooked'] / best['inline']:.3f} (minima)"
          "  (target <= 1.05)")
    print(f"detached / bare  = {med['detached'] / med['bare']:.3f} (medians), {best['detached'] / best['bare']:.3f} (minima)"
          "  (target 1.00 within noise)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
