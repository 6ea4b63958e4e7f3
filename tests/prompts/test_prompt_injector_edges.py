"""Edge cases of the prompt injector: copies, checkpointing, axes, dtypes, inputs."""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from mio_strategies.prompts import (
    AdaptivePrompt,
    ExplicitPrompt,
    PromptExtractor,
    PromptInjector,
    TaskClassifier,
)

pytestmark = pytest.mark.usefixtures("one_thread")


def hooks(model: nn.Module) -> list:
    return [(n, len(m._forward_hooks), len(m._forward_pre_hooks)) for n, m in model.named_modules()]


def train_(inj: PromptInjector) -> None:
    """Non-zero modulators and a non-trivial output (attaching alone is the identity)."""
    g = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for p in inj.modulators.parameters():
            p.copy_(torch.randn(p.shape, generator=g, dtype=torch.float32).to(p.dtype) * 0.1)


# ---------------------------------------------------------------------------------- 1. copy_for
def test_copy_for_keeps_the_dtype_and_device_of_the_original(generator):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1))
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["0", "2"])
    train_(inj)
    net.double()
    inj.double()  # moved after attach, as a user moving both would
    fresh = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 3, 3, padding=1)).double()
    fresh.load_state_dict(net.state_dict())
    inj2 = inj.copy_for(fresh)
    own = dict(inj.named_parameters()) | dict(inj.named_buffers())
    copied = dict(inj2.named_parameters()) | dict(inj2.named_buffers())
    assert own.keys() == copied.keys()
    for k, v in own.items():
        assert (copied[k].dtype, copied[k].device) == (v.dtype, v.device), k
        assert torch.equal(copied[k], v) and copied[k].data_ptr() != v.data_ptr(), k
    assert {v.dtype for v in copied.values()} == {torch.float64}
    assert all(isinstance(p, nn.Parameter) and p.requires_grad for p in inj2.parameters())
    x = torch.rand(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    with inj.prompt(task=[0, 3]):
        a = net(x)
    with inj2.prompt(task=[0, 3]):
        b = fresh(x)
    assert b.dtype == torch.float64 and torch.equal(a, b)


# ---------------------------------------------------------------------------------- 2. checkpointing
class CkptNet(nn.Module):
    def __init__(self, mode: str | None):
        super().__init__()
        self.mode = mode
        self.head = nn.Conv2d(3, 8, 3, padding=1)
        self.body = nn.Sequential(nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 8, 3, padding=1))
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, x):
        f = self.head(x)
        if self.mode is None:
            f = self.body(f)
        else:
            f = checkpoint(self.body, f, use_reentrant=self.mode == "reentrant")
        return self.tail(f)


@pytest.mark.parametrize("mode", ["non-reentrant", "reentrant"])
@pytest.mark.parametrize("targets", [["body"], ["body.0"], ["head", "body.2", "tail"]])
def test_checkpointing_a_target_is_a_clear_error(mode, targets, generator):
    torch.manual_seed(0)
    net = CkptNet(mode)
    channels = {"body": 8} if "body" in targets else None  # a Sequential declares no channels
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets=targets, channels=channels)
    x = torch.rand(2, 3, 8, 8, generator=generator)
    with inj.prompt(task=[0, 1]):
        y = net(x)
        with pytest.raises(RuntimeError, match=r"recomputed during backward\(\): activation checkpointing.*not supported.*"
                           r"Do not checkpoint the modules the injector targets.*checkpoint the whole model call"):
            y.mean().backward()
    inj.detach()


def test_checkpointing_the_whole_model_call_gives_the_same_gradients(generator):
    torch.manual_seed(0)
    net = CkptNet(None)
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["head", "body", "tail"], channels={"body": 8})
    train_(inj)
    x = torch.rand(2, 3, 8, 8, generator=generator)
    params = list(net.parameters()) + list(inj.parameters())

    def grads(run):
        for p in params:
            p.grad = None
        with inj.prompt(task=[2, 5]):
            run().square().mean().backward()
        return [p.grad.clone() for p in params]

    ref = grads(lambda: net(x))
    for reentrant in (False, True):
        got = grads(lambda: checkpoint(net, x.requires_grad_(reentrant), use_reentrant=reentrant))  # noqa: B023 - called here
        assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(ref, got))
    # backward after leaving the prompt block: the recomputation has no task any more
    with inj.prompt(task=[2, 5]):
        y = checkpoint(net, x, use_reentrant=False)
    with pytest.raises(RuntimeError, match=r"run again during backward\(\).*inside the `with inj.prompt\(...\)` block"):
        y.mean().backward()
    inj.detach()


