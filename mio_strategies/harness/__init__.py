"""The reproduction harness: backbones, configs, training, evaluation, the demo.

Example:
    >>> from mio_strategies.harness import list_backbones, load_config
    >>> list_backbones("swinir*")
    ['swinir', 'swinir_tiny']
    >>> load_config("srresnet", ["strategy=S+EP"]).total_iters
    2500000
"""

from mio_strategies.harness._backbones import (
    BackboneSpec,
    SRResNet,
    UnknownBackboneError,
    backbone_spec,
    create_backbone,
    injection_plan,
    prompt_scales,
    list_backbones,
    register_backbone,
)
from mio_strategies.harness._classifier import ClassifierRun, load_classifier, train_classifier
from mio_strategies.harness._checkpoint import (
    CheckpointMismatchError,
    NotACheckpointError,
    load_checkpoint,
    save_checkpoint,
)
from mio_strategies.harness._config import STRATEGIES, TrainConfig, list_presets, load_config, parse_strategy
from mio_strategies.harness._demo import run_demo
from mio_strategies.harness._eval import EvalResult, evaluate, format_table, paper_results, write_tables
from mio_strategies.harness._metrics import psnr, ssim
from mio_strategies.harness._packed import train_packed
from mio_strategies.harness._restorer import Restorer, build_restorer
from mio_strategies.harness._train import TrainingInterrupted, TrainResult, load_restorer, train
from mio_strategies.harness._weights import export_weights, shipped_weights

__all__ = [
    "STRATEGIES",
    "BackboneSpec",
    "CheckpointMismatchError",
    "ClassifierRun",
    "EvalResult",
    "NotACheckpointError",
    "Restorer",
    "SRResNet",
    "TrainConfig",
    "TrainResult",
    "TrainingInterrupted",
    "UnknownBackboneError",
    "backbone_spec",
    "build_restorer",
    "create_backbone",
    "evaluate",
    "export_weights",
    "format_table",
    "injection_plan",
    "prompt_scales",
    "list_backbones",
    "list_presets",
    "load_checkpoint",
    "load_classifier",
    "load_config",
    "load_restorer",
    "paper_results",
    "parse_strategy",
    "psnr",
    "register_backbone",
    "run_demo",
    "save_checkpoint",
    "shipped_weights",
    "ssim",
    "train",
    "train_classifier",
    "train_packed",
    "write_tables",
]
