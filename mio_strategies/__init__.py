"""mio-strategies: sequential and prompt learning for multiple-in-one image restoration.

The package face is a handful of names, imported lazily so that ``import mio_strategies`` stays
light (no scikit-learn, matplotlib or basicsr until a feature that needs them is used).
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_LAZY: dict[str, str] = {
    "TASKS": "mio_strategies.tasks",
    "get_task": "mio_strategies.tasks",
    "parse_tasks": "mio_strategies.tasks",
    "degrade": "mio_strategies.degradations",
    "degrade_sequence": "mio_strategies.degradations",
    "DegradationPipeline": "mio_strategies.degradations",
    "MiODataset": "mio_strategies.data",
    "SequentialCurriculumSampler": "mio_strategies.curriculum",
    "Curriculum": "mio_strategies.curriculum",
    "CurriculumCallbacks": "mio_strategies.curriculum",
    "period_cosine_lr": "mio_strategies.curriculum",
    "PromptInjector": "mio_strategies.prompts",
    "ExplicitPrompt": "mio_strategies.prompts",
    "AdaptivePrompt": "mio_strategies.prompts",
    "PromptScale": "mio_strategies.prompts",
    "TaskClassifier": "mio_strategies.prompts",
    "train_task_classifier": "mio_strategies.prompts",
    "ddr": "mio_strategies.analysis",
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'mio_strategies' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
