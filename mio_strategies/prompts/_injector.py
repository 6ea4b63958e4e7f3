"""PromptInjector: prompt modulation attached to any nn.Module by forward hooks."""

from __future__ import annotations

import copy
import inspect
import itertools
import math
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from ._init import check_generator, default_generator, make_layer
from ._report import ParameterReport, count_parameters
from ._sources import AdaptivePrompt, ExplicitPrompt, PromptSource, _Spec
from ._targets import (
    TargetSpec,
    as_elements,
    channel_axis,
    channels_from_module,
    declared_channel_axis,
    explicit_axes,
    explicit_channels,
    resolve,
)

__all__ = ["PARTS", "PromptInjector", "PromptScale", "PromptedModel"]

PARTS: tuple[str, ...] = ("encoder", "latent", "decoder", "output")
"""The parts of a U-Net a :class:`PromptScale` can belong to, from input to output."""
DEFAULT_PARTS: tuple[str, ...] = ("latent", "decoder", "output")


@dataclass(frozen=True)
class PromptScale:
    """One scale of a U-Net (in the spirit of timm's ``feature_info``): which modules, their channels.

    Args:
        targets: modules of this scale, by exact name, name suffix, compiled regex or module type.
        channels: output channels of every target (an int), or a mapping name -> channels; ``None``
            takes them from the modules or from a dry run on ``example_input``.
        part: ``"encoder"``, ``"latent"``, ``"decoder"`` or ``"output"``. By default only the latent,
            decoder and output scales are injected (the paper's decoder-side injection).
        reduction: spatial reduction of this scale relative to the input (informational).
        name: a label for reports (defaults to ``scale<i>``).
        channel_axis: where the targets' outputs hold their channels, ``1`` (``(B, C, ...)``) or ``-1``
            (``(B, ..., C)``, e.g. a block working on channels-last ``(B, H, W, C)`` features), for every
            target or as a mapping name -> axis; ``None`` follows the module type, else the output's shape.

    Raises:
        ValueError: an unknown ``part`` or a non-positive ``reduction``.

    Example:
        >>> PromptScale("decoder_level1", part="decoder", reduction=1).part
        'decoder'
    """

    targets: TargetSpec
    channels: int | Mapping[str, int] | None = None
    part: str = "decoder"
    reduction: int | None = None
    name: str | None = None
    channel_axis: int | Mapping[str, int] | None = None

    def __post_init__(self) -> None:
        if self.part not in PARTS:
            raise ValueError(f"part must be one of {PARTS}, got {self.part!r}")
        bad_reduction = isinstance(self.reduction, bool) or not isinstance(self.reduction, int) or self.reduction < 1
        if self.reduction is not None and bad_reduction:
            raise ValueError(f"reduction must be a positive integer or None, got {self.reduction!r}")


@dataclass
class _ScalePlan:
    name: str
    part: str
    reduction: int | None
    targets: list[tuple[str, str, int]] = field(default_factory=list)  # (module name, key, channels)
    # module name -> channel axis its type declares (1 or -1), None: from the output's ndim. Not part of
    # config() / the state dict: it follows from the backbone's module types, read again at every attach.
    axes: dict[str, int | None] = field(default_factory=dict)
    # module name -> channel axis the user gave (channel_axis=): part of config(), kept by copy_for
    given_axes: dict[str, int] = field(default_factory=dict)


class _Modulator(nn.Module):
    """Two zero-initialised linear maps from the prompt vector to a channel scale and shift."""

    def __init__(self, embed_dim: int, channels: int) -> None:
        super().__init__()
        self.channels = channels
        self.scale = make_layer(nn.Linear, embed_dim, channels)
        self.shift = make_layer(nn.Linear, embed_dim, channels)
        with torch.no_grad():
            for lin in (self.scale, self.shift):
                lin.weight.zero_()
                lin.bias.zero_()

    def forward(self, prompt: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.scale(prompt), self.shift(prompt)


class _EntryHook:
    """Forward pre-hook on the model: computes the prompt vectors of this call."""

    __slots__ = ("injector",)

    def __init__(self, injector: PromptInjector) -> None:
        self.injector = injector

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict) -> None:
        self.injector._begin(args, kwargs)
        return None


