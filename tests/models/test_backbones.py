"""Backbone registry: every registered backbone builds, keeps the image size, and has injection targets."""

from __future__ import annotations

import pytest
import torch

from mio_strategies.harness import (
    UnknownBackboneError,
    backbone_spec,
    create_backbone,
    injection_plan,
    list_backbones,
)

pytestmark = pytest.mark.basicsr

TINY = list_backbones("*_tiny")


def test_wildcard_listing_finds_each_family():
    assert list_backbones("srresnet*") == ["srresnet", "srresnet_tiny"]
    assert set(list_backbones()) >= {"srresnet", "swinir", "restormer", "promptir"}
    assert list_backbones("nothing*") == []


@pytest.mark.parametrize("name", TINY)
def test_tiny_backbone_restores_at_input_size(name):
    net = create_backbone(name)
    m = backbone_spec(name).size_multiple
    x = torch.rand(2, 3, 2 * max(m, 8), 3 * max(m, 8), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name", TINY)
def test_same_seed_same_weights_and_global_rng_untouched(name):
    state = torch.get_rng_state()
    a = create_backbone(name, seed=3).state_dict()
    b = create_backbone(name, seed=3).state_dict()
    c = create_backbone(name, seed=4).state_dict()
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], c[k]) for k in a if a[k].is_floating_point())


@pytest.mark.parametrize("name", list_backbones())
def test_injection_plan_names_existing_modules(name):
    spec = backbone_spec(name)
    net = create_backbone(name) if name in TINY else None
    plan = injection_plan(name)
    names = [m for s in plan["scales"] for m in s["modules"]] if "scales" in plan else plan["targets"]
    assert names
    if net is not None:
        modules = dict(net.named_modules())
        assert all(n in modules for n in names), [n for n in names if n not in modules]
    assert spec.description


def test_paper_srresnet_is_64_channels_16_blocks_with_reference_targets():
    net = create_backbone("srresnet")
    assert len(net.body) == 16 and net.conv_first.out_channels == 64
    assert sum(p.numel() for p in net.parameters()) == pytest.approx(1.2e6, rel=0.05)  # paper: 1.2M
    targets = injection_plan("srresnet")["targets"]
    assert targets[:16] == [f"body.{i}" for i in range(16)] and targets[16:] == ["act_hr", "conv_last"]


def test_srresnet_prompt_after_conv_hr_follows_its_activation_as_the_reference():
    """SRResNet_EP: feat = lrelu(conv_hr(feat)); feat = feat * scale + shift + feat; then conv_last."""
    from mio_strategies.harness import build_restorer

    r = build_restorer("srresnet_tiny", "explicit", backbone_kwargs={"num_feat": 8, "num_block": 1}, prompt_size=16)
    mod = r.injector.modulators["act_hr"]
    with torch.no_grad():
        for p in r.injector.modulators.parameters():
            p.zero_()
        mod.shift.bias.fill_(-1.0)  # a shift the activation would change if it came first
        mod.scale.bias.fill_(0.5)
    x = torch.rand(1, 3, 8, 8)
    net = r.backbone
    seen = {}
    h = net.conv_hr.register_forward_hook(lambda m, i, o: seen.update(hr=o.clone()))  # returns None: output kept
    try:
        out = r(x, torch.tensor([3]))
    finally:
        h.remove()
    # the rest of the net after conv_hr, by hand: activation, then the modulation, then conv_last (+ its modulation
    # is the identity at init) and the global residual
    feat = torch.nn.functional.leaky_relu(seen["hr"], 0.1) * 1.5 - 1.0
    last = torch.nn.functional.conv2d(feat, net.conv_last.weight, net.conv_last.bias, padding=1)
    torch.testing.assert_close(out, last + x)


def test_srresnet_is_global_residual_at_init_scale():
    net = create_backbone("srresnet_tiny")
    for p in net.conv_last.parameters():
        torch.nn.init.zeros_(p)
    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(net(x), x)


def test_unet_scales_are_decoder_side_with_channels():
    scales = injection_plan("restormer")["scales"]
    injected = [s for s in scales if s["part"] in ("latent", "decoder", "output")]
    assert [s["name"] for s in injected] == ["latent", "decoder3", "decoder2", "decoder1", "output"]
    assert [s["num_chs"] for s in injected] == [384, 192, 96, 96, 3]


def test_unknown_backbone_lists_valid_ones():
    with pytest.raises(UnknownBackboneError, match=r"unknown backbone 'srresnt'.*did you mean 'srresnet'.*swinir"):
        create_backbone("srresnt")


def test_unknown_backbone_option_suggests_closest():
    with pytest.raises(KeyError, match=r"no option 'num_feats'.*did you mean 'num_feat'"):
        create_backbone("srresnet_tiny", num_feats=8)


def test_resunet_starts_as_the_identity_and_injects_on_its_decoder():
    net = create_backbone("unet_tiny", num_feat=4, num_block=1)
    x = torch.rand(1, 3, 24, 16, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        assert torch.equal(net(x), x)
    scales = injection_plan("unet_tiny", {"num_feat": 4})["scales"]
    injected = [(s["name"], s["num_chs"], s["reduction"]) for s in scales if s["part"] != "encoder"]
    assert injected == [("latent", 16, 8), ("decoder3", 16, 4), ("decoder2", 8, 2), ("decoder1", 4, 1), ("output", 3, 1)]
    with pytest.raises(ValueError, match=r"levels must be an integer in 1..3 \(inputs are padded to a multiple of 8\), got 4"):
        create_backbone("unet_tiny", levels=4)


def test_resunet_channel_attention_uses_rcan_blocks_that_see_the_whole_image():
    plain = create_backbone("unet_tiny", num_feat=4, num_block=1)
    net = create_backbone("unet_tiny", num_feat=4, num_block=1, channel_attention=True)
    assert type(net.dec[0][0]).__name__ == "RCAB" and type(plain.dec[0][0]).__name__ == "ResidualBlockNoBN"
    x = torch.rand(1, 3, 16, 16, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        assert torch.equal(net(x), x)  # still starts as the identity
        block = net.dec[0][0]
        torch.nn.init.constant_(block.rcab[3].attention[1].bias, 1.0)  # keep the squeezed ReLU unit alive
        feat = torch.rand(1, 4, 16, 16, generator=torch.Generator().manual_seed(3))
        far = feat.clone()
        far[..., 12:, 12:] += 1.0  # a change far outside a 3x3 conv pair's receptive field of pixel (0, 0)
        assert not torch.allclose(block(feat)[..., 0, 0], block(far)[..., 0, 0])
        plain_block = plain.dec[0][0]
        assert torch.allclose(plain_block(feat)[..., 0, 0], plain_block(far)[..., 0, 0])
    with pytest.raises(TypeError, match=r"channel_attention must be True or False, got 'yes'"):
        create_backbone("unet_tiny", channel_attention="yes")
