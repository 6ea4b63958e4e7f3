"""PromptInjector: prompt modulation attached to any nn.Module by forward hooks."""

from __future__ import annotations

import copy
import itertools
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from ..utils.validation import is_int, positive_int
from ._channel_axes import _check_axis
from ._hooks import (
    _EntryHook,
    _ExitHook,
    _first_tensor,
    _in_backward,
    _input_position,
    _missing_input,
    _our_hooks,
    _TargetHook,
)
from ._init import check_generator, default_generator
from ._modulation import _check_image, _modulate, _Modulator
from ._plan import DEFAULT_PARTS, PARTS, PromptScale, _plan_for, _scale_config, _ScalePlan
from ._report import ParameterReport, count_parameters
from ._sources import AdaptivePrompt, ExplicitPrompt, PromptSource, _Spec
from ._targets import TargetSpec, channels_from_module, declared_channel_axis

__all__ = ["PARTS", "PromptInjector", "PromptScale", "PromptedModel"]


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

    def __init__(
        self,
        source: PromptSource,
        plan: list[_ScalePlan],
        *,
        embed_dim: int = 64,
        generator: torch.Generator | None = None,
        input_arg: int | str = 0,
    ) -> None:
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
        positive_int("embed_dim", embed_dim)
        if not (is_int(input_arg) or isinstance(input_arg, str)):
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
        plan = cls._plan_for(
            model, prompt, targets, scales, parts, channels, example_input, input_arg, position, channel_axis
        )
        injector = cls(prompt, plan, embed_dim=embed_dim, generator=generator, input_arg=input_arg)
        ref = next((t for t in itertools.chain(model.parameters(), model.buffers()) if t.is_floating_point()), None)
        if ref is not None:  # follow the backbone (a bf16 / CUDA model gets a bf16 / CUDA injector)
            injector.to(device=ref.device, dtype=ref.dtype)
        injector._register(model)
        return injector

    _plan_for = staticmethod(_plan_for)  # target planning: _plan.py

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
            raise ValueError(
                f"init must be 'zero' (identity at attach) or 'default' (PyTorch's nn.Linear init), got {init!r}"
            )
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
            raise ValueError(
                f"{type(model).__name__} already has a PromptInjector attached: use PromptInjector.of(model)"
            )
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
        if image is None and (
            isinstance(source, AdaptivePrompt) or (explicit_without_task and source.classifier is not None)
        ):
            who = "AdaptivePrompt" if isinstance(source, AdaptivePrompt) else "the task classifier"
            raise ValueError(
                f"{who} needs the model's input image, but " + _missing_input(args, kwargs, self.input_arg, position)
            )
        if image is not None and isinstance(source, AdaptivePrompt):
            self._check_image(image)
        ctx = source.context(image, self._spec)
        self._active = [source.encode(enc, ctx) for enc in self.encoders]

    _check_image = _check_image  # the modulation hook's work: _modulation.py

    _modulate = _modulate

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
            if (
                k in own
                and isinstance(v, torch.Tensor)
                and isinstance(own[k], torch.Tensor)
                and v.shape != own[k].shape
            ):
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