class _ExitHook:
    """Forward hook on the model (always called): drops the prompt vectors of this call."""

    __slots__ = ("injector",)

    def __init__(self, injector: PromptInjector) -> None:
        self.injector = injector

    def __call__(self, module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
        self.injector._active = None
        return None


class _TargetHook:
    """Forward hook on one target: ``out * (1 + scale) + shift``."""

    __slots__ = ("axis", "injector", "key", "name", "scale_index")

    def __init__(self, injector: PromptInjector, name: str, key: str, scale_index: int, axis: int | None = None) -> None:
        self.injector = injector
        self.name = name
        self.key = key
        self.scale_index = scale_index
        self.axis = axis  # the channel axis the module's type declares; None: from the output's ndim

    def __call__(self, module: nn.Module, args: tuple, output: Any) -> Any:
        return self.injector._modulate(self, output)


def _autocast_enabled(device_type: str) -> bool:
    """Whether autocast is on for ``device_type`` (torch 2.1-2.3 have no per-device query)."""
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4
        if device_type == "cuda":
            return bool(torch.is_autocast_enabled())
        return device_type == "cpu" and bool(torch.is_autocast_cpu_enabled())
    except RuntimeError:  # a device type autocast does not know (meta)
        return False


def _key(name: str) -> str:
    return name.replace(".", "__")


def _our_hooks(model: nn.Module) -> Iterator[tuple[str, Any]]:
    for name, module in model.named_modules():
        for hooks in (module._forward_pre_hooks, module._forward_hooks):
            for hook in hooks.values():
                if isinstance(hook, (_EntryHook, _ExitHook, _TargetHook)):
                    yield name, hook


def _in_backward() -> bool:
    """Whether autograd is running a backward pass (e.g. an activation-checkpointing recomputation)."""
    task_id = getattr(torch._C, "_current_graph_task_id", None)
    return task_id is not None and task_id() != -1


def _input_position(model: nn.Module, input_arg: int | str) -> int | None:
    """For a keyword ``input_arg``: its position among ``model.forward``'s positional parameters.

    ``None`` when it can only be passed by keyword. A position is returned as is.

    Raises:
        ValueError: ``forward`` has no parameter of that name and takes no ``**kwargs``.
    """
    if not isinstance(input_arg, str):
        return input_arg
    try:
        params = list(inspect.signature(model.forward).parameters.values())
    except (TypeError, ValueError):  # no signature (a builtin): keywords only
        return None
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    for i, p in enumerate(positional):
        if p.name == input_arg:
            return i
    if any(p.name == input_arg for p in params) or any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    raise ValueError(
        f"input_arg={input_arg!r}: {type(model).__name__}.forward has no parameter {input_arg!r} "
        f"(its parameters: {[p.name for p in params]}); name the image's parameter, or give its position"
    )


def _pick_input(args: tuple, kwargs: dict, input_arg: int | str, position: int | None) -> Any:
    """The model's image argument (the same rule at attach and at every call), or None when absent."""
    if isinstance(input_arg, str):
        if input_arg in kwargs:
            return kwargs[input_arg]
        return args[position] if position is not None and len(args) > position else None
    if len(args) > input_arg:
        return args[input_arg]
    return next((v for v in kwargs.values() if isinstance(v, torch.Tensor)), None)


def _first_tensor(args: tuple, kwargs: dict, input_arg: int | str, position: int | None = None) -> torch.Tensor | None:
    value = _pick_input(args, kwargs, input_arg, position if isinstance(input_arg, str) else None)
    return value if isinstance(value, torch.Tensor) else None


def _missing_input(args: tuple, kwargs: dict, input_arg: int | str, position: int | None) -> str:
    """Why no image was found in a call, and the fix."""
    value = _pick_input(args, kwargs, input_arg, position)
    called = f"this call has {len(args)} positional argument(s) and keyword(s) {sorted(kwargs)}"
    if value is not None:
        return (
            f"the argument at input_arg={input_arg!r} is a {type(value).__name__}, not a tensor ({called}): "
            "attach with input_arg=<the image's position or keyword name>"
        )
    if isinstance(input_arg, str):
        where = f" or position {position}" if position is not None else ""
        return (
            f"there is no argument {input_arg!r} (keyword{where}) in this call ({called}): "
            f"pass {input_arg}=<image>, or attach with input_arg=<the image's position>"
        )
    return (
        f"there is no tensor at position {input_arg} ({called}): pass the image there, or attach with "
        "input_arg=<the image's position or keyword name>"
    )


def _placement(t: torch.Tensor) -> str:
    return f"{t.device}/{str(t.dtype).replace('torch.', '')}"


def _move_hint(t: torch.Tensor) -> str:
    return f"inj.to(device='{t.device}', dtype={t.dtype})"


class PromptInjector(nn.Module):
    """Prompt modulation of any backbone, attached by forward hooks (create it with :meth:`attach`).

    Each target module's output ``out`` becomes ``out * (1 + scale) + shift``, where ``scale`` and
    ``shift`` (one value per channel) are linear maps of the prompt vector of the call. The maps start
    at zero, so attaching changes no output. The backbone keeps its ``forward`` signature and its
    ``state_dict``; the injector's own parameters (extractors, modulators, explicit prompt maps) live
    here, with their own ``state_dict`` / ``load_state_dict``.

    Example:
        >>> from mio_strategies.prompts import ExplicitPrompt
        >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
        >>> inj = PromptInjector.attach(net, ExplicitPrompt(), targets=["0", "2"])
        >>> with inj.prompt(task="rain"):
        ...     y = net(torch.rand(2, 3, 16, 16))
        >>> inj.detach()
    """

    source: PromptSource
    modulators: nn.ModuleDict

    def __init__(self, source: PromptSource, plan: list[_ScalePlan], *, embed_dim: int = 64,
                 generator: torch.Generator | None = None, input_arg: int | str = 0) -> None:
        super().__init__()
        if not isinstance(source, PromptSource):
            raise TypeError(f"prompt must be an ExplicitPrompt or AdaptivePrompt, got {type(source).__name__}")
        check_generator(generator)
        g = generator if generator is not None else default_generator()
        self.source = source
        self.embed_dim = embed_dim
        self.input_arg = input_arg
        self._input_pos: int | None = input_arg if isinstance(input_arg, int) else None
        self._plan = plan
        self.encoders = nn.ModuleList(source.make_encoder(embed_dim, g) for _ in plan)
        self.modulators = nn.ModuleDict()
        for sp in plan:
            for _name, key, ch in sp.targets:
                self.modulators[key] = _Modulator(embed_dim, ch)
        self.__dict__["_model"] = None  # the backbone: never a submodule of the injector
        self._handles: list[Any] = []
        self._active: list[torch.Tensor] | None = None
        self._spec: _Spec | None = None
        self._enabled = True

    # ---------------------------------------------------------------------------------- attach
    @classmethod
    def attach(
        cls,
        model: nn.Module,
        prompt: PromptSource,
        targets: TargetSpec | None = None,
        *,
        scales: Sequence[PromptScale] | None = None,
        parts: Sequence[str] = DEFAULT_PARTS,
        channels: int | Mapping[str, int] | None = None,
        example_input: torch.Tensor | tuple | None = None,
        embed_dim: int = 64,
        channel_axis: int | Mapping[str, int] | None = None,
        input_arg: int | str = 0,
        generator: torch.Generator | None = None,
    ) -> PromptInjector:
        """Validate everything, then hook ``prompt`` modulation onto ``model``'s target modules.

        Args:
            model: any ``nn.Module`` (unchanged: only hooks are added).
            prompt: an :class:`ExplicitPrompt` or :class:`AdaptivePrompt`.
            targets: modules to modulate, by exact name, name suffix (``"conv_hr"`` matches
                ``"x.conv_hr"``), full-match ``re.compile(...)`` regex, or ``nn.Module`` subclass; or a
                list of these. One extractor serves them all. Exclusive with ``scales``.
            scales: a U-Net description, one :class:`PromptScale` per scale, one extractor per scale.
            parts: which ``PromptScale.part`` values are injected (default latent, decoder, output).
            channels: output channels of the targets (with ``targets=``), an int or name -> int.
            example_input: the model's input (or a tuple of positional inputs) for one dry run under
                ``torch.no_grad`` in eval mode that reads the targets' channels and checks their
                outputs. Needed when a target's channels cannot be read from the module itself.
            embed_dim: width of the prompt vector (64 in the paper).
            channel_axis: where the targets' outputs hold their channels (with ``targets=``): ``1`` or
                ``-1``, or name -> axis. Needed only for a custom module with a channels-last 4-D or 5-D
                output such as ``(B, H, W, C)``; by default the axis follows the module type (1 for
                convolutions and batch/instance/group norms, -1 for ``Linear`` and ``LayerNorm(C)``), else
                the output's shape (``(B, N, C)``: -1; 2-, 4- and 5-D: 1). Saved with the configuration.
            input_arg: which argument of ``model.forward`` is the image: a position or a parameter name
                (found by keyword, or at that parameter's position when passed positionally).
            generator: seeds the extractors' initial weights (default seed 0); a CPU ``torch.Generator``.

        Returns:
            The attached injector (also a context manager that detaches on exit), on the device and
            floating dtype of the model's first floating parameter.

        Raises:
            TypeError: wrong argument types (e.g. a ``generator`` that is not a ``torch.Generator``); a
                target whose output is not a tensor.
            ValueError: targets matching nothing (with the closest module names); a model that already
                has an injector; a target output without a channel axis; channels that disagree with the
                module, with the dry run, or that cannot be determined; a ``channel_axis`` other than 1 / -1
                or contradicting the module type; an ``input_arg`` name that is not a parameter of
                ``model.forward``.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if not isinstance(prompt, PromptSource):
            raise TypeError(f"prompt must be an ExplicitPrompt or AdaptivePrompt, got {type(prompt).__name__}")
        if isinstance(embed_dim, bool) or not isinstance(embed_dim, int) or embed_dim < 1:
            raise ValueError(f"embed_dim must be a positive integer, got {embed_dim!r}")
        if not isinstance(input_arg, (int, str)) or isinstance(input_arg, bool):
            raise TypeError(f"input_arg must be a position (int) or a keyword name (str), got {input_arg!r}")
        if isinstance(input_arg, int) and input_arg < 0:
            raise ValueError(f"input_arg must be a position >= 0 or a keyword name, got {input_arg!r}")
        check_generator(generator)
        position = _input_position(model, input_arg)
        existing = next(_our_hooks(model), None)
        if existing is not None:
            where = existing[0] or type(model).__name__
            raise ValueError(
                f"{type(model).__name__} already has a PromptInjector attached (hooked at {where!r}): "
                "call detach() on it first (PromptInjector.of(model) finds it)"
            )
        plan = cls._plan_for(model, prompt, targets, scales, parts, channels, example_input, input_arg, position, channel_axis)
        injector = cls(prompt, plan, embed_dim=embed_dim, generator=generator, input_arg=input_arg)
        ref = next((t for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()), None)
        if ref is not None:  # follow the backbone (a bf16 / CUDA model gets a bf16 / CUDA injector)
            injector.to(device=ref.device, dtype=ref.dtype)
        injector._register(model)
        return injector

    @staticmethod
    def _plan_for(model: nn.Module, prompt: PromptSource, targets: Any, scales: Any, parts: Any, channels: Any,
                  example_input: Any, input_arg: int | str = 0, position: Any = None,
                  axis_spec: Any = None) -> list[_ScalePlan]:
        if (targets is None) == (scales is None):
            raise ValueError("give either targets= (one scale) or scales= (a list of PromptScale), not both or neither")
        if scales is not None:
            if isinstance(scales, PromptScale) or not isinstance(scales, Sequence) or not scales:
                raise TypeError("scales must be a non-empty list of PromptScale")
            for s in scales:
                if not isinstance(s, PromptScale):
                    raise TypeError(f"scales must hold PromptScale entries, got {type(s).__name__}")
            if channels is not None:
                raise ValueError("with scales=, give channels inside each PromptScale(channels=...)")
            if axis_spec is not None:
                raise ValueError("with scales=, give channel_axis inside each PromptScale(channel_axis=...)")
            parts = tuple(parts) if not isinstance(parts, str) else (parts,)
            bad = [p for p in parts if p not in PARTS]
            if bad or not parts:
                raise ValueError(f"parts must be a non-empty subset of {PARTS}, got {parts!r}")
            entries = list(scales)
        else:
            entries = [PromptScale(targets, channels=channels, part="decoder", name="scale0", channel_axis=axis_spec)]
            parts = ("decoder",)

        # resolve names (every entry, injected or not, so that typos are reported)
        plans: list[tuple[_ScalePlan, dict[str, int]]] = []
        modules = dict(model.named_modules())
        owner: dict[str, str] = {}
        for i, entry in enumerate(entries):
            label = entry.name or f"scale{i}"
            where = "targets" if scales is None else f"scales[{i}] ({label})"
            names = resolve(model, as_elements(entry.targets, where), where)
            for n in names:
                if n in owner:
                    raise ValueError(
                        f"module {n!r} is targeted twice (in {owner[n]} and {label}); each module belongs to one scale"
                    )
                owner[n] = label
            given = explicit_channels(entry.channels, names, where)
            given_axes = explicit_axes(entry.channel_axis, names, where)
            for n, a in given_axes.items():
                _check_axis(n, modules[n], a)
            if entry.part in parts:
                plan = _ScalePlan(label, entry.part, entry.reduction, [(n, _key(n), 0) for n in names], given_axes=given_axes)
                plans.append((plan, given))
        if not plans:
            raise ValueError(f"no scale has a part in {parts!r}: parts of the scales are {[e.part for e in entries]}")

        keys: dict[str, str] = {}
        for sp, _ in plans:
            for n, k, _c in sp.targets:
                if k in keys:
                    raise ValueError(f"modules {keys[k]!r} and {n!r} map to the same parameter key {k!r}; target one of them")
                keys[k] = n

        axes = {n: sp.given_axes.get(n, declared_channel_axis(modules[n])) for sp, _ in plans for n, _k, _c in sp.targets}
        for sp, _ in plans:
            sp.axes = {n: axes[n] for n, _k, _c in sp.targets}
        shapes: dict[str, tuple[int, ...]] = {}
        seen = _dry_run(model, list(axes), example_input, axes, shapes) if example_input is not None else {}
        if example_input is not None and isinstance(prompt, AdaptivePrompt):
            # the image is found with the same rule as at every call (input_arg)
            args = example_input if isinstance(example_input, tuple) else (example_input,)
            value = _pick_input(args, {}, input_arg, position)
            if value is not None or not isinstance(input_arg, str):  # a keyword-only image: not in example_input
                prompt.context(value if isinstance(value, torch.Tensor) else None, None)

        missing: list[str] = []
        for sp, given in plans:
            resolved = []
            for n, k, _c in sp.targets:
                from_module = channels_from_module(modules[n])
                declared = given.get(n, from_module)
                observed = seen.get(n)
                if declared is not None and observed is not None and declared != observed:
                    raise ValueError(
                        f"target {n!r} ({type(modules[n]).__name__}): channels {declared} given or declared by the module, "
                        f"but its output has {observed} channels in the dry run (shape {shapes[n]}, channel axis "
                        f"{channel_axis(len(shapes[n]), axes[n])}); fix channels="
                        + _axis_hint(shapes[n], declared, axes[n], sp.given_axes.get(n))
                    )
                if n in given and from_module is not None and given[n] != from_module:
                    raise ValueError(
                        f"target {n!r} ({type(modules[n]).__name__}): channels {given[n]} given, but the module declares "
                        f"{from_module} output channels; fix channels= (or leave it out for this module)"
                    )
                ch = declared if declared is not None else observed
                if ch is None:
                    missing.append(n)
                resolved.append((n, k, ch or 0))
            sp.targets = resolved
        if missing:
            raise ValueError(
                f"cannot tell the output channels of {missing}: pass example_input=<a model input> for a dry run, "
                "or channels= (an int, or a mapping name -> int)"
            )
        if seen:  # after the errors: a wrong channels= is reported as such, not as this warning
            args = example_input if isinstance(example_input, tuple) else (example_input,)
            image = _pick_input(args, {}, input_arg, position)
            for n in seen:
                if axes[n] is None:  # a module type that declares no channel axis, and none given
                    _warn_if_channels_look_last(n, modules[n], shapes[n], image)
        return [sp for sp, _ in plans]

    def _register(self, model: nn.Module) -> None:
        modules = dict(model.named_modules())
        self._input_pos = _input_position(model, self.input_arg)
        handles = [
            model.register_forward_pre_hook(_EntryHook(self), with_kwargs=True, prepend=True),
            model.register_forward_hook(_ExitHook(self), with_kwargs=True, always_call=True),
        ]
        for i, sp in enumerate(self._plan):
            for n, k, _c in sp.targets:
                axes = getattr(sp, "axes", {})  # plans pickled before axes were recorded
                axis = axes[n] if n in axes else declared_channel_axis(modules[n])
                handles.append(modules[n].register_forward_hook(_TargetHook(self, n, k, i, axis)))
        self._handles = handles
        self.__dict__["_model"] = model

    # ---------------------------------------------------------------------------------- lifecycle
    @property
    def model(self) -> nn.Module | None:
        """The backbone this injector is attached to (``None`` once detached)."""
        return self.__dict__["_model"]

    @property
    def attached(self) -> bool:
        """Whether the hooks are in place."""
        return bool(self._handles)

    @property
    def target_names(self) -> list[str]:
        """Names of the modulated modules, scale by scale."""
        return [n for sp in self._plan for n, _k, _c in sp.targets]

    def detach(self) -> None:
        """Remove every hook; the backbone computes exactly what it did before. Idempotent."""
        for h in self._handles:
            h.remove()
        self._handles = []
        self._active = None
        self.__dict__["_model"] = None

    def __enter__(self) -> PromptInjector:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.detach()

    @classmethod
    def of(cls, model: nn.Module) -> PromptInjector | None:
        """The injector attached to ``model`` (e.g. the private copy inside ``copy.deepcopy(model)``), or None."""
        for hook in model._forward_pre_hooks.values():
            if isinstance(hook, _EntryHook):
                return hook.injector
        return None

    @torch.no_grad()
    def reset_modulators(self, init: str = "zero", *, generator: torch.Generator | None = None) -> None:
        """Re-initialise every modulator's scale and shift maps.

        ``"zero"`` (the library's choice, as at attach): the injector is the identity until trained.
        ``"default"``: PyTorch's default ``nn.Linear`` initialisation, U(-1/sqrt(embed_dim), 1/sqrt(embed_dim))
        for weights and biases, drawn from ``generator`` (the reference's; an untrained model then already
        modulates its backbone).

        Args:
            init: ``"zero"`` or ``"default"``.
            generator: a CPU ``torch.Generator`` for ``"default"`` (default: seed 0).

        Raises:
            ValueError: an unknown ``init``. TypeError: ``generator`` is not a ``torch.Generator``.

        Example:
            >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1))
            >>> inj = PromptInjector.attach(net, ExplicitPrompt(size=16), targets=["0"])
            >>> inj.reset_modulators("default", generator=torch.Generator().manual_seed(0))
            >>> bool(inj.modulators["0"].scale.weight.abs().sum() > 0)
            True
        """
        if init not in ("zero", "default"):
            raise ValueError(f"init must be 'zero' (identity at attach) or 'default' (PyTorch's nn.Linear init), got {init!r}")
        check_generator(generator)
        g = generator if generator is not None else default_generator()
        for mod in self.modulators.values():
            assert isinstance(mod, _Modulator)
            for lin in (mod.scale, mod.shift):
                if init == "zero":
                    lin.weight.zero_()
                    lin.bias.zero_()
                else:
                    bound = 1.0 / math.sqrt(lin.in_features)
                    w = torch.rand(lin.weight.shape, generator=g, dtype=torch.float32) * 2 - 1
                    b = torch.rand(lin.bias.shape, generator=g, dtype=torch.float32) * 2 - 1
                    lin.weight.copy_(w * bound)
                    lin.bias.copy_(b * bound)

    def copy_for(self, model: nn.Module) -> PromptInjector:
        """A copy of this injector (same configuration and weights) attached to ``model``.

        Use it for a backbone copy that carries no hooks, e.g. an EMA model built and loaded anew.
        (``copy.deepcopy((model, injector))`` copies both together; ``copy.deepcopy(model)`` alone
        carries a private injector copy, found with :meth:`of`.)

        Raises:
            ValueError: ``model`` lacks a target module, has different channels, or is already attached.
        """
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module, got {type(model).__name__}")
        if next(_our_hooks(model), None) is not None:
            raise ValueError(f"{type(model).__name__} already has a PromptInjector attached: use PromptInjector.of(model)")
        modules = dict(model.named_modules())
        for sp in self._plan:
            for n, _k, ch in sp.targets:
                if n not in modules:
                    raise ValueError(f"{type(model).__name__} has no module {n!r} (a target of this injector)")
                declared = channels_from_module(modules[n])
                if declared is not None and declared != ch:
                    raise ValueError(f"module {n!r} has {declared} output channels, this injector's modulator has {ch}")
        _input_position(model, self.input_arg)  # validated before anything is built
        classifier = getattr(self.source, "classifier", None)
        source = copy.deepcopy(self.source)  # classifier (not a submodule) is shared below
        if classifier is not None and isinstance(source, ExplicitPrompt):  # only an explicit prompt has one
            source.set_classifier(classifier)
        plan = copy.deepcopy(self._plan)
        for sp in plan:  # the channel axes given at attach are kept; the others follow the new model's module types
            given_axes = getattr(sp, "given_axes", {})  # plans pickled before channel_axis= existed
            for n, a in given_axes.items():
                _check_axis(n, modules[n], a)
            sp.given_axes = dict(given_axes)
            sp.axes = {n: given_axes.get(n, declared_channel_axis(modules[n])) for n, _k, _c in sp.targets}
        new = type(self)(source, plan, embed_dim=self.embed_dim, input_arg=self.input_arg)
        # assign=True: every tensor keeps the device and dtype of the original's (a CUDA / bf16 / float64
        # injector gives a copy of the same kind); cloned, so the two never share storage
        state = {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in self.state_dict().items()}
        new.load_state_dict(state, assign=True)
        new.train(self.training)
        new._register(model)
        return new

    def __deepcopy__(self, memo: dict) -> PromptInjector:
        # default deep copy, but a detached copy must not think it is attached
        cls = type(self)
        new = cls.__new__(cls)
        memo[id(self)] = new
        for k, v in self.__dict__.items():
            new.__dict__[k] = copy.deepcopy(v, memo)
        if new.__dict__.get("_model") is None:
            new.__dict__["_handles"] = []
        return new

    # ---------------------------------------------------------------------------------- prompts
    @contextmanager
    def prompt(
        self, task: Any = None, *, weights: Any = None, mix: Mapping[Any, float] | None = None
    ) -> Iterator[PromptInjector]:
        """Choose the explicit prompt of the model calls inside the ``with`` block.

        Args:
            task: one task (id, name, letter, Task) for the whole batch, or one per sample (a list or an
                integer tensor of shape ``(B,)``).
            weights: mixing weights over the tasks, ``(num_tasks,)`` or ``(B, num_tasks)``; the prompt
                vector is the weighted sum of the tasks' prompt vectors.
            mix: the same as a mapping, e.g. ``{"rain": 0.3, "lowlight": 0.7}`` (interpolation).

        Raises:
            ValueError: ids out of range (the message gives the valid interval), wrong shapes, not
                exactly one of the three, or an :class:`AdaptivePrompt` source.
            TypeError: float task ids, or values of the wrong type.

        Example:
            >>> with injector.prompt(mix={"rain": 0.5, "lowlight": 0.5}):  # doctest: +SKIP
            ...     y = model(x)
        """
        spec = self.source.parse_spec(task, weights, mix)
        previous = self._spec
        self._spec = spec
        try:
            yield self
        finally:
            self._spec = previous

    def set_prompt(self, task: Any = None, *, weights: Any = None, mix: Mapping[Any, float] | None = None) -> None:
        """Like :meth:`prompt` but persistent until :meth:`clear_prompt` (for training loops)."""
        self._spec = self.source.parse_spec(task, weights, mix)

    def clear_prompt(self) -> None:
        """Forget the prompt set by :meth:`set_prompt` (an attached classifier then predicts the task)."""
        self._spec = None

    @contextmanager
    def disabled(self) -> Iterator[PromptInjector]:
        """Run the backbone without modulation inside the ``with`` block (hooks stay registered)."""
        previous = self._enabled
        self._enabled = False
        try:
            yield self
        finally:
            self._enabled = previous

    def prompt_vectors(self, image: torch.Tensor | None = None) -> list[torch.Tensor]:
        """The prompt vectors ``(B, embed_dim)`` of each scale for ``image`` under the current prompt."""
        ctx = self.source.context(image, self._spec)
        return [self.source.encode(enc, ctx) for enc in self.encoders]

    # ---------------------------------------------------------------------------------- hooks
    def _begin(self, args: tuple, kwargs: dict) -> None:
        if not self._enabled:
            self._active = None
            return
        source = self.source
        explicit_without_task = isinstance(source, ExplicitPrompt) and self._spec is None
        if explicit_without_task and source.classifier is None and _in_backward():
            raise RuntimeError(
                "the model is being run again during backward() (activation checkpointing of the whole model "
                "call recomputes it), but no prompt is set any more: call backward() inside the "
                "`with inj.prompt(...)` block, or use inj.set_prompt(...) for the training step"
            )
        position = getattr(self, "_input_pos", None)
        image = _first_tensor(args, kwargs, self.input_arg, position)
        if image is None and (isinstance(source, AdaptivePrompt) or (explicit_without_task and source.classifier is not None)):
            who = "AdaptivePrompt" if isinstance(source, AdaptivePrompt) else "the task classifier"
            raise ValueError(
                f"{who} needs the model's input image, but "
                + _missing_input(args, kwargs, self.input_arg, position)
            )
        if image is not None and isinstance(source, AdaptivePrompt):
            self._check_image(image)
        ctx = source.context(image, self._spec)
        self._active = [source.encode(enc, ctx) for enc in self.encoders]

    def _check_image(self, image: torch.Tensor) -> None:
        """The adaptive prompt image must be where the extractors are (a clear error, not torch's)."""
        ref = next(self.encoders.parameters(), None)
        if ref is None:
            return
        if not image.is_floating_point():
            raise ValueError(
                f"AdaptivePrompt needs a floating-point image, got dtype {image.dtype}: convert the input, "
                "e.g. x.float() / 255"
            )
        autocast = _autocast_enabled(image.device.type)
        if image.device != ref.device or (image.dtype != ref.dtype and not autocast):
            raise ValueError(
                f"the injector is on {_placement(ref)} but the model input is on {_placement(image)}: move the "
                f"injector with {_move_hint(image)} (attach follows the model's first floating parameter; after "
                "moving the model, move the injector too, or move both with inj.wrap().to(...))"
            )

    def _modulate(self, hook: _TargetHook, out: Any) -> Any:
        if not self._enabled:
            return out
        active = self._active
        if active is None:
            if _in_backward():
                raise RuntimeError(
                    f"prompt target {hook.name!r} is being recomputed during backward(): activation checkpointing "
                    "(torch.utils.checkpoint) of a module the injector targets, or of a module containing one, is "
                    "not supported, because the prompt exists only during the model's call. Do not checkpoint the "
                    "modules the injector targets (e.g. turn off the backbone's use_checkpoint option), or "
                    "checkpoint the whole model call instead, with backward() inside the `with inj.prompt(...)` "
                    "block (or after inj.set_prompt(...))"
                )
            raise RuntimeError(
                f"prompt target {hook.name!r} ran outside a call of the model the injector is attached to; "
                "call the model itself (the prompt is computed at its entry)"
            )
        if not isinstance(out, torch.Tensor):
            raise TypeError(
                f"target {hook.name!r} returned {type(out).__name__}, not a tensor: target a module whose output "
                "is a tensor (B, C, H, W) or (B, N, C)"
            )
        axis = channel_axis(out.ndim, getattr(hook, "axis", None))  # getattr: hooks pickled before axes
        if axis is None:
            raise ValueError(f"target {hook.name!r} returned shape {tuple(out.shape)}, which has no channel axis")
        mod = cast(_Modulator, self.modulators[hook.key])
        if out.shape[axis] != mod.channels:
            raise ValueError(
                f"target {hook.name!r} returned {out.shape[axis]} channels (axis {axis} of {tuple(out.shape)}), "
                f"but its modulator was built for {mod.channels}"
                + _axis_hint(tuple(out.shape), mod.channels, getattr(hook, "axis", None), None, prefix="; ")
            )
        scale, shift = mod(active[hook.scale_index])
        # an output of lower precision than the modulation would be promoted (refused); a higher one (a float64
        # backbone, an fp32 norm in a bf16 model) keeps its dtype
        if scale.device != out.device or torch.promote_types(out.dtype, scale.dtype) != out.dtype:
            raise ValueError(
                f"target {hook.name!r} returned a {_placement(out)} tensor, but the injector computes its modulation "
                f"on {_placement(scale)}: move the injector with {_move_hint(out)} (attach follows the model's first "
                "floating parameter; after moving the model, move the injector too, or move both with "
                "inj.wrap().to(...))"
            )
        n = scale.shape[0]
        if axis == 1:
            shape = (n, mod.channels) + (1,) * (out.ndim - 2)
        else:
            shape = (n,) + (1,) * (out.ndim - 2) + (mod.channels,)
        return out * (1 + scale.view(shape)) + shift.view(shape)

    # ---------------------------------------------------------------------------------- state
    def config(self) -> dict[str, Any]:
        """The configuration (source, widths, scales and targets) saved with the state dict."""
        return {
            "source": self.source.config(),
            "embed_dim": self.embed_dim,
            "scales": [_scale_config(sp) for sp in self._plan],
        }

    def get_extra_state(self) -> dict[str, Any]:
        return {"config": self.config()}

    def set_extra_state(self, state: Any) -> None:
        pass  # checked in load_state_dict before anything is copied

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False) -> Any:
        """Load injector weights, after checking they come from the same configuration.

        Raises:
            ValueError: missing/unexpected keys, shapes or a saved configuration that differ (nothing is
                loaded then).
        """
        own = self.state_dict()
        problems: list[str] = []
        extra = state_dict.get("_extra_state")
        if isinstance(extra, Mapping) and "config" in extra and extra["config"] != self.config():
            problems.append(f"saved configuration {extra['config']} differs from this injector's {self.config()}")
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and missing:
            problems.append(f"missing keys {missing[:8]}")
        if strict and unexpected:
            problems.append(f"unexpected keys {unexpected[:8]}")
        for k, v in state_dict.items():
            if k in own and isinstance(v, torch.Tensor) and isinstance(own[k], torch.Tensor) and v.shape != own[k].shape:
                problems.append(f"{k}: shape {tuple(v.shape)} vs {tuple(own[k].shape)}")
        if problems:
            raise ValueError("injector state dict is from another configuration: " + "; ".join(problems))
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    # ---------------------------------------------------------------------------------- helpers
    def wrap(self) -> PromptedModel:
        """The backbone and this injector in one module (for DistributedDataParallel or one optimizer).

        Raises:
            ValueError: the injector is detached.
        """
        if self.model is None:
            raise ValueError("the injector is detached: attach it before wrap()")
        return PromptedModel(self.model, self)

    def parameter_report(self, model: nn.Module | None = None) -> ParameterReport:
        """Backbone parameters against the parameters this injector adds.

        Raises:
            ValueError: detached and no ``model`` given.
        """
        model = model if model is not None else self.model
        if model is None:
            raise ValueError("the injector is detached: pass the backbone, parameter_report(model)")
        clf = getattr(self.source, "classifier", None)
        return ParameterReport(
            backbone=count_parameters(model),
            extractors=count_parameters(self.encoders),
            modulators=count_parameters(self.modulators),
            classifier=count_parameters(clf) if clf is not None else 0,
            targets=len(self.target_names),
            scales=len(self._plan),
        )

    def extra_repr(self) -> str:
        state = "attached" if self.attached else "detached"
        return f"{self.source.kind}, {len(self.target_names)} targets in {len(self._plan)} scale(s), {state}"


