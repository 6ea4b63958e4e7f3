"""PromptInjector lifecycle and guarantees on tiny in-file models."""

from __future__ import annotations

import copy
import inspect
import re

import pytest
import torch
from conftest import TupleOut
from torch import nn

from mio_strategies.prompts import AdaptivePrompt, ExplicitPrompt, PromptInjector, PromptScale
from mio_strategies.tasks import NUM_TASKS

pytestmark = pytest.mark.usefixtures("one_thread")


class Block(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x):
        return x + self.conv2(torch.relu(self.conv1(x)))


class TinyNet(nn.Module):
    """A small residual CNN: head, two blocks, tail."""

    def __init__(self, ch: int = 8):
        super().__init__()
        self.head = nn.Conv2d(3, ch, 3, padding=1)
        self.body = nn.Sequential(Block(ch), Block(ch))
        self.tail = nn.Conv2d(ch, 3, 3, padding=1)

    def forward(self, x, *, gain: float = 1.0):
        return x + gain * self.tail(self.body(torch.relu(self.head(x))))


class TokenNet(nn.Module):
    """A token model: patchify to (B, N, C), a Linear block, unpatchify."""

    def __init__(self, ch: int = 6):
        super().__init__()
        self.embed = nn.Conv2d(3, ch, 2, stride=2)
        self.mix = nn.Sequential(nn.LayerNorm(ch), nn.Linear(ch, ch))
        self.out = nn.ConvTranspose2d(ch, 3, 2, stride=2)

    def forward(self, x):
        t = self.embed(x)
        b, c, h, w = t.shape
        tok = t.flatten(2).transpose(1, 2)
        tok = tok + self.mix(tok)
        return self.out(tok.transpose(1, 2).reshape(b, c, h, w))


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.pair = TupleOut()
        self.last = nn.Conv2d(4, 3, 1)

    def forward(self, x):
        y, _ = self.pair(x)
        return self.last(y)


def make(seed: int = 0, cls=TinyNet) -> nn.Module:
    torch.manual_seed(seed)  # module construction only; inputs below use explicit generators
    return cls()


def snapshot(model: nn.Module) -> dict:
    return {k: v.clone() for k, v in model.state_dict().items()}


def hook_counts(model: nn.Module) -> int:
    return sum(len(m._forward_hooks) + len(m._forward_pre_hooks) for m in model.modules())


def randomize(injector: PromptInjector, seed: int = 3) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in injector.modulators.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)


@pytest.fixture
def x(generator):
    return torch.rand(2, 3, 16, 16, generator=generator)


TARGETS = ["head", re.compile(r"body\.\d+\.conv2"), "tail"]


def test_attach_changes_no_output(x):
    net = make()
    ref = net(x)
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    with inj.prompt(task=[1, 5]):
        assert torch.equal(net(x), ref)
    inj.detach()


