"""Prompt learning attached to any backbone by forward hooks.

- :class:`PromptInjector` hooks ``out * (1 + scale) + shift`` modulation onto chosen modules of any
  ``nn.Module`` (exact names, suffixes, regexes or module types), or onto the scales of a U-Net
  (:class:`PromptScale`), without changing the backbone's forward signature or state dict.
- :class:`ExplicitPrompt`: one fixed prompt per task, selected per sample, mixed with weights, or
  predicted by a :class:`TaskClassifier`. :class:`AdaptivePrompt`: the input image is the prompt.

Example:
    >>> import torch
    >>> from torch import nn
    >>> from mio_strategies.prompts import ExplicitPrompt, PromptInjector
    >>> net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))
    >>> with PromptInjector.attach(net, ExplicitPrompt(), targets=["0", "2"]) as inj:
    ...     with inj.prompt(task="noise"):
    ...         y = net(torch.rand(1, 3, 16, 16))
    >>> y.shape
    torch.Size([1, 3, 16, 16])
"""

from __future__ import annotations

from ._classifier import ClassifierHistory, TaskClassifier, classifier_accuracy, train_task_classifier
from ._extractor import PromptExtractor
from ._injector import PARTS, PromptedModel, PromptInjector, PromptScale
from ._maps import REFERENCE_MAP_ORDER, load_reference_prompt_maps
from ._report import ParameterReport
from ._sources import AdaptivePrompt, ExplicitPrompt, PromptSource

__all__ = [
    "PromptInjector",
    "PromptScale",
    "PromptedModel",
    "PARTS",
    "PromptSource",
    "ExplicitPrompt",
    "AdaptivePrompt",
    "PromptExtractor",
    "TaskClassifier",
    "train_task_classifier",
    "classifier_accuracy",
    "ClassifierHistory",
    "ParameterReport",
    "load_reference_prompt_maps",
    "REFERENCE_MAP_ORDER",
]
