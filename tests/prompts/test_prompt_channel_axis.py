"""channel_axis=: targets whose outputs keep their channels where the module type does not say."""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

from mio_strategies.prompts import ExplicitPrompt, PromptInjector, PromptScale


class ChannelsLastBlock(nn.Module):
    """A block on (B, H, W, C) features (as in MambaIR's or ConvNeXt-style blocks): type unknown to the injector."""

    def __init__(self, c: int):
        super().__init__()
        self.mix = nn.Linear(c, c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(x)


class ChannelsFirstTokens(nn.Module):
    """A block on (B, C, L) sequences, also of unknown type (3-D outputs default to channels last)."""

    def __init__(self, c: int):
        super().__init__()
        self.mix = nn.Conv1d(c, c, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.mix(x)


class Net(nn.Module):
    def __init__(self, c: int = 6):
        super().__init__()
        self.inp = nn.Conv2d(3, c, 1)
        self.blk = ChannelsLastBlock(c)
        self.out = nn.Conv2d(c, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.blk(self.inp(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2))


def _x(generator: torch.Generator) -> torch.Tensor:
    return torch.rand(2, 3, 5, 7, generator=generator)  # H=5, W=7, C=6: every axis has another size


def _hooks(net: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in net.modules())


def test_channels_last_output_is_modulated_on_its_last_axis(generator):
    net, x = Net(), _x(generator)
    feats = net.blk(net.inp(x).permute(0, 2, 3, 1))
    for kw in ({"example_input": x}, {"channels": 6}, {"channels": 6, "example_input": x}):
        with PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", channel_axis=-1, **kw) as inj:
            assert inj.modulators["blk"].channels == 6
            with torch.no_grad():
                inj.modulators["blk"].shift.bias.copy_(torch.arange(1.0, 7.0))
            recorded = {}  # the block's output after modulation (hooks run in order: the injector's first)
            h = net.blk.register_forward_hook(lambda _m, _a, out: recorded.setdefault("out", out))  # noqa: B023 - used in this iteration
            with inj.prompt(task=0), torch.no_grad():
                net(x)
            h.remove()
            added = recorded["out"] - feats
            assert torch.allclose(added, torch.arange(1.0, 7.0).expand(2, 5, 7, 6), atol=1e-5)


def test_without_channel_axis_the_dry_run_mismatch_names_the_fix(generator):
    net, x = Net(), _x(generator)
    with pytest.raises(ValueError, match=r"channels 6 given .* has 5 channels in the dry run \(shape \(2, 5, 7, 6\), "
                                         r"channel axis 1\); fix channels= \(axis -1 has 6: .*pass channel_axis=-1"):
        PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", channels=6, example_input=x)
    assert _hooks(net) == 0  # nothing half-applied


def test_without_channel_axis_the_first_call_names_the_fix(generator):
    net, x = Net(), _x(generator)
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", channels=6)
    with pytest.raises(ValueError, match=r"returned 5 channels \(axis 1 of \(2, 5, 7, 6\)\), but its modulator was "
                                         r"built for 6; \(axis -1 has 6: .*pass channel_axis=-1"):
        with inj.prompt(task=0):
            net(x)
    inj.detach()


def test_channels_first_tokens_of_an_unknown_module(generator):
    class Seq(nn.Module):
        def __init__(self):
            super().__init__()
            self.tok = ChannelsFirstTokens(4)

        def forward(self, x):
            return self.tok(x)

    net, x = Seq(), torch.rand(2, 4, 9, generator=generator)  # (B, C, L): C=4, L=9
    with pytest.raises(ValueError, match=r"axis 1 has 4: for a channels-first output \(B, C, \.\.\.\), pass channel_axis=1"):
        PromptInjector.attach(net, ExplicitPrompt(size=16), targets="tok", channels=4, example_input=x)
    ref = net(x)
    with PromptInjector.attach(net, ExplicitPrompt(size=16), targets="tok", channel_axis=1, example_input=x) as inj:
        assert inj.modulators["tok"].channels == 4
        with torch.no_grad():
            inj.modulators["tok"].shift.bias.copy_(torch.arange(1.0, 5.0))
        with inj.prompt(task=0):
            y = net(x)
    assert torch.allclose(y - ref, torch.arange(1.0, 5.0).view(1, 4, 1).expand(2, 4, 9), atol=1e-5)


@pytest.mark.parametrize("bad", [0, 2, -2, "last", 1.0, True, None])
def test_bad_channel_axis_values_are_refused(bad, generator):
    net, x = Net(), _x(generator)
    if bad is None:  # a mapping entry of None
        spec = {"blk": None}
    else:
        spec = bad
    with pytest.raises(ValueError, match=r"targets: channel_axis of 'blk' must be 1 \(channels first, .*\) or -1 "
                                         r"\(channels last, .*\), got " + repr(bad if bad is not None else None).replace(".", r"\.")):
        PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", example_input=x, channel_axis=spec)
    assert _hooks(net) == 0


def test_channel_axis_for_a_module_that_is_not_a_target(generator):
    net, x = Net(), _x(generator)
    with pytest.raises(ValueError, match=r"channel_axis given for \['out'\], which are not targets \(targets: \['blk'\]\)"):
        PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", example_input=x, channel_axis={"out": -1})


def test_channel_axis_contradicting_the_module_type_is_refused(generator):
    net = Net()
    with pytest.raises(ValueError, match=r"target 'inp' \(Conv2d\): channel_axis=-1 given, but a Conv2d's output has "
                                         r"its channels first, axis 1; leave channel_axis out for this module"):
        PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["inp", "blk"], channel_axis=-1, channels=6)
    assert _hooks(net) == 0
    # a mapping names only the module that needs it; the others follow their types
    with PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["inp", "blk"], channels=6,
                               channel_axis={"blk": -1, "inp": 1}) as inj:
        assert inj._plan[0].axes == {"inp": 1, "blk": -1}


def test_with_scales_the_axis_goes_inside_prompt_scale(generator):
    net, x = Net(), _x(generator)
    with pytest.raises(ValueError, match=r"with scales=, give channel_axis inside each PromptScale\(channel_axis=\.\.\.\)"):
        PromptInjector.attach(net, ExplicitPrompt(size=16), scales=[PromptScale("blk")], channel_axis=-1, example_input=x)
    scales = [PromptScale("blk", part="decoder", channel_axis=-1), PromptScale("out", part="output")]
    with PromptInjector.attach(net, ExplicitPrompt(size=16), scales=scales, example_input=x) as inj:
        assert [sp.axes for sp in inj._plan] == [{"blk": -1}, {"out": 1}]
        assert inj.modulators["blk"].channels == 6
        assert inj.config()["scales"][0]["channel_axis"] == {"blk": -1}
        assert "channel_axis" not in inj.config()["scales"][1]  # only where given: older configs still match


def test_the_axis_is_saved_and_kept_by_copies(generator):
    net, x = Net(), _x(generator)
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", example_input=x, channel_axis=-1)
    with torch.no_grad():
        inj.modulators["blk"].shift.bias.copy_(torch.arange(1.0, 7.0))
    assert inj.state_dict()["_extra_state"]["config"]["scales"][0]["channel_axis"] == {"blk": -1}
    with inj.prompt(task=1), torch.no_grad():
        ref = net(x)

    fresh = Net()
    fresh.load_state_dict(net.state_dict())
    ema = inj.copy_for(fresh)  # the documented EMA path: the given axis survives
    assert ema._plan[0].axes == {"blk": -1}
    with ema.prompt(task=1), torch.no_grad():
        assert torch.equal(fresh(x), ref)

    net2 = copy.deepcopy(net)  # carries a private injector copy
    with PromptInjector.of(net2).prompt(task=1), torch.no_grad():
        assert torch.equal(net2(x), ref)

    # a state dict saved with channel_axis does not load into an injector attached without it
    other = Net()
    plain = PromptInjector.attach(other, ExplicitPrompt(size=16), targets="blk", channels=6)
    with pytest.raises(ValueError, match=r"injector state dict is from another configuration: saved configuration"):
        plain.load_state_dict(inj.state_dict())
    loaded = PromptInjector.attach(Net(), ExplicitPrompt(size=16), targets="blk", channels=6, channel_axis=-1)
    loaded.load_state_dict(inj.state_dict())


def test_a_channels_last_dry_run_warns_and_a_later_size_names_the_option(generator):
    # without channels= the dry run cannot tell (B, H, W, C) from (B, C, H, W): it warns, and a call at another
    # size says where the channels were read
    net, x = Net(), _x(generator)
    with pytest.warns(UserWarning, match=r"prompt target 'blk' \(ChannelsLastBlock\) returned \(2, 5, 7, 6\) for a "
                                         r"5x7 input: its axes 1-2 look spatial.*pass channel_axis=-1; channel_axis=1 confirms"):
        inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", example_input=x)
    assert inj.modulators["blk"].channels == 5  # H, as the warning says
    with pytest.raises(ValueError, match=r"returned 9 channels \(axis 1 of \(2, 9, 11, 6\)\), but its modulator was built "
                                         r"for 5; \(channels are read on axis 1 of this module's output; if it holds them "
                                         r"on another axis, e.g. channels-last \(B, H, W, C\), attach with channel_axis=\)"):
        with inj.prompt(task=0):
            net(torch.rand(2, 3, 9, 11, generator=generator))
    inj.detach()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", example_input=x, channel_axis=1).detach()
        PromptInjector.attach(net, ExplicitPrompt(size=16), targets="blk", example_input=x, channel_axis=-1).detach()

        class ChannelsFirst(nn.Module):  # a custom (B, C, H, W) block: nothing to warn about
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 6, 3, padding=1)

            def forward(self, x):
                return self.conv(x) * 2

        plain = nn.Sequential(ChannelsFirst())
        PromptInjector.attach(plain, ExplicitPrompt(size=16), targets="0", example_input=x).detach()

        class Upsampler(nn.Module):  # channels first, 2x upscaled, channels == the input's height
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 20, 1)

            def forward(self, x):
                return nn.functional.interpolate(self.conv(x), scale_factor=2.0)

        up = nn.Sequential(Upsampler())  # (1, 20, 40, 80) for a 20x40 input: axes 2-3 are the upscaled size
        PromptInjector.attach(up, ExplicitPrompt(size=16), targets="0", example_input=torch.rand(1, 3, 20, 40)).detach()