def test_modulation_changes_output_and_depends_on_task(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    randomize(inj)
    with inj.disabled():
        ref = net(x)
    with inj.prompt(task=0):
        y0 = net(x)
    with inj.prompt(task=4):
        y4 = net(x)
    assert not torch.allclose(y0, ref)
    assert not torch.allclose(y0, y4)
    inj.detach()


def test_modulation_is_out_times_one_plus_scale_plus_shift(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets="tail")
    randomize(inj)
    with inj.prompt(task=2):
        y = net(x)
    with torch.no_grad():
        p = inj.encoders[0](inj.source.maps)[2]
        s, b = inj.modulators["tail"](p)
    inj.detach()
    with torch.no_grad():
        feat = net.tail(net.body(torch.relu(net.head(x))))
        expected = x + feat * (1 + s.view(1, -1, 1, 1)) + b.view(1, -1, 1, 1)
    torch.testing.assert_close(y, expected)


def test_detach_restores_outputs_exactly_and_is_idempotent(x):
    net = make()
    ref = net(x)
    hooks_before = hook_counts(net)
    inj = PromptInjector.attach(net, AdaptivePrompt(3), targets=TARGETS)
    randomize(inj)
    assert not torch.allclose(net(x), ref)
    inj.detach()
    inj.detach()
    assert not inj.attached and inj.model is None
    assert hook_counts(net) == hooks_before
    assert torch.equal(net(x), ref)


def test_context_manager_detaches_on_exit(x):
    net = make()
    ref = net(x)
    with PromptInjector.attach(net, AdaptivePrompt(3), targets=TARGETS) as inj:
        randomize(inj)
        assert inj.attached
        assert not torch.allclose(net(x), ref)
    assert not inj.attached
    assert torch.equal(net(x), ref)


def test_backbone_signature_and_state_dict_keys_unchanged(x):
    net = make()
    keys = list(net.state_dict())
    sig = inspect.signature(net.forward)
    n_params = len(list(net.parameters()))
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    assert list(net.state_dict()) == keys
    assert inspect.signature(net.forward) == sig
    assert len(list(net.parameters())) == n_params
    # vanilla checkpoints still load, and kwargs still reach forward
    net.load_state_dict(make(seed=1).state_dict())
    with inj.prompt(task="noise"):
        assert net(x, gain=0.0).shape == x.shape
    assert not set(inj.state_dict()) & set(keys)
    inj.detach()


def test_injector_has_its_own_parameters_and_state_dict(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    randomize(inj)
    sd = inj.state_dict()
    assert "source.maps" in sd and "modulators.head.scale.weight" in sd and "encoders.0.conv1.weight" in sd
    net2 = make()
    inj2 = PromptInjector.attach(net2, ExplicitPrompt(size=32, generator=torch.Generator().manual_seed(9)), targets=TARGETS)
    inj2.load_state_dict(sd)
    with inj.prompt(task=[3, 6]):
        a = net(x)
    with inj2.prompt(task=[3, 6]):
        b = net2(x)
    assert torch.equal(a, b)
    inj.detach()
    inj2.detach()




def test_channels_come_from_a_dry_run_when_the_module_does_not_declare_them(generator):
    net = make(cls=TokenNet)
    x = torch.rand(2, 3, 8, 8, generator=generator)
    ref = net(x)
    inj = PromptInjector.attach(net, AdaptivePrompt(3), targets="mix", example_input=x)
    assert inj.modulators["mix"].channels == 6
    assert torch.equal(net(x), ref)
    randomize(inj)
    y = net(x)
    assert not torch.allclose(y, ref)
    inj.detach()
    assert torch.equal(net(x), ref)


def test_targets_by_type_suffix_regex_and_exact_name():
    net = make()
    by_type = PromptInjector.attach(net, AdaptivePrompt(3), targets=Block, example_input=torch.rand(1, 3, 8, 8))
    assert by_type.target_names == ["body.0", "body.1"]
    by_type.detach()
    with PromptInjector.attach(net, AdaptivePrompt(3), targets="conv2") as by_suffix:
        assert by_suffix.target_names == ["body.0.conv2", "body.1.conv2"]
    with PromptInjector.attach(net, AdaptivePrompt(3), targets=re.compile(r"body\.1\.conv\d")) as by_regex:
        assert by_regex.target_names == ["body.1.conv1", "body.1.conv2"]
    with PromptInjector.attach(net, AdaptivePrompt(3), targets=["body.0.conv1"]) as exact:
        assert exact.target_names == ["body.0.conv1"]


def test_deepcopy_of_model_and_injector_together_is_consistent(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    randomize(inj)
    net2, inj2 = copy.deepcopy((net, inj))
    assert PromptInjector.of(net2) is inj2 and inj2.model is net2
    with inj.prompt(task=1):
        a = net(x)
    with inj2.prompt(task=1):
        b = net2(x)
    assert torch.equal(a, b)
    with torch.no_grad():  # the copies are independent
        for p in inj2.modulators.parameters():
            p.zero_()
    with inj.prompt(task=1):
        assert torch.equal(net(x), a)
    inj2.detach()
    assert PromptInjector.of(net2) is None and PromptInjector.of(net) is inj
    inj.detach()


def test_deepcopy_of_model_alone_carries_a_private_injector_copy(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    randomize(inj)
    ema = copy.deepcopy(net)
    ema_inj = PromptInjector.of(ema)
    assert ema_inj is not None and ema_inj is not inj and ema_inj.model is ema
    with inj.prompt(task=2):
        a = net(x)
    with ema_inj.prompt(task=2):
        assert torch.equal(ema(x), a)
    ema_inj.detach()
    inj.detach()


def test_copy_for_attaches_a_copy_to_a_fresh_model(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    randomize(inj)
    fresh = make(seed=5)
    fresh.load_state_dict(net.state_dict())
    inj2 = inj.copy_for(fresh)
    with inj.prompt(task=6):
        a = net(x)
    with inj2.prompt(task=6):
        assert torch.equal(fresh(x), a)
    with pytest.raises(ValueError, match="already has a PromptInjector attached"):
        inj.copy_for(fresh)
    inj.detach()
    inj2.detach()


def test_no_grad_and_inference_mode(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    randomize(inj)
    with inj.prompt(task=[0, 1]):
        ref = net(x)
        with torch.no_grad():
            a = net(x)
        with torch.inference_mode():
            b = net(x)
    assert not a.requires_grad and b.is_inference()
    torch.testing.assert_close(a, ref.detach())
    torch.testing.assert_close(b, ref.detach())
    inj.detach()


def test_gradients_reach_prompt_parameters_only_through_injector(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    with inj.prompt(task=[2, 3]):
        net(x).square().mean().backward()
    # zero-initialised: the scale/shift maps get gradients; extractors get none until they move
    assert inj.modulators["tail"].shift.bias.grad.abs().sum() > 0
    assert inj.modulators["head"].scale.weight.grad.abs().sum() > 0
    inj.detach()


# torch.compile traces the model's hooks as separate frames; dynamo probes `.grad` of the prompt
# vectors handed between them and hides the resulting warning with `showwarning`, which pytest's
# warnings-as-errors bypasses. Users never see it.
@pytest.mark.filterwarnings("ignore:The .grad attribute of a Tensor that is not a leaf:UserWarning")
def test_torch_compile_matches_eager_and_follows_the_task(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    randomize(inj)
    compiled = torch.compile(net, backend="eager")
    for task in ([0, 1], [5, 2]):
        with inj.prompt(task=task):
            eager = net(x)
            comp = compiled(x)
        torch.testing.assert_close(comp, eager)
    inj.detach()
    torch._dynamo.reset()


def test_disabled_bypasses_modulation(x):
    net = make()
    ref = net(x)
    inj = PromptInjector.attach(net, AdaptivePrompt(3), targets=TARGETS)
    randomize(inj)
    with inj.disabled():
        assert torch.equal(net(x), ref)
    assert not torch.equal(net(x), ref)
    inj.detach()


def test_mixing_interpolates_prompt_vectors(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    with inj.prompt(task="rain"):
        (pr,) = inj.prompt_vectors(x)
    with inj.prompt(task="lowlight"):
        (pl,) = inj.prompt_vectors(x)
    with inj.prompt(mix={"rain": 0.25, "lowlight": 0.75}):
        (pm,) = inj.prompt_vectors(x)
    torch.testing.assert_close(pm, 0.25 * pr + 0.75 * pl)
    w = torch.zeros(2, NUM_TASKS)
    w[0, 4] = 1.0
    w[1, 6] = 1.0
    randomize(inj)
    with inj.prompt(weights=w):
        y = net(x)
    with inj.prompt(task=["R", "L"]):
        torch.testing.assert_close(net(x), y)
    inj.detach()


def test_classifier_selects_the_task_when_none_is_given(x):
    class Fixed(nn.Module):
        def forward(self, img):
            logits = torch.zeros(img.shape[0], NUM_TASKS)
            logits[:, 3] = 1.0
            return logits

    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32, classifier=Fixed()), targets=TARGETS)
    randomize(inj)
    y = net(x)
    with inj.prompt(task=3):
        torch.testing.assert_close(net(x), y)
    with inj.prompt(task=2):
        assert not torch.allclose(net(x), y)
    inj.detach()


def test_learned_embedding_option(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(learned=True), targets=TARGETS)
    assert "source.maps" not in inj.state_dict()
    assert inj.encoders[0].table.shape == (NUM_TASKS, 64)
    randomize(inj)
    with inj.prompt(task=[0, 1]):
        net(x).mean().backward()
    assert inj.encoders[0].table.grad[:2].abs().sum() > 0 and inj.encoders[0].table.grad[2:].abs().sum() == 0
    inj.detach()


def test_unet_scales_one_extractor_per_scale_decoder_only_by_default():
    class TinyUNet(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc1 = nn.Conv2d(3, 4, 3, padding=1)
            self.down = nn.Conv2d(4, 8, 2, stride=2)
            self.mid = nn.Conv2d(8, 8, 3, padding=1)
            self.up = nn.ConvTranspose2d(8, 4, 2, stride=2)
            self.dec1 = nn.Conv2d(8, 4, 3, padding=1)
            self.out = nn.Conv2d(4, 3, 1)

        def forward(self, x):
            e = self.enc1(x)
            m = self.mid(self.down(e))
            d = self.dec1(torch.cat([self.up(m), e], 1))
            return self.out(d) + x

    scales = [
        PromptScale("enc1", part="encoder", reduction=1),
        PromptScale("mid", part="latent", reduction=2),
        PromptScale(["up", "dec1"], part="decoder", reduction=1),
        PromptScale("out", part="output", reduction=1),
    ]
    net = TinyUNet()
    inj = PromptInjector.attach(net, AdaptivePrompt(3), scales=scales)
    assert len(inj.encoders) == 3
    assert inj.target_names == ["mid", "up", "dec1", "out"]
    inj.detach()
    both = PromptInjector.attach(net, AdaptivePrompt(3), scales=scales, parts=("encoder", "decoder"))
    assert both.target_names == ["enc1", "up", "dec1"] and len(both.encoders) == 2
    both.detach()


def test_parameter_report_counts_backbone_and_prompt_parameters():
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    rep = inj.parameter_report()
    assert rep.backbone == sum(p.numel() for p in net.parameters())
    assert rep.modulators == sum(p.numel() for p in inj.modulators.parameters())
    assert rep.extractors == sum(p.numel() for p in inj.encoders.parameters())
    assert rep.prompt == rep.extractors + rep.modulators
    assert rep.modulators == 2 * (64 * 8 + 8) * 3 + 2 * (64 * 3 + 3)
    assert "backbone" in str(rep)
    inj.detach()


def test_set_prompt_persists_until_cleared(x):
    net = make()
    inj = PromptInjector.attach(net, ExplicitPrompt(size=32), targets=TARGETS)
    randomize(inj)
    inj.set_prompt(task=5)
    a = net(x)
    with inj.prompt(task=5):
        assert torch.equal(net(x), a)
    assert torch.equal(net(x), a)
    inj.clear_prompt()
    with pytest.raises(ValueError, match="ExplicitPrompt needs the task of each sample"):
        net(x)
    inj.detach()


def test_attach_is_seeded_and_leaves_the_global_rng_alone(x):
    net_a, net_b = make(), make()
    state = torch.get_rng_state()
    a = PromptInjector.attach(net_a, ExplicitPrompt(size=32, generator=torch.Generator().manual_seed(4)), targets=TARGETS,
                              generator=torch.Generator().manual_seed(5))
    b = PromptInjector.attach(net_b, ExplicitPrompt(size=32, generator=torch.Generator().manual_seed(4)), targets=TARGETS,
                              generator=torch.Generator().manual_seed(5))
    assert torch.equal(torch.get_rng_state(), state)
    sa, sb = a.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa if isinstance(sa[k], torch.Tensor))
    assert a.source.seed == 4
    a.detach()
    b.detach()
