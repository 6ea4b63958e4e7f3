"""Backbone registry: the paper's SRResNet (x1), SwinIR, Restormer and PromptIR, plus tiny CPU variants.

Each registered backbone is a :class:`BackboneSpec`: how to build it, its default prompt-injection
targets (the reference's placement, as module names of the unchanged backbone), its U-Net scales for
decoder-only injection, and the multiple its input sides must have (inputs are padded for evaluation).
The registry mirrors timm's: ``register_backbone`` as a decorator, ``list_backbones("srresnet*")``
with shell wildcards, ``create_backbone(name, **overrides)``.
"""

from __future__ import annotations

import fnmatch
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import torch
from torch import nn

from mio_strategies.models._blocks import RCAB, ResidualBlockNoBN, scaled_kaiming_init
from mio_strategies.prompts import PromptScale
from mio_strategies.utils.basicsr_compat import import_basicsr
from mio_strategies.utils.validation import choice, closest_name, int_in_range, non_negative_int, positive_int

__all__ = [
    "BackboneSpec",
    "ResUNet",
    "SRResNet",
    "UnknownBackboneError",
    "backbone_spec",
    "create_backbone",
    "describe_backbones",
    "injection_plan",
    "list_backbones",
    "prompt_scales",
    "register_backbone",
]


class UnknownBackboneError(KeyError, ValueError):
    """A backbone name that is not registered. Catchable as KeyError or ValueError."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


@dataclass(frozen=True)
class BackboneSpec:
    """What the harness knows about one backbone.

    Attributes:
        name: registry name.
        build: ``build(**kwargs) -> nn.Module`` (weights drawn from the global RNG: call through
            :func:`create_backbone`, which seeds it in an isolated RNG scope).
        defaults: default keyword arguments of ``build``.
        targets: ``targets(kwargs) -> list of module names`` for prompt injection (non-U-Nets).
        scales: ``scales(kwargs) -> list of per-scale dicts`` (``{"name", "modules", "num_chs",
            "reduction"}``, decoder side only) for U-Nets, else ``None``.
        size_multiple: input sides must be a multiple of this (evaluation pads by reflection).
        requires: the optional package it needs (``"basicsr"``, ``"spandrel_extra_arches"``) or None.
        builtin_prompt: ``"adaptive"`` when the architecture itself is defined with a prompt
            (PromptIR: Restormer plus an input-conditioned prompt in the decoder); the harness then
            attaches it in every strategy, and prompt strategies (``+EP``/``+AP``) are refused.
        description: one line for listings.
    """

    name: str
    build: Callable[..., nn.Module]
    defaults: Mapping[str, Any] = field(default_factory=dict)
    targets: Callable[[Mapping[str, Any]], list[str]] | None = None
    scales: Callable[[Mapping[str, Any]], list[dict[str, Any]]] | None = None
    size_multiple: int = 1
    requires: str | None = None
    builtin_prompt: str | None = None
    description: str = ""

    def kwargs(self, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults updated by ``overrides``, with unknown keys refused.

        Raises:
            KeyError: an override the builder does not take (the message lists the valid keys).
        """
        out = dict(self.defaults)
        for key, value in (overrides or {}).items():
            if key not in self.defaults:
                close = closest_name(key, self.defaults)
                hint = f"; did you mean {close!r}?" if close else ""
                if isinstance(key, str) and ":" in key:  # YAML read "{num_feat:16}" as one key
                    hint += " (YAML needs a space after the colon: {num_feat: 16})"
                raise KeyError(
                    f"backbone {self.name!r} has no option {key!r}{hint} (options: {sorted(self.defaults)})"
                )
            out[key] = value
        return out


_REGISTRY: dict[str, BackboneSpec] = {}


def register_backbone(spec: BackboneSpec) -> BackboneSpec:
    """Add a backbone to the registry (its name must be new).

    Raises:
        ValueError: the name is already registered.

    Example:
        >>> from torch import nn
        >>> register_backbone(BackboneSpec("identity_demo", lambda: nn.Identity()))  # doctest: +SKIP
    """
    if spec.name in _REGISTRY:
        raise ValueError(f"backbone {spec.name!r} is already registered")
    _REGISTRY[spec.name] = spec
    return spec


def list_backbones(pattern: str = "*") -> list[str]:
    """Registered backbone names matching a shell wildcard pattern, sorted.

    Example:
        >>> list_backbones("srresnet*")
        ['srresnet', 'srresnet_tiny']
    """
    return sorted(n for n in _REGISTRY if fnmatch.fnmatchcase(n, pattern))


