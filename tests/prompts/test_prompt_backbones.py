"""The injector on backbones this project did not write: basicsr's MSRResNet and SwinIR, spandrel's Restormer."""

from __future__ import annotations

import re

import pytest
import torch

from mio_strategies.harness import prompt_scales
from mio_strategies.prompts import AdaptivePrompt, ExplicitPrompt, PromptInjector
from mio_strategies.utils.basicsr_compat import import_basicsr

pytestmark = pytest.mark.usefixtures("one_thread")


def _randomize(inj: PromptInjector) -> None:
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for p in inj.modulators.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)


def _check_lifecycle(model, inj, x, ref, prompt_ctx):
    with prompt_ctx():
        assert torch.equal(model(x), ref)  # zero-initialised: identity
    _randomize(inj)
    with prompt_ctx():
        y = model(x)
        assert y.shape == ref.shape and not torch.allclose(y, ref)
        y.abs().mean().backward()
    assert all(p.grad is not None for p in inj.modulators.parameters())
    inj.detach()
    assert torch.equal(model(x), ref)


@pytest.mark.basicsr
def test_msrresnet_reference_placement(generator):
    """SRResNet: after every residual block, after conv_hr, and on the 3-channel output (the reference's)."""
    arch = import_basicsr("archs.srresnet_arch")
    torch.manual_seed(0)
    net = arch.MSRResNet(num_feat=8, num_block=3, upscale=2)
    keys = list(net.state_dict())
    x = torch.rand(2, 3, 12, 12, generator=generator)
    ref = net(x)
    inj = PromptInjector.attach(
        net, ExplicitPrompt(size=32), targets=[re.compile(r"body\.\d+"), "conv_hr", "conv_last"], example_input=x
    )
    assert inj.target_names == ["body.0", "body.1", "body.2", "conv_hr", "conv_last"]
    assert [inj.modulators[k].channels for k in inj.modulators] == [8, 8, 8, 8, 3]
    assert list(net.state_dict()) == keys
    _check_lifecycle(net, inj, x, ref, lambda: inj.prompt(task=[0, 4]))


@pytest.mark.basicsr
@pytest.mark.filterwarnings("ignore:torch.meshgrid:UserWarning")  # raised inside basicsr's SwinIR.__init__
def test_swinir_token_features_inside_residual_groups(generator):
    """SwinIR: inside each residual Swin group, after its body; features are tokens (B, N, C)."""
    arch = import_basicsr("archs.swinir_arch")
    torch.manual_seed(0)
    net = arch.SwinIR(upscale=1, img_size=16, window_size=4, embed_dim=12, depths=[1, 1], num_heads=[2, 2],
                      mlp_ratio=1.0, upsampler="", in_chans=3)
    x = torch.rand(1, 3, 16, 16, generator=generator)
    ref = net(x)
    inj = PromptInjector.attach(net, AdaptivePrompt(3), targets="residual_group", example_input=x)
    assert inj.target_names == ["layers.0.residual_group", "layers.1.residual_group"]
    assert all(inj.modulators[k].channels == 12 for k in inj.modulators)
    _check_lifecycle(net, inj, x, ref, lambda: torch.enable_grad())




def test_restormer_unet_decoder_side_scales(generator):
    from spandrel_extra_arches.architectures.Restormer.__arch.restormer_arch import Restormer

    torch.manual_seed(0)
    dim = 4
    net = Restormer(dim=dim, num_blocks=[1, 1, 1, 1], num_refinement_blocks=1, heads=[1, 1, 1, 1],
                    ffn_expansion_factor=1.0)
    x = torch.rand(1, 3, 16, 16, generator=generator)
    ref = net(x)
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), scales=prompt_scales("restormer", {"dim": dim}), example_input=x)
    assert len(inj.encoders) == 5  # latent, three decoder scales, output: one extractor each
    assert inj.target_names == ["latent", "decoder_level3", "decoder_level2", "decoder_level1", "refinement", "output"]
    assert [s["name"] for s in inj.config()["scales"]] == ["latent", "decoder3", "decoder2", "decoder1", "output"]
    rep = inj.parameter_report()
    assert rep.scales == 5 and rep.targets == 6
    _check_lifecycle(net, inj, x, ref, lambda: inj.prompt(task="rain"))