# ---------------------------------------------------------------------------------- 3. / 9. input_arg
class MaskFirst(nn.Module):
    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(4, 8, 3, padding=1)
        self.tail = nn.Conv2d(8, 3, 3, padding=1)

    def forward(self, mask, img):
        return img + self.tail(self.head(torch.cat([mask, img], 1)))


def test_example_input_check_uses_input_arg(generator):
    net = MaskFirst()
    mask, img = torch.rand(2, 1, 16, 16, generator=generator), torch.rand(2, 3, 16, 16, generator=generator)
    for input_arg in (1, "img"):
        with PromptInjector.attach(net, AdaptivePrompt(3), targets=["tail"], input_arg=input_arg,
                                   example_input=(mask, img)):
            assert net(mask, img).shape == (2, 3, 16, 16)
        # the check looks at the image, not at the mask
        with pytest.raises(ValueError, match=r"AdaptivePrompt\(in_channels=1\) expects .* got shape \(2, 3, 16, 16\)"):
            PromptInjector.attach(net, AdaptivePrompt(1), targets=["tail"], input_arg=input_arg, example_input=(mask, img))
    assert all(h == 0 and p == 0 for _n, h, p in hooks(net))


def test_keyword_input_arg_also_finds_a_positional_image(generator):
    net = MaskFirst()
    mask, img = torch.rand(2, 1, 16, 16, generator=generator), torch.rand(2, 3, 16, 16, generator=generator)
    with PromptInjector.attach(net, AdaptivePrompt(3), targets="head", input_arg="img") as inj:
        train_(inj)
        a = net(mask, img)
        b = net(mask, img=img)
        c = net(img=img, mask=mask)
        assert torch.equal(a, b) and torch.equal(a, c)
        with pytest.raises(ValueError, match=r"AdaptivePrompt needs the model's input image, but there is no argument "
                           r"'img' \(keyword or position 1\).*pass img=<image>"):
            net(mask)


def test_missing_keyword_image_names_the_argument(generator):
    class KwOnly(nn.Module):
        def __init__(self):
            super().__init__()
            self.head = nn.Conv2d(3, 3, 1)

        def forward(self, x=None, *, img=None):
            return self.head(img if img is not None else x)

    net = KwOnly()
    x = torch.rand(1, 3, 8, 8, generator=generator)
    with PromptInjector.attach(net, AdaptivePrompt(3), targets="head", input_arg="img"):
        net(img=x)
        with pytest.raises(ValueError, match=r"no argument 'img' \(keyword\) in this call \(this call has 1 positional "
                           r"argument\(s\) and keyword\(s\) \[\]\): pass img=<image>, or attach with input_arg=<the image's position>"):
            net(x)


def test_input_arg_that_names_no_parameter_is_refused_at_attach():
    net = MaskFirst()
    with pytest.raises(ValueError, match=r"input_arg='image': MaskFirst.forward has no parameter 'image' \(its parameters: \['mask', 'img'\]\)"):
        PromptInjector.attach(net, AdaptivePrompt(3), targets="head", input_arg="image")
    assert all(h == 0 and p == 0 for _n, h, p in hooks(net))


# ---------------------------------------------------------------------------------- 4. channel axis
@pytest.mark.parametrize("length", [4, 16])  # L == C and L != C
@pytest.mark.parametrize("layer", ["conv1d", "convtranspose1d", "batchnorm1d"])
def test_channels_first_1d_outputs_are_modulated_per_channel(layer, length, generator):
    first = {"conv1d": nn.Conv1d(3, 4, 1), "convtranspose1d": nn.ConvTranspose1d(3, 4, 1)}.get(layer)
    net = nn.Sequential(first) if first is not None else nn.Sequential(nn.Conv1d(3, 4, 1), nn.BatchNorm1d(4).eval())
    target = "0" if first is not None else "1"
    x = torch.rand(2, 3, length, generator=generator)
    ref = net(x)
    for example in (None, x):  # channels from the module, or from a dry run
        with PromptInjector.attach(net, ExplicitPrompt(size=16), targets=target, example_input=example) as inj:
            assert inj.modulators[target].channels == 4
            with torch.no_grad():
                inj.modulators[target].shift.bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
            with inj.prompt(task=0):
                y = net(x)
        added = (y - ref)[0]  # rows: channels, columns: positions along L
        assert torch.allclose(added, torch.tensor([1.0, 2.0, 3.0, 4.0]).view(4, 1).expand(4, length), atol=1e-5)