def backbone_spec(name: str) -> BackboneSpec:
    """The :class:`BackboneSpec` registered under ``name``.

    Raises:
        UnknownBackboneError: listing the registered names (and the closest one).
    """
    if not isinstance(name, str):
        raise TypeError(f"backbone name must be a str, got {type(name).__name__}")
    if name not in _REGISTRY:  # refused, with the closest registered name
        choice("backbone", name, list_backbones(), error=UnknownBackboneError)
    return _REGISTRY[name]


def create_backbone(name: str, *, seed: int = 0, **overrides: Any) -> nn.Module:
    """Build a registered backbone with weights initialised from ``seed``.

    Third-party architectures draw their initial weights from torch's global RNG; the build runs
    inside ``torch.random.fork_rng`` seeded with ``seed``, so the caller's global RNG state is left
    untouched and the same seed gives the same weights.

    Raises:
        UnknownBackboneError: unknown name. KeyError: an unknown option.
        ImportError: the optional package the backbone needs is missing (names the install).

    Example:
        >>> net = create_backbone("srresnet_tiny", num_feat=8, num_block=2)
        >>> net(torch.rand(1, 3, 16, 16)).shape
        torch.Size([1, 3, 16, 16])
    """
    spec = backbone_spec(name)
    kwargs = spec.kwargs(overrides)
    non_negative_int("seed", seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return spec.build(**kwargs)


# ------------------------------------------------------------------------------------------------
# SRResNet at x1 (the paper's backbone), in plain torch with basicsr's layout
# ------------------------------------------------------------------------------------------------
class SRResNet(nn.Module):
    """The paper's SRResNet at scale 1: conv, residual blocks, ``conv_hr``, ``conv_last``, global residual.

    basicsr's ``MSRResNet`` has no x1 path (its ``upconv1`` is missing at upscale 1), so this keeps its
    layout without the upsampler: ``conv_first`` -> LeakyReLU -> ``body.0..N-1``
    (``ResidualBlockNoBN``, basicsr's block in plain torch) -> ``conv_hr`` -> ``act_hr`` (LeakyReLU) -> ``conv_last``, plus the
    input. Module names follow MSRResNet (same state dict); ``conv_hr``'s activation is a module of its
    own, ``act_hr``, because the reference's SRResNet_EP modulates after that activation, which a hook can
    only reach on a module of its own: the prompt placement reads ``body.{i}``, ``act_hr`` and
    ``conv_last``.

    Args:
        num_in_ch: input image channels.
        num_out_ch: output image channels.
        num_feat: feature channels (paper: 64).
        num_block: residual blocks (paper: 16).

    Example:
        >>> net = SRResNet(num_feat=8, num_block=2)
        >>> net(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, num_in_ch: int = 3, num_out_ch: int = 3, num_feat: int = 64, num_block: int = 16) -> None:
        super().__init__()
        for key, v in (("num_in_ch", num_in_ch), ("num_out_ch", num_out_ch), ("num_feat", num_feat), ("num_block", num_block)):
            positive_int(key, v)
        if num_in_ch != num_out_ch:
            raise ValueError(f"the global residual needs num_in_ch == num_out_ch, got {num_in_ch} and {num_out_ch}")
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat=num_feat) for _ in range(num_block)])
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        self.act_hr = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        scaled_kaiming_init([self.conv_first, self.conv_hr, self.conv_last], 0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv_first(x))
        out = self.body(feat)
        out = self.conv_last(self.act_hr(self.conv_hr(out)))
        return out + x


def _srresnet_targets(kw: Mapping[str, Any]) -> list[str]:
    """The reference SRResNet_EP's placement: after every residual block, after conv_hr's activation, and
    on the 3-channel output."""
    return [f"body.{i}" for i in range(kw["num_block"])] + ["act_hr", "conv_last"]


_SRRESNET_DEFAULTS = {"num_in_ch": 3, "num_out_ch": 3, "num_feat": 64, "num_block": 16}

register_backbone(BackboneSpec(
    "srresnet", SRResNet, _SRRESNET_DEFAULTS, targets=_srresnet_targets,
    description="the paper's SRResNet at x1: 64 channels, 16 residual blocks, global residual (plain torch)",
))
register_backbone(BackboneSpec(
    "srresnet_tiny", SRResNet, {**_SRRESNET_DEFAULTS, "num_feat": 16, "num_block": 4},
    targets=_srresnet_targets,
    description="CPU-sized SRResNet (16 channels, 4 blocks by default; num_feat/num_block configurable)",
))


# ------------------------------------------------------------------------------------------------
# A small residual U-Net (CPU scale), in plain torch
# ------------------------------------------------------------------------------------------------
class ResUNet(nn.Module):
    """A small U-Net of residual blocks (basicsr's, in plain torch) with a global residual (the CPU mini-benchmark's U-Net).

    ``conv_first`` -> per level ``enc.{i}`` (residual blocks) then ``down.{i}`` (stride-2 conv) ->
    ``latent`` -> per level, coarse to fine, ``up.{i}`` (1x1 conv + pixel shuffle), ``fuse.{i}`` (1x1
    conv over the upsampled and skip features) and ``dec.{i}`` -> ``conv_last``, plus the input.
    Channels double per level up to 4x ``num_feat``. ``conv_last`` starts at zero, so the untrained
    network is the identity. Its receptive field covers a whole 64-px patch at 3 levels, which the
    flat SRResNet of the same cost does not.

    Args:
        num_feat: channels at full resolution.
        num_block: residual blocks per level (encoder, latent and decoder).
        levels: downsamplings, 1 to 3 (inputs are padded to a multiple of 8).
        channel_attention: use RCAN's block (residual block + channel attention, squeeze
            factor 4) instead of the plain residual block. Channel attention pools each block's
            features over the whole image, which lets a blind model tell global degradations (haze,
            low light) from dark or flat content.

    Example:
        >>> net = ResUNet(num_feat=8, num_block=1)
        >>> net(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 3, 16, 16])
    """

    def __init__(self, num_feat: int = 16, num_block: int = 2, levels: int = 3, channel_attention: bool = False) -> None:
        super().__init__()
        for key, v in (("num_feat", num_feat), ("num_block", num_block)):
            positive_int(key, v)
        int_in_range("levels", levels, 1, 3, note=" (inputs are padded to a multiple of 8)")
        if not isinstance(channel_attention, bool):
            raise TypeError(f"channel_attention must be True or False, got {channel_attention!r}")
        block: Callable[..., nn.Module]
        if channel_attention:

            def block(num_feat: int) -> nn.Module:
                return RCAB(num_feat, squeeze_factor=4)
        else:
            block = ResidualBlockNoBN
        chs = _unet_channels(num_feat, levels)
        self.levels = levels
        self.conv_first = nn.Conv2d(3, num_feat, 3, 1, 1)
        self.enc = nn.ModuleList([nn.Sequential(*[block(num_feat=chs[i]) for _ in range(num_block)]) for i in range(levels)])
        self.down = nn.ModuleList([nn.Conv2d(chs[i], chs[i + 1], 4, 2, 1) for i in range(levels)])
        self.latent = nn.Sequential(*[block(num_feat=chs[levels]) for _ in range(num_block)])
        self.up = nn.ModuleList([nn.Sequential(nn.Conv2d(chs[i + 1], chs[i] * 4, 1), nn.PixelShuffle(2)) for i in range(levels)])
        self.fuse = nn.ModuleList([nn.Conv2d(chs[i] * 2, chs[i], 1) for i in range(levels)])
        self.dec = nn.ModuleList([nn.Sequential(*[block(num_feat=chs[i]) for _ in range(num_block)]) for i in range(levels)])
        self.conv_last = nn.Conv2d(num_feat, 3, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        nn.init.zeros_(self.conv_last.weight)
        nn.init.zeros_(cast(torch.Tensor, self.conv_last.bias))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.lrelu(self.conv_first(x))
        skips = []
        for i in range(self.levels):
            feat = self.enc[i](feat)
            skips.append(feat)
            feat = self.lrelu(self.down[i](feat))
        feat = self.latent(feat)
        for i in reversed(range(self.levels)):
            feat = self.dec[i](self.fuse[i](torch.cat([self.up[i](feat), skips[i]], dim=1)))
        return self.conv_last(feat) + x


def _unet_channels(num_feat: int, levels: int) -> list[int]:
    return [num_feat * min(2**i, 4) for i in range(levels + 1)]


def _resunet_scales(kw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ResUNet's U scales: encoder levels (listed), the latent, decoder levels fine to coarse, the output."""
    levels, chs = kw["levels"], _unet_channels(kw["num_feat"], kw["levels"])
    enc = [{"name": f"encoder{i + 1}", "modules": [f"enc.{i}"], "num_chs": chs[i], "reduction": 2**i, "part": "encoder"}
           for i in range(levels)]
    latent = [{"name": "latent", "modules": ["latent"], "num_chs": chs[levels], "reduction": 2**levels, "part": "latent"}]
    dec = [{"name": f"decoder{i + 1}", "modules": [f"dec.{i}"], "num_chs": chs[i], "reduction": 2**i, "part": "decoder"}
           for i in reversed(range(levels))]
    out = [{"name": "output", "modules": ["conv_last"], "num_chs": 3, "reduction": 1, "part": "output"}]
    return enc + latent + dec + out


