"""Bad input: every error names the problem and the fix, and leaves the model exactly as before."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import TupleOut
from torch import nn

from mio_strategies.prompts import AdaptivePrompt, ExplicitPrompt, PromptInjector, PromptScale

pytestmark = pytest.mark.usefixtures("one_thread")


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 4, 3, padding=1)
        self.pair = TupleOut()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flat = nn.Flatten(0)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        a = self.head(x)
        b, _ = self.pair(x)
        _ = self.flat(self.pool(a))
        return x + self.tail(torch.cat([a, b], 1))


def make() -> Net:
    torch.manual_seed(0)
    return Net()


def state(model: nn.Module) -> tuple:
    hooks = tuple(
        (n, tuple(m._forward_hooks), tuple(m._forward_pre_hooks)) for n, m in model.named_modules()
    )
    return {k: v.clone() for k, v in model.state_dict().items()}, hooks, [m.training for m in model.modules()]


def assert_unchanged(model: nn.Module, before: tuple, x: torch.Tensor, ref: torch.Tensor) -> None:
    after = state(model)
    assert after[1] == before[1] and after[2] == before[2]
    assert before[0].keys() == after[0].keys()
    assert all(torch.equal(before[0][k], after[0][k]) for k in before[0])
    assert torch.equal(model(x), ref)


@pytest.fixture
def setup(generator):
    net = make()
    x = torch.rand(2, 3, 12, 12, generator=generator)
    return net, x, net(x), state(net)


@pytest.mark.parametrize(
    ("targets", "message"),
    [
        ("haed", r"'haed' matched no module of Net; closest module names: 'head'"),
        (re.compile(r"tail\d"), r"regex 'tail\\\\d' matched no module.*closest module names: 'tail'"),
        (nn.LSTM, r"type LSTM matched no module"),
        (["head", "tial"], r"'tial' matched no module.*'tail'"),
        (r"pai.*", r"for a regex"),
    ],
)
def test_targets_matching_nothing_list_closest_names(setup, targets, message):
    net, x, ref, before = setup
    with pytest.raises(ValueError, match=message):
        PromptInjector.attach(net, AdaptivePrompt(3), targets=targets, example_input=x)
    assert_unchanged(net, before, x, ref)


def test_target_output_not_a_tensor(setup):
    net, x, ref, before = setup
    with pytest.raises(TypeError, match=r"target 'pair' \(TupleOut\) returns tuple, not a tensor"):
        PromptInjector.attach(net, AdaptivePrompt(3), targets="pair", example_input=x)
    assert_unchanged(net, before, x, ref)


def test_target_output_without_channel_axis(setup):
    net, x, ref, before = setup
    with pytest.raises(ValueError, match=r"target 'flat' \(Flatten\) returns shape \(8,\), which has no channel axis"):
        PromptInjector.attach(net, AdaptivePrompt(3), targets="flat", example_input=x)
    assert_unchanged(net, before, x, ref)


def test_channels_disagreeing_with_the_dry_run(setup):
    net, x, ref, before = setup
    with pytest.raises(ValueError, match=r"target 'head' \(Conv2d\): channels 5 given.*has 4 channels in the dry run"):
        PromptInjector.attach(net, AdaptivePrompt(3), targets="head", channels=5, example_input=x)
    assert_unchanged(net, before, x, ref)


def test_channels_that_cannot_be_determined(setup):
    net, x, ref, before = setup
    with pytest.raises(ValueError, match=r"cannot tell the output channels of \['pair'\]: pass example_input="):
        PromptInjector.attach(net, AdaptivePrompt(3), targets=["head", "pair"])
    assert_unchanged(net, before, x, ref)


def test_wrong_channels_at_runtime_is_a_clear_error(setup):
    net, x, ref, before = setup
    # the pool declares no channels, so a wrong channels= only shows at the call
    inj = PromptInjector.attach(net, AdaptivePrompt(3), targets="pool", channels={"pool": 6})
    with pytest.raises(ValueError, match=r"target 'pool' returned 4 channels \(axis 1 of \(2, 4, 1, 1\)\), but its modulator was built for 6"):
        net(x)
    inj.detach()
    assert_unchanged(net, before, x, ref)


def test_channels_contradicting_the_module_are_refused_at_attach(setup):
    net, x, ref, before = setup
    with pytest.raises(ValueError, match=r"target 'head' \(Conv2d\): channels 6 given, but the module declares 4 output channels; fix channels="):
        PromptInjector.attach(net, AdaptivePrompt(3), targets="head", channels={"head": 6})
    assert_unchanged(net, before, x, ref)


def test_attaching_twice_is_an_error(setup):
    net, x, ref, before = setup
    inj = PromptInjector.attach(net, AdaptivePrompt(3), targets="head")
    during = state(net)
    with pytest.raises(ValueError, match=r"Net already has a PromptInjector attached.*detach\(\) on it first"):
        PromptInjector.attach(net, AdaptivePrompt(3), targets="tail")
    with pytest.raises(ValueError, match=r"already has a PromptInjector attached"):
        PromptInjector.attach(net.head, AdaptivePrompt(3), targets="x", channels=4)  # a hooked submodule
    assert state(net)[1] == during[1]
    inj.detach()
    assert_unchanged(net, before, x, ref)


@pytest.mark.parametrize(
    ("task", "error", "message"),
    [
        (7, ValueError, r"task id 7 is out of range: valid ids are 0\.\.6"),
        ([0, -1], ValueError, r"task id -1 is out of range: valid ids are 0\.\.6"),
        (torch.tensor([2, 9]), ValueError, r"task id 9 is out of range: valid ids are 0\.\.6"),
        (torch.tensor([0.0, 1.0]), TypeError, r"task ids must be an integer tensor.*use weights="),
        ("snow", KeyError, r"unknown task 'snow'"),
    ],
)
def test_task_ids_out_of_range(setup, task, error, message):
    net, x, ref, before = setup
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets="head")
    with pytest.raises(error, match=message):
        with inj.prompt(task=task):
            net(x)
    inj.detach()
    assert_unchanged(net, before, x, ref)


def test_task_ids_for_a_smaller_explicit_prompt(setup):
    net, x, ref, before = setup
    with PromptInjector.attach(net, ExplicitPrompt(3, size=16), targets="head") as inj:
        with pytest.raises(ValueError, match=r"task 'lowlight' has id 6, out of range for ExplicitPrompt\(num_tasks=3\)"):
            inj.prompt(task="L").__enter__()
    assert_unchanged(net, before, x, ref)


def test_missing_task_without_classifier(setup):
    net, x, ref, before = setup
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets="head")
    with pytest.raises(ValueError, match=r"ExplicitPrompt needs the task of each sample.*injector\.prompt\(task=task_ids\)"):
        net(x)
    inj.detach()
    assert_unchanged(net, before, x, ref)


def test_task_ids_not_matching_the_batch(setup):
    net, x, ref, before = setup
    with PromptInjector.attach(net, ExplicitPrompt(size=16), targets="head") as inj:
        with pytest.raises(ValueError, match=r"got 3 task ids for a batch of 2 samples"):
            with inj.prompt(task=[0, 1, 2]):
                net(x)
        with pytest.raises(ValueError, match=r"weights must have shape \(7,\) or \(B, 7\)"):
            inj.prompt(weights=[0.5, 0.5]).__enter__()
        with pytest.raises(ValueError, match=r"give exactly one of task=, weights= or mix="):
            inj.prompt(task=1, mix={"rain": 1.0}).__enter__()
    assert_unchanged(net, before, x, ref)


def test_prompt_image_with_wrong_channel_count(setup, generator):
    net, x, ref, before = setup
    with pytest.raises(ValueError, match=r"AdaptivePrompt\(in_channels=1\) expects the model input as \(B, 1, H, W\), got shape \(2, 3, 12, 12\)"):
        PromptInjector.attach(net, AdaptivePrompt(1), targets="head", example_input=x)
    assert_unchanged(net, before, x, ref)
    inj = PromptInjector.attach(net, AdaptivePrompt(1), targets="head")
    with pytest.raises(ValueError, match=r"AdaptivePrompt\(in_channels=1\) expects"):
        net(x)
    inj.detach()
    assert_unchanged(net, before, x, ref)


def test_adaptive_prompt_refuses_task_requests(setup):
    net, x, ref, before = setup
    with PromptInjector.attach(net, AdaptivePrompt(3), targets="head") as inj:
        with pytest.raises(ValueError, match=r"AdaptivePrompt takes its prompt from the model's input image"):
            inj.prompt(task=0).__enter__()
    assert_unchanged(net, before, x, ref)


def test_loading_a_state_dict_from_another_configuration(setup):
    net, x, ref, before = setup
    a = PromptInjector.attach(net, ExplicitPrompt(size=16), targets="head")
    sd = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in a.state_dict().items()}
    a.detach()
    b = PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["head", "tail"])
    b_before = {k: v.clone() for k, v in b.state_dict().items() if isinstance(v, torch.Tensor)}
    with pytest.raises(ValueError, match=r"injector state dict is from another configuration:.*missing keys \['modulators.tail"):
        b.load_state_dict(sd)
    assert all(torch.equal(b.state_dict()[k], v) for k, v in b_before.items())
    b.detach()
    c = PromptInjector.attach(net, ExplicitPrompt(size=16), targets="head", embed_dim=32)
    with pytest.raises(ValueError, match=r"another configuration:.*shape"):
        c.load_state_dict(sd)
    c.detach()
    d = PromptInjector.attach(net, AdaptivePrompt(3), targets="head")
    with pytest.raises(ValueError, match=r"another configuration:.*'kind': 'explicit'"):
        d.load_state_dict(sd)
    d.detach()
    assert_unchanged(net, before, x, ref)


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({}, ValueError, r"give either targets= \(one scale\) or scales="),
        ({"targets": "head", "scales": [PromptScale("tail")]}, ValueError, r"not both or neither"),
        ({"targets": 3}, TypeError, r"targets must be a module name"),
        ({"targets": ""}, ValueError, r"the empty name would target the whole model"),
        ({"targets": "head", "embed_dim": 0}, ValueError, r"embed_dim must be a positive integer, got 0"),
        ({"scales": [PromptScale("head", part="encoder")]}, ValueError, r"no scale has a part in"),
        ({"scales": [PromptScale("head"), PromptScale("head")]}, ValueError, r"module 'head' is targeted twice"),
        ({"scales": [PromptScale("head")], "parts": ("middle",)}, ValueError, r"parts must be a non-empty subset of"),
    ],
)
def test_bad_attach_arguments(setup, kwargs, error, message):
    net, x, ref, before = setup
    with pytest.raises(error, match=message):
        PromptInjector.attach(net, AdaptivePrompt(3), **kwargs)
    assert_unchanged(net, before, x, ref)


def test_bad_scale_descriptor():
    with pytest.raises(ValueError, match=r"part must be one of \('encoder', 'latent', 'decoder', 'output'\), got 'middle'"):
        PromptScale("x", part="middle")


def test_dry_run_restores_training_mode_of_every_module(setup):
    net, x, _ref, _before = setup
    net.train()
    net.head.eval()
    modes = [m.training for m in net.modules()]
    with PromptInjector.attach(net, AdaptivePrompt(3), targets="head", example_input=x):
        assert [m.training for m in net.modules()] == modes