def test_linear_on_channels_last_4d_features_uses_the_last_axis(generator):
    net = nn.Sequential(nn.Linear(3, 4))  # (B, H, W, C) features, channels last
    x = torch.rand(2, 4, 5, 3, generator=generator)
    ref = net(x)
    with PromptInjector.attach(net, ExplicitPrompt(size=16), targets="0", example_input=x) as inj:
        with torch.no_grad():
            inj.modulators["0"].shift.bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        with inj.prompt(task=0):
            y = net(x)
    assert torch.allclose(y - ref, torch.tensor([1.0, 2.0, 3.0, 4.0]).expand(2, 4, 5, 4), atol=1e-5)


def test_state_dict_without_axes_still_loads():
    # the state dict format of the injector is unchanged: the axes are read from the modules at attach
    net = nn.Sequential(nn.Conv1d(3, 4, 1))
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets="0", embed_dim=8)
    sd = inj.state_dict()
    assert sd["_extra_state"] == {"config": {
        "source": {"kind": "explicit", "num_tasks": 7, "size": 16, "learned": False},
        "embed_dim": 8,
        "scales": [{"name": "scale0", "part": "decoder", "targets": [["0", 4]]}],
    }}
    inj.load_state_dict(sd)
    inj.detach()


# ---------------------------------------------------------------------------------- 8. device / dtype
@pytest.mark.parametrize("prompt", ["explicit", "adaptive"])
def test_attach_follows_a_bf16_backbone(prompt, generator):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1)).to(torch.bfloat16)
    source = ExplicitPrompt(size=16) if prompt == "explicit" else AdaptivePrompt(3)
    x = torch.rand(2, 3, 8, 8, generator=generator).to(torch.bfloat16)
    with PromptInjector.attach(net, source, targets=["0", "2"]) as inj:
        assert {p.dtype for p in inj.parameters()} == {torch.bfloat16}
        train_(inj)
        with inj.prompt(task=1) if prompt == "explicit" else torch.no_grad():
            y = net(x)
        assert y.dtype == torch.bfloat16


@pytest.mark.parametrize("prompt", ["explicit", "adaptive"])
def test_moving_the_backbone_alone_is_a_clear_error(prompt, generator):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    source = ExplicitPrompt(size=16) if prompt == "explicit" else AdaptivePrompt(3)
    x = torch.rand(2, 3, 8, 8, generator=generator)
    with PromptInjector.attach(net, source, targets=["0", "2"]) as inj:
        net.to(torch.bfloat16)
        with inj.prompt(task=1) if prompt == "explicit" else torch.no_grad():
            with pytest.raises(ValueError, match=r"(cpu/float32.*cpu/bfloat16|cpu/bfloat16.*cpu/float32).*inj\.to\(device='cpu', dtype=torch\.bfloat16\)"):
                net(x.to(torch.bfloat16))
        inj.to(dtype=torch.bfloat16)
        with inj.prompt(task=1) if prompt == "explicit" else torch.no_grad():
            assert net(x.to(torch.bfloat16)).dtype == torch.bfloat16


def test_a_higher_precision_output_keeps_its_dtype(generator):
    # a float64 backbone with a float32 injector (or an fp32 norm in a bf16 model): the output keeps its
    # precision, modulated by the injector's float32 scale and shift; only a lower-precision output is refused
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    x = torch.rand(2, 3, 8, 8, generator=generator, dtype=torch.float64)
    with PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["0", "2"]) as inj:
        net.double()
        with inj.prompt(task=1):
            assert net(x).dtype == torch.float64


def test_autocast_query_works_on_every_supported_torch(monkeypatch):
    from mio_strategies.prompts import _hooks

    def old_style(*args):  # torch 2.1-2.3: no device argument
        if args:
            raise TypeError("is_autocast_enabled() takes 0 positional arguments but 1 was given")
        return False

    for on in (True, False):  # torch's own autocast uses the real queries: patched inside it
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=on), monkeypatch.context() as m:
            m.setattr(torch, "is_autocast_enabled", old_style)
            m.setattr(torch, "is_autocast_cpu_enabled", lambda: on)  # noqa: B023 - native on torch < 2.4; used here
            assert _hooks._autocast_enabled("cpu") is on
            assert _hooks._autocast_enabled("cuda") is False
    assert _hooks._autocast_enabled("meta") is False  # a device type autocast does not know