register_backbone(BackboneSpec(
    "unet_tiny", ResUNet, {"num_feat": 16, "num_block": 2, "levels": 3, "channel_attention": False},
    scales=_resunet_scales, size_multiple=8,
    description="CPU-sized residual U-Net (16 channels, 2 residual blocks per level, 3 levels), zero-init output; "
                "channel_attention=True uses RCAN blocks",
))


# ------------------------------------------------------------------------------------------------
# SwinIR from basicsr, x1 restoration head
# ------------------------------------------------------------------------------------------------
def _build_swinir(**kw: Any) -> nn.Module:
    swinir = import_basicsr("archs.swinir_arch")
    kw = dict(kw)
    kw["depths"] = tuple(kw["depths"])
    kw["num_heads"] = tuple(kw["num_heads"])
    if len(kw["depths"]) != len(kw["num_heads"]):
        raise ValueError(f"depths {kw['depths']} and num_heads {kw['num_heads']} must have the same length")
    with warnings.catch_warnings():
        # basicsr calls torch.meshgrid without indexing= (its default 'ij' is what it means)
        warnings.filterwarnings("ignore", message=".*torch.meshgrid.*", category=UserWarning)
        return swinir.SwinIR(upscale=1, img_range=1.0, upsampler="", **kw)


def _swinir_targets(kw: Mapping[str, Any]) -> list[str]:
    # inside each residual Swin group (after its Swin blocks), after the body, before the last layers
    return [f"layers.{i}.residual_group" for i in range(len(kw["depths"]))] + ["norm", "conv_after_body"]


