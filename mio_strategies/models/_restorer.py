"""A backbone plus its prompt injector, as one object the loop, evaluation and demo call."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from typing import Any

import torch
from torch import nn

from mio_strategies.models._backbones import backbone_spec, create_backbone, injection_plan, prompt_scales
from mio_strategies.prompts import (
    AdaptivePrompt,
    ExplicitPrompt,
    PromptInjector,
    PromptSource,
    load_reference_prompt_maps,
)
from mio_strategies.tasks import NUM_TASKS
from mio_strategies.utils.rng import derive_seed
from mio_strategies.utils.tiling import pad_to_multiple, tiled_apply
from mio_strategies.utils.validation import choice

__all__ = ["Restorer", "build_restorer", "pad_to_multiple"]


class Restorer:
    """``backbone`` with an optional :class:`~mio_strategies.prompts.PromptInjector`.

    Call it as ``restorer(lq, task=ids)``: with an explicit prompt the task ids select the prompt, a
    float tensor of mixing weights ``(B, num_tasks)`` or ``(num_tasks,)`` mixes the tasks' prompts (as
    for composite degradations), and ``None`` lets the injector's task classifier decide; adaptive
    prompts read the input itself.
    :meth:`restore` pads inputs to the backbone's size multiple (reflection) and crops back.

    Attributes:
        backbone: the unchanged backbone module.
        injector: the prompt injector, or None for strategies without prompts.
        prompt: ``"explicit"``, ``"adaptive"`` or None.
        size_multiple: input sides must be multiples of it.
    """

    def __init__(self, backbone: nn.Module, injector: Any = None, prompt: str | None = None, size_multiple: int = 1) -> None:
        if (injector is None) != (prompt is None):
            raise ValueError("an injector needs its prompt kind, and a prompt kind needs an injector")
        self.backbone = backbone
        self.injector = injector
        self.prompt = prompt
        self.size_multiple = size_multiple

    # -- parameters and state --------------------------------------------------------------------
    def modules(self) -> list[nn.Module]:
        """The trainable modules: the backbone, then the injector when there is one."""
        return [self.backbone] + ([self.injector] if self.injector is not None else [])

    def parameters(self) -> list[nn.Parameter]:
        """Every trainable parameter (backbone and prompt), each once, in a fixed order."""
        seen: set[int] = set()
        out = []
        for m in self.modules():
            for p in m.parameters():
                if id(p) not in seen:
                    seen.add(id(p))
                    out.append(p)
        return out

    def state_dict(self) -> dict[str, Any]:
        """``{"backbone": ..., "injector": ...}`` (the backbone's keys are its own, unchanged)."""
        return {
            "backbone": self.backbone.state_dict(),
            "injector": self.injector.state_dict() if self.injector is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Load :meth:`state_dict` output.

        Raises:
            ValueError: a prompt state for a model without prompts, or the reverse.
        """
        if (state.get("injector") is None) != (self.injector is None):
            have = "has" if self.injector is not None else "has no"
            raise ValueError(f"the model {have} a prompt injector but the saved state does not match")
        self.backbone.load_state_dict(state["backbone"])
        if self.injector is not None:
            self.injector.load_state_dict(state["injector"])

    def train(self, mode: bool = True) -> Restorer:
        for m in self.modules():
            m.train(mode)
        return self

    def eval(self) -> Restorer:
        return self.train(False)

    def to(self, device: torch.device | str) -> Restorer:
        for m in self.modules():
            m.to(device)
        return self

    # -- forward ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _prompt_scope(self, task: torch.Tensor | None) -> Iterator[None]:
        if self.prompt == "explicit" and task is not None:
            mixture = isinstance(task, torch.Tensor) and task.dtype.is_floating_point
            with self.injector.prompt(**{"weights" if mixture else "task": task}):
                yield
        else:
            yield

    def __call__(self, lq: torch.Tensor, task: torch.Tensor | None = None) -> torch.Tensor:
        with self._prompt_scope(task):
            return self.backbone(lq)

    def restore(self, lq: torch.Tensor, task: torch.Tensor | None = None, *, tile: int | None = None,
                overlap: int = 32) -> torch.Tensor:
        """Restore ``lq`` of any size: padded to the size multiple (reflection), cropped back to its size.

        With ``tile``, the backbone sees one ``tile x tile`` crop at a time (tiles overlapping by at least
        ``overlap`` pixels and blended, see :func:`~mio_strategies.utils.tiling.tiled_apply`), so memory is
        bounded by the tile; ``lq`` and the result stay on ``lq``'s device while each tile goes to the
        model's. An explicit prompt (``task``) applies to every tile; an adaptive prompt is read from each tile.

        Args:
            lq: ``(B, 3, H, W)`` degraded images in [0, 1].
            task: as for calling the restorer (task ids, a mixture, or None).
            tile: the tile side, rounded up to the size multiple; None restores the whole image at once.
            overlap: the least overlap of neighbouring tiles (``0 <= overlap < tile / 2``).

        Returns:
            ``(B, 3, H, W)`` on ``lq``'s device.

        Raises:
            ValueError: a tile or overlap out of range.

        Example:
            >>> r = build_restorer("srresnet_tiny", None)
            >>> with torch.no_grad():
            ...     r.restore(torch.rand(1, 3, 150, 97), tile=64, overlap=16).shape
            torch.Size([1, 3, 150, 97])
        """
        m = self.size_multiple
        if tile is not None:
            tile = -(-int(tile) // m) * m
        params = self.parameters()
        device = params[0].device if params else lq.device
        with self._prompt_scope(None if task is None else task.to(device)):
            return tiled_apply(lambda t: self.backbone(t.to(device)), lq, tile, overlap, m)


def _build_injector(backbone: nn.Module, name: str, kwargs: Mapping[str, Any], prompt: str, *, seed: int,
                    prompt_size: int, size_multiple: int, prompt_maps: str | None = None) -> Any:
    source: PromptSource
    choice("prompt", prompt, ("explicit", "adaptive"), what="prompt kind", plural="kinds")
    if prompt == "explicit" and prompt_maps is not None:
        source = ExplicitPrompt(NUM_TASKS, maps=load_reference_prompt_maps(prompt_maps))
    elif prompt == "explicit":
        source = ExplicitPrompt(NUM_TASKS, size=prompt_size, generator=torch.Generator().manual_seed(seed))
    else:
        source = AdaptivePrompt(3)
    plan = injection_plan(name, kwargs)
    side = max(16, 2 * size_multiple)
    example = torch.zeros(1, 3, side, side)
    gen = torch.Generator().manual_seed(seed + 1)
    if "scales" in plan:
        scales = prompt_scales(name, kwargs)
        return PromptInjector.attach(backbone, source, scales=scales, example_input=example, generator=gen)
    return PromptInjector.attach(backbone, source, targets=plan["targets"], example_input=example, generator=gen)


def build_restorer(
    backbone: str,
    strategy_prompt: str | None,
    *,
    backbone_kwargs: Mapping[str, Any] | None = None,
    seed: int = 0,
    prompt_size: int = 128,
    prompt_init: str = "library",
    prompt_maps: str | None = None,
) -> Restorer:
    """Build a backbone (weights from ``seed``) and attach the prompt of the strategy, if any.

    Args:
        backbone: registry name.
        strategy_prompt: ``"explicit"``, ``"adaptive"`` or None (the backbone's built-in prompt,
            e.g. PromptIR's, is added by itself).
        backbone_kwargs: backbone option overrides.
        seed: initial weights (backbone and prompt modules), so paired runs start equal.
        prompt_size: side of the explicit prompt maps.
        prompt_init: ``"library"``: modulators at zero (the prompt starts as the identity), the backbone's
            own init. ``"reference"``: the reference's EP/AP models: PyTorch's default init of the modulators
            and, for SRResNet, of ``conv_first`` / ``conv_hr`` / ``conv_last`` (not scaled by 0.1); only with a
            prompt (a plain backbone is the same in both).
        prompt_maps: a reference-format explicit prompt map file (see
            :func:`~mio_strategies.prompts.load_reference_prompt_maps`) instead of seeded maps.

    Example:
        >>> r = build_restorer("srresnet_tiny", None)
        >>> r(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 16, 16])
    """
    spec = backbone_spec(backbone)
    kwargs = spec.kwargs(backbone_kwargs)
    net = create_backbone(backbone, seed=seed, **kwargs)
    prompt = strategy_prompt or spec.builtin_prompt
    choice("prompt_init", prompt_init, ("library", "reference"), plural="values")
    if prompt_maps is not None and prompt != "explicit":
        raise ValueError(f"prompt_maps is for explicit prompts, but this model's prompt is {prompt!r}")
    injector = None
    if prompt is not None:
        injector = _build_injector(
            net, backbone, kwargs, prompt, seed=seed, prompt_size=prompt_size, size_multiple=spec.size_multiple,
            prompt_maps=prompt_maps,
        )
        if prompt_init == "reference":
            _reference_init(net, injector, backbone, seed)
    return Restorer(net, injector, prompt, spec.size_multiple)


#: backbones whose reference EP/AP models leave some convs at PyTorch's default init where the library's
#: backbone scales them (basicsr's default_init_weights(..., 0.1))
_REFERENCE_DEFAULT_INIT_CONVS = {
    "srresnet": ("conv_first", "conv_hr", "conv_last"),
    "srresnet_tiny": ("conv_first", "conv_hr", "conv_last"),
}


_INIT_STREAM = 0x1417  # key of the reference initialisation's random stream


@torch.no_grad()
def _reference_init(net: nn.Module, injector: Any, backbone: str, seed: int) -> None:
    """The reference's initialisation of a prompted model: PyTorch defaults for the modulators and convs."""
    injector.reset_modulators("default", generator=torch.Generator().manual_seed(derive_seed(seed, _INIT_STREAM)))
    names = _REFERENCE_DEFAULT_INIT_CONVS.get(backbone, ())
    if names:
        with torch.random.fork_rng(devices=[]):  # reset_parameters draws from the global RNG: fork it
            torch.manual_seed(derive_seed(seed, _INIT_STREAM, 1))
            for n in names:
                getattr(net, n).reset_parameters()