@pytest.mark.parametrize("prompt", ["explicit", "adaptive"])
def test_autocast_still_works(prompt, generator):
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    source = ExplicitPrompt(size=16) if prompt == "explicit" else AdaptivePrompt(3)
    x = torch.rand(2, 3, 8, 8, generator=generator)
    with PromptInjector.attach(net, source, targets=["0", "2"]) as inj:
        with torch.autocast("cpu", dtype=torch.bfloat16), (inj.prompt(task=1) if prompt == "explicit" else torch.no_grad()):
            assert net(x).dtype == torch.bfloat16


# ---------------------------------------------------------------------------------- 11. numpy ids
def test_numpy_integer_scalars_are_task_ids(generator):
    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1))
    x = torch.rand(2, 3, 8, 8, generator=generator)
    with PromptInjector.attach(net, ExplicitPrompt(size=16), targets="0") as inj:
        train_(inj)
        with inj.prompt(task=2):
            ref = net(x)
        for task in (np.int64(2), np.int32(2), [np.int64(2), np.int64(2)]):
            with inj.prompt(task=task):
                assert torch.allclose(net(x), ref, atol=1e-6), task
        with pytest.raises(ValueError, match=r"task id 9 is out of range: valid ids are 0\.\.6"):
            inj.prompt(task=np.int64(9)).__enter__()
        with pytest.raises(ValueError, match=r"task id 9 is out of range"):
            inj.prompt(task=[np.int64(1), np.int64(9)]).__enter__()


# ---------------------------------------------------------------------------------- 12. generators
@pytest.mark.parametrize(
    "make",
    [
        lambda g: PromptInjector.attach(nn.Sequential(nn.Conv2d(3, 4, 1)), ExplicitPrompt(size=16), targets="0", generator=g),
        lambda g: ExplicitPrompt(size=16, generator=g),
        lambda g: PromptExtractor(3, generator=g),
        lambda g: TaskClassifier(generator=g),
    ],
    ids=["attach", "ExplicitPrompt", "PromptExtractor", "TaskClassifier"],
)
def test_a_generator_that_is_not_a_torch_generator_is_a_type_error(make):
    with pytest.raises(TypeError, match=r"generator(=\.\.\.\))? must be a torch\.Generator \(e\.g\. torch\.Generator\(\)\.manual_seed\(0\)\).*got int 0"):
        make(0)


def test_failed_attach_with_a_bad_generator_leaves_no_hooks():
    net = nn.Sequential(nn.Conv2d(3, 4, 1))
    with pytest.raises(TypeError, match=r"generator must be a torch\.Generator"):
        PromptInjector.attach(net, ExplicitPrompt(size=16), targets="0", generator=0)
    assert all(h == 0 and p == 0 for _n, h, p in hooks(net))


def test_layernorm_over_several_axes_keeps_the_ndim_rule(generator):
    net = nn.Sequential(nn.Conv2d(3, 4, 1), nn.LayerNorm([4, 5, 6]))  # normalises (C, H, W): channels on axis 1
    x = torch.rand(2, 3, 5, 6, generator=generator)
    ref = net(x)
    with PromptInjector.attach(net, ExplicitPrompt(size=16), targets="1", example_input=x) as inj:
        assert inj.modulators["1"].channels == 4
        with torch.no_grad():
            inj.modulators["1"].shift.bias.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
        with inj.prompt(task=0):
            y = net(x)
    assert torch.allclose(y - ref, torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1).expand(2, 4, 5, 6), atol=1e-5)


def test_checkpointing_inside_a_target_is_fine(generator):
    class Group(nn.Module):  # like a Swin group with use_checkpoint: its blocks are checkpointed inside
        def __init__(self, ckpt: bool):
            super().__init__()
            self.ckpt = ckpt
            self.blocks = nn.ModuleList(nn.Conv2d(8, 8, 3, padding=1) for _ in range(2))

        def forward(self, x):
            for blk in self.blocks:
                x = checkpoint(blk, x, use_reentrant=False) if self.ckpt else blk(x)
            return x

    torch.manual_seed(0)
    net = nn.Sequential(OrderedDict(head=nn.Conv2d(3, 8, 3, padding=1), group=Group(False), tail=nn.Conv2d(8, 3, 3, padding=1)))
    inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["group"], channels=8)
    train_(inj)
    x = torch.rand(2, 3, 8, 8, generator=generator)
    params = list(net.parameters()) + list(inj.parameters())
    out = []
    for ckpt in (False, True):
        net.group.ckpt = ckpt
        for p in params:
            p.grad = None
        with inj.prompt(task=[1, 4]):
            net(x).square().mean().backward()
        out.append([p.grad.clone() for p in params])
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(*out))
    inj.detach()