_SWINIR_DEFAULTS = {
    "img_size": 128, "window_size": 8, "embed_dim": 180, "depths": (6, 6, 6, 6, 6, 6),
    "num_heads": (6, 6, 6, 6, 6, 6), "mlp_ratio": 2.0, "resi_connection": "1conv", "drop_path_rate": 0.1,
}
register_backbone(BackboneSpec(
    "swinir", _build_swinir, _SWINIR_DEFAULTS, targets=_swinir_targets, size_multiple=8, requires="basicsr",
    description="basicsr's SwinIR at x1 (img_range 1, no upsampler), 180 dims, 6 groups of 6 blocks",
))
register_backbone(BackboneSpec(
    "swinir_tiny", _build_swinir,
    {**_SWINIR_DEFAULTS, "img_size": 32, "window_size": 4, "embed_dim": 12, "depths": (1, 1),
     "num_heads": (2, 2), "drop_path_rate": 0.0},
    targets=_swinir_targets, size_multiple=4, requires="basicsr",
    description="CPU-sized SwinIR (12 dims, 2 groups of 1 block, window 4)",
))


# ------------------------------------------------------------------------------------------------
# Restormer (spandrel-extra-arches) and PromptIR built on it
# ------------------------------------------------------------------------------------------------
def _build_restormer(**kw: Any) -> nn.Module:
    try:
        from spandrel_extra_arches.architectures.Restormer import Restormer
    except ImportError as exc:
        raise ImportError(
            f"the Restormer backbone needs spandrel and spandrel-extra-arches ({exc}): "
            "`pip install mio-strategies[unet]` (or `pip install --no-deps spandrel spandrel-extra-arches safetensors einops`)"
        ) from exc
    kw = dict(kw)
    kw["num_blocks"] = list(kw["num_blocks"])
    kw["heads"] = list(kw["heads"])
    return Restormer(**kw)