class PromptedModel(nn.Module):
    """A backbone and its injector as one module: ``forward`` is the backbone's.

    Its parameters are both sets, so ``DistributedDataParallel(injector.wrap())`` synchronises the
    prompt parameters too. The backbone's own ``state_dict`` is unchanged (``wrapped.model``).
    """

    def __init__(self, model: nn.Module, injector: PromptInjector) -> None:
        super().__init__()
        self.model = model
        self.injector = injector

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.model(*args, **kwargs)


def _scale_config(sp: _ScalePlan) -> dict[str, Any]:
    out: dict[str, Any] = {"name": sp.name, "part": sp.part, "targets": [[n, c] for n, _k, c in sp.targets]}
    given_axes = getattr(sp, "given_axes", {})
    if given_axes:  # only when given: configurations (and state dicts) saved before channel_axis= still match
        out["channel_axis"] = {n: given_axes[n] for n, _k, _c in sp.targets if n in given_axes}
    return out


def _check_axis(name: str, module: nn.Module, axis: int) -> None:
    """Refuse a given ``channel_axis`` that contradicts the axis the module's type puts its channels on."""
    declared = declared_channel_axis(module)
    if declared is not None and declared != axis:
        where = "first, axis 1" if declared == 1 else "last, axis -1"
        raise ValueError(
            f"target {name!r} ({type(module).__name__}): channel_axis={axis} given, but a "
            f"{type(module).__name__}'s output has its channels {where}; leave channel_axis out for this module"
        )


