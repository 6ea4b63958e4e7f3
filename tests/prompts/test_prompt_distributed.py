"""The injector under DistributedDataParallel (one gloo process, in-process)."""

from __future__ import annotations

import pytest
import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from mio_strategies.prompts import ExplicitPrompt, PromptInjector


@pytest.mark.distributed
def test_ddp_trains_backbone_and_prompt_parameters_like_a_plain_run(tmp_path, generator):
    def build():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU(), nn.Conv2d(6, 3, 3, padding=1))
        inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["0", "2"])
        with torch.no_grad():
            inj.modulators["0"].shift.bias.fill_(0.1)
        return net, inj

    x = torch.rand(2, 3, 8, 8, generator=generator)
    plain_net, plain_inj = build()
    with plain_inj.prompt(task=[1, 2]):
        plain_inj.wrap()(x).square().mean().backward()

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        net, inj = build()
        ddp = DistributedDataParallel(inj.wrap())
        with inj.prompt(task=[1, 2]):
            out = ddp(x)
        out.square().mean().backward()
    finally:
        dist.destroy_process_group()
    for a, b in zip(plain_inj.parameters(), inj.parameters()):
        torch.testing.assert_close(a.grad, b.grad)
    for a, b in zip(plain_net.parameters(), net.parameters()):
        torch.testing.assert_close(a.grad, b.grad)
    assert inj.modulators["2"].scale.weight.grad.abs().sum() > 0
    assert list(net.state_dict()) == ["0.weight", "0.bias", "2.weight", "2.bias"]
