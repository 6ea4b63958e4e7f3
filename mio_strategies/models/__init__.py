"""Backbones and the restorer: the registry of restoration networks, their prompt placements, and a backbone
with its prompt injector as one callable model.

The layer above the core (``tasks``, ``utils``, ``degradations``, ``curriculum``, ``prompts``) and below the
application (:mod:`mio_strategies.harness`): models never import data, metrics, checkpoints or the harness.
Third-party architectures (basicsr's SwinIR, spandrel's Restormer) are imported only when built.

Example:
    >>> from mio_strategies.models import create_backbone, list_backbones
    >>> list_backbones("srresnet*")
    ['srresnet', 'srresnet_tiny']
    >>> create_backbone("srresnet_tiny", num_feat=8, num_block=1).conv_first.out_channels
    8
"""

from mio_strategies.models._backbones import (
    BackboneSpec,
    ResUNet,
    SRResNet,
    UnknownBackboneError,
    backbone_spec,
    create_backbone,
    describe_backbones,
    injection_plan,
    list_backbones,
    prompt_scales,
    register_backbone,
)
from mio_strategies.models._restorer import Restorer, build_restorer, pad_to_multiple

__all__ = [
    "BackboneSpec",
    "ResUNet",
    "Restorer",
    "SRResNet",
    "UnknownBackboneError",
    "backbone_spec",
    "build_restorer",
    "create_backbone",
    "describe_backbones",
    "injection_plan",
    "list_backbones",
    "pad_to_multiple",
    "prompt_scales",
    "register_backbone",
]