def _restormer_scales(kw: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Restormer's U scales, timm-style (``name``, ``modules``, ``num_chs``, ``reduction``, ``part``).

    The encoder levels are listed for completeness; the harness injects the latent, decoder and
    output parts only (the paper's decoder-side injection, one extractor per scale).
    """
    dim = kw["dim"]
    return [
        {"name": "encoder1", "modules": ["encoder_level1"], "num_chs": dim, "reduction": 1, "part": "encoder"},
        {"name": "encoder2", "modules": ["encoder_level2"], "num_chs": dim * 2, "reduction": 2, "part": "encoder"},
        {"name": "encoder3", "modules": ["encoder_level3"], "num_chs": dim * 4, "reduction": 4, "part": "encoder"},
        {"name": "latent", "modules": ["latent"], "num_chs": dim * 8, "reduction": 8, "part": "latent"},
        {"name": "decoder3", "modules": ["decoder_level3"], "num_chs": dim * 4, "reduction": 4, "part": "decoder"},
        {"name": "decoder2", "modules": ["decoder_level2"], "num_chs": dim * 2, "reduction": 2, "part": "decoder"},
        {"name": "decoder1", "modules": ["decoder_level1", "refinement"], "num_chs": dim * 2, "reduction": 1,
         "part": "decoder"},
        {"name": "output", "modules": ["output"], "num_chs": 3, "reduction": 1, "part": "output"},
    ]


_RESTORMER_DEFAULTS = {
    "dim": 48, "num_blocks": (4, 6, 6, 8), "num_refinement_blocks": 4, "heads": (1, 2, 4, 8),
    "ffn_expansion_factor": 2.66, "bias": False, "LayerNorm_type": "WithBias",
}
_RESTORMER_TINY = {**_RESTORMER_DEFAULTS, "dim": 8, "num_blocks": (1, 1, 1, 1), "num_refinement_blocks": 1,
                   "heads": (1, 1, 1, 1), "ffn_expansion_factor": 2.0}

register_backbone(BackboneSpec(
    "restormer", _build_restormer, _RESTORMER_DEFAULTS, scales=_restormer_scales, size_multiple=8,
    requires="spandrel_extra_arches",
    description="Restormer from spandrel-extra-arches (48 dims, blocks 4/6/6/8), a 4-level U-Net",
))
register_backbone(BackboneSpec(
    "restormer_tiny", _build_restormer, _RESTORMER_TINY, scales=_restormer_scales, size_multiple=8,
    requires="spandrel_extra_arches", description="CPU-sized Restormer (8 dims, one block per level)",
))
register_backbone(BackboneSpec(
    "promptir", _build_restormer, _RESTORMER_DEFAULTS, scales=_restormer_scales, size_multiple=8,
    requires="spandrel_extra_arches", builtin_prompt="adaptive",
    description="PromptIR as Restormer + an input-conditioned prompt on the decoder scales (PromptInjector)",
))
register_backbone(BackboneSpec(
    "promptir_tiny", _build_restormer, _RESTORMER_TINY, scales=_restormer_scales, size_multiple=8,
    requires="spandrel_extra_arches", builtin_prompt="adaptive",
    description="CPU-sized PromptIR (tiny Restormer + decoder prompts)",
))


def describe_backbones() -> str:
    """A text table of the registered backbones (for ``--help`` and errors)."""
    return "\n".join(f"  {n:16s} {_REGISTRY[n].description}" for n in list_backbones())


def prompt_scales(name: str, kwargs: Mapping[str, Any] | None = None) -> list[Any]:
    """A U-Net backbone's scales as :class:`~mio_strategies.prompts.PromptScale` for ``PromptInjector.attach``.

    Example:
        >>> [s.name for s in prompt_scales("restormer", {"dim": 8})][:4]
        ['encoder1', 'encoder2', 'encoder3', 'latent']

    Raises:
        ValueError: the backbone declares plain targets rather than U scales.
    """
    plan = injection_plan(name, kwargs)
    if "scales" not in plan:
        raise ValueError(
            f"backbone {name!r} is not described by U scales; use injection_plan({name!r})['targets'] as targets="
        )
    return [
        PromptScale(s["modules"], part=s["part"], reduction=s["reduction"], name=s["name"], channels=s["num_chs"])
        for s in plan["scales"]
    ]


def injection_plan(name: str, kwargs: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The default prompt placement of a backbone: ``{"targets": [...]}`` or ``{"scales": [...]}``."""
    spec = backbone_spec(name)
    kw = spec.kwargs(kwargs)
    if spec.scales is not None:
        return {"scales": spec.scales(kw)}
    if spec.targets is not None:
        return {"targets": spec.targets(kw)}
    raise ValueError(f"backbone {name!r} declares no prompt-injection targets")