def _axis_hint(shape: tuple[int, ...], channels: int, axis: int | None, given: int | None, prefix: str = " ") -> str:
    """A hint to pass channel_axis= when the channels were looked for on the default axis of an output of
    unknown layout (1 for 4-/5-D, -1 for 3-D) but the other axis has them."""
    default = channel_axis(len(shape), None)
    if given is not None or axis is not None or default is None or len(shape) < 3:
        return ""
    other = -1 if default == 1 else 1
    if shape[other] == channels and shape[default] != channels:
        layout = "channels-last output (B, ..., C)" if other == -1 else "channels-first output (B, C, ...)"
        return (
            f"{prefix}(axis {other} has {channels}: for a {layout}, pass channel_axis={other}, "
            f"or inside PromptScale(channel_axis={other}) with scales=)"
        )
    example = "channels-last (B, H, W, C)" if default == 1 else "channels-first (B, C, L)"
    return (
        f"{prefix}(channels are read on axis {default} of this module's output; if it holds them on another axis, "
        f"e.g. {example}, attach with channel_axis=)"
    )


def _warn_if_channels_look_last(name: str, module: nn.Module, shape: tuple[int, ...], image: Any) -> None:
    """Warn when a module of unknown type returned a 4-D output whose axes 1-2, not its last two, have the
    input's height and width divided by one factor: channels-last ``(B, H, W, C)`` read as channels first."""
    if len(shape) != 4 or not isinstance(image, torch.Tensor) or image.ndim != 4:
        return
    h, w = image.shape[-2:]

    def spatial(a: int, b: int) -> bool:  # the input's size, reduced or enlarged (an upsampler) by one factor
        return any((h % f == 0 and w % f == 0 and (a, b) == (h // f, w // f)) or (a, b) == (h * f, w * f)
                   for f in (1, 2, 3, 4, 8, 16, 32, 64))

    if spatial(shape[1], shape[2]) and not spatial(shape[2], shape[3]):
        warnings.warn(
            f"prompt target {name!r} ({type(module).__name__}) returned {shape} for a {h}x{w} input: its axes 1-2 "
            f"look spatial, so its channels may be last, but they are read on axis 1 ({shape[1]} channels). For a "
            f"channels-last module pass channel_axis=-1; channel_axis=1 confirms channels first and silences this",
            stacklevel=4,
        )


def _dry_run(model: nn.Module, names: list[str], example_input: Any, axes: Mapping[str, int | None] | None = None,
             shapes_out: dict[str, tuple[int, ...]] | None = None) -> dict[str, int]:
    """Run ``model`` once (no grad, eval mode, restored after) and read each target's channel count
    (and, into ``shapes_out``, each target's output shape)."""
    modules = dict(model.named_modules())
    shapes: dict[str, Any] = {}

    def recorder(name: str) -> Callable[[nn.Module, tuple, Any], None]:
        def hook(_m: nn.Module, _a: tuple, out: Any) -> None:
            shapes.setdefault(name, out)
        return hook

    args = example_input if isinstance(example_input, tuple) else (example_input,)
    modes = {m: m.training for m in model.modules()}
    handles = [modules[n].register_forward_hook(recorder(n)) for n in names]
    try:
        model.eval()
        with torch.no_grad():
            model(*args)
    finally:
        for h in handles:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    out: dict[str, int] = {}
    for n in names:
        if n not in shapes:
            raise ValueError(f"target {n!r} did not run during the dry run on example_input; target modules that forward() calls")
        value = shapes[n]
        if not isinstance(value, torch.Tensor):
            raise TypeError(
                f"target {n!r} ({type(modules[n]).__name__}) returns {type(value).__name__}, not a tensor: "
                "target a module whose output is a tensor (B, C, H, W) or (B, N, C)"
            )
        axis = channel_axis(value.ndim, (axes or {}).get(n))
        if axis is None:
            raise ValueError(
                f"target {n!r} ({type(modules[n]).__name__}) returns shape {tuple(value.shape)}, which has no channel "
                "axis: target a module whose output is (B, C), (B, C, H, W), (B, C, D, H, W) or (B, N, C)"
            )
        out[n] = int(value.shape[axis])
        if shapes_out is not None:
            shapes_out[n] = tuple(value.shape)
    return out
