"""The reproduction harness, the application layer: configs, training, evaluation, the demo, the CLI.

Backbones (:mod:`mio_strategies.models`), metrics (:mod:`mio_strategies.metrics`) and checkpoint files
(:mod:`mio_strategies.checkpoints`) live in their own packages below; their names are re-exported here.

Example:
    >>> from mio_strategies.harness import list_backbones, load_config
    >>> list_backbones("swinir*")
    ['swinir', 'swinir_tiny']
    >>> load_config("srresnet", ["strategy=S+EP"]).total_iters
    2500000
"""

from mio_strategies.checkpoints import (
    CheckpointMismatchError,
    NotACheckpointError,
    load_checkpoint,
    load_classifier,
    save_checkpoint,
)
from mio_strategies.harness._classifier import ClassifierRun, train_classifier
from mio_strategies.harness._config import STRATEGIES, TrainConfig, list_presets, load_config, parse_strategy
from mio_strategies.harness._demo import run_demo
from mio_strategies.harness._eval import EvalResult, evaluate, format_table, paper_results, write_tables
from mio_strategies.harness._loop import TrainingInterrupted, TrainResult
from mio_strategies.harness._packed import train_packed
from mio_strategies.harness._restore import RestoreReport, restore_images
from mio_strategies.harness._shipped_classifier import shipped_classifier
from mio_strategies.harness._train import load_restorer, train
from mio_strategies.harness._weights import export_weights, shipped_weights
from mio_strategies.harness.sweep import RunSpec, Sweep
from mio_strategies.metrics import psnr, ssim
from mio_strategies.models import (
    BackboneSpec,
    Restorer,
    SRResNet,
    UnknownBackboneError,
    backbone_spec,
    build_restorer,
    create_backbone,
    injection_plan,
    list_backbones,
    prompt_scales,
    register_backbone,
)

__all__ = [
    "STRATEGIES",
    "BackboneSpec",
    "CheckpointMismatchError",
    "ClassifierRun",
    "EvalResult",
    "NotACheckpointError",
    "RestoreReport",
    "Restorer",
    "RunSpec",
    "SRResNet",
    "Sweep",
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
    "restore_images",
    "run_demo",
    "save_checkpoint",
    "shipped_classifier",
    "shipped_weights",
    "ssim",
    "train",
    "train_classifier",
    "train_packed",
    "write_tables",
]
