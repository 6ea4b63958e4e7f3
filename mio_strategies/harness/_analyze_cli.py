"""The ``mio-strategies analyze`` sub-command: DDR projection + CHI of a model over a test set.

Writes ``<output-dir>/ddr.png`` (the scatter plot coloured by task, CHI in the title) and
``<output-dir>/ddr.json`` (CHI of the embedding and of the features, N, method, module, seed,
per-task counts, and what was analysed).

The model is a ``mio-strategies train`` checkpoint (read by the harness' loader, EMA weights by
default; explicit prompts get each image's true task), or ``--model module:factory`` with an
optional plain state dict. The test set is a folder read by
:class:`~mio_strategies.data.PairedFolderDataset` (``GT/`` beside one folder per task).

Example:
    mio-strategies analyze --checkpoint runs/srresnet-S_EP/checkpoint.pt \\
        --testset testsets/mio100_in --module body.15 --method umap --output-dir out/
    mio-strategies analyze --model mypkg.models:build_srresnet --checkpoint net.pt \\
        --testset testsets/mio100_in --module body.15 --method umap --output-dir out/
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from mio_strategies.analysis import (
    DDRResult,
    capture_features,
    iter_image_batches,
    plot_ddr,
    require,
    resolve_module,
)
from mio_strategies.data import MAX_PIXELS_HELP, PairedFolderDataset, max_pixels_arg, pixel_limit
from mio_strategies.harness._analyze_model import _load_model, _load_train_checkpoint
from mio_strategies.utils.outputs import check_output_dir, prepare_output_dir

__all__ = ["add_parser", "run"]


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register the ``analyze`` sub-command (sets ``func=run``)."""
    p = subparsers.add_parser(
        "analyze",
        help="DDR projection and Calinski-Harabasz index of a layer over a test set",
        description=(
            "Capture globally pooled features of one layer for every image of a test set, embed them in 2-D "
            "(UMAP, t-SNE or PCA) and write a scatter plot coloured by task with the Calinski-Harabasz index "
            "(ddr.png) and the figures as JSON (ddr.json). Needs the analysis extra: "
            "pip install mio-strategies[analysis]."
        ),
    )
    p.add_argument("--model", default=None, metavar="MODULE:FACTORY",
                   help="import path of a callable returning the nn.Module, e.g. mypkg.nets:build "
                        "(leave out for a `mio-strategies train` checkpoint, which names its backbone)")
    p.add_argument("--checkpoint", type=Path, default=None, metavar="FILE.pt",
                   help="a `mio-strategies train` checkpoint.pt, or with --model a state dict (or a dict "
                        "with 'params'/'state_dict'/'model'); read with weights_only=True")
    p.add_argument("--checkpoint-key", default=None, metavar="KEY",
                   help="with --model: entry of the checkpoint dict holding the state dict (e.g. params_ema)")
    p.add_argument("--no-ema", action="store_true",
                   help="train checkpoints: analyse the live weights, not the EMA")
    p.add_argument("--testset", required=True, type=Path, metavar="DIR",
                   help="test set folder: GT/ beside one folder per task (mio-strategies degrade output)")
    p.add_argument("--module", required=True, metavar="NAME",
                   help="submodule name as in model.named_modules() ('' for the model output; for a train "
                        "checkpoint, names of its backbone)")
    p.add_argument("--method", default="umap", choices=("umap", "tsne", "pca"), help="2-D projection (default: umap)")
    p.add_argument("--seed", type=int, default=0, help="projection seed (default: 0)")
    p.add_argument("--batch-size", type=int, default=16, help="images per forward pass (default: 16)")
    p.add_argument("--device", default="cpu", help="torch device (default: cpu)")
    p.add_argument("--title", default=None,
                   help="plot title (default: the model spec, or the checkpoint's backbone and strategy)")
    p.add_argument("--output-dir", required=True, type=Path, metavar="DIR", help="where ddr.png and ddr.json go")
    p.add_argument("--max-pixels", type=max_pixels_arg, default=None, metavar="N", help=MAX_PIXELS_HELP)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that mio-strategies wrote (never a file, a link or another folder)")
    p.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    p.set_defaults(func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run the analysis described by parsed ``analyze`` arguments; returns the exit code."""
    try:
        with pixel_limit(args.max_pixels) if getattr(args, "max_pixels", None) is not None else contextlib.nullcontext():
            return _run(args)
    except (ValueError, TypeError, KeyError, OSError, ImportError) as exc:
        msg = str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"mio-strategies analyze: error: {msg}", file=sys.stderr)
        return 2


def _run(args: argparse.Namespace) -> int:
    # a link, a file, a foreign, non-empty or read-only folder: refused before the (long) capture
    check_output_dir(args.output_dir, overwrite=args.overwrite)
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    _check_device(args.device)
    if args.model is None and args.checkpoint is None:
        raise ValueError("give --checkpoint run/checkpoint.pt (from mio-strategies train) or --model MODULE:FACTORY")
    if args.model is None and args.checkpoint_key is not None:
        raise ValueError("--checkpoint-key is for plain state dicts given with --model; a train checkpoint needs none")
    # fail early, before the (long) capture, if the extra is missing
    require("sklearn.metrics", feature="mio-strategies analyze")
    require("matplotlib.figure", feature="mio-strategies analyze")
    if args.method == "umap":
        require("umap", feature="mio-strategies analyze --method umap")

    dataset = PairedFolderDataset(args.testset)
    model: torch.nn.Module
    if args.model is None:
        model, label = _load_train_checkpoint(args.checkpoint, ema=not args.no_ema)
        module = resolve_module(model.backbone, args.module)[1]  # names are the backbone's own
    else:
        model, label = _load_model(args.model, args.checkpoint, key=args.checkpoint_key), args.model
        module = args.module
    model = model.to(torch.device(args.device))

    with tqdm(total=len(dataset), unit="img", desc="analyze", disable=args.no_progress) as bar:
        captured = capture_features(
            model,
            iter_image_batches(dataset, args.batch_size),
            module,
            device=args.device,
            progress=bar,
            pass_task=args.model is None,
        )
    result = DDRResult.from_features(
        captured.features, captured.labels, method=args.method, seed=args.seed, module=args.module
    )

    prepare_output_dir(args.output_dir, overwrite=args.overwrite, command="analyze")
    png = args.output_dir / "ddr.png"
    plot_ddr(result, title=args.title if args.title is not None else label, path=png)
    summary = {
        **result.summary(),
        "model": label,
        "checkpoint": str(args.checkpoint) if args.checkpoint is not None else None,
        "testset": str(args.testset),
        "preset": (dataset.manifest or {}).get("preset"),
        "plot": png.name,
    }
    json_path = args.output_dir / "ddr.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    print(f"CHI {result.chi:.2f} ({result.method}, {summary['n']} images, module {args.module!r}) -> {png}, {json_path}")
    return 0


def _check_device(spec: str) -> None:
    """Refuse an unparsable ``--device`` or an unavailable CUDA device with a ValueError (exit code 2)."""
    try:
        device = torch.device(spec)
    except (RuntimeError, ValueError, TypeError) as exc:
        raise ValueError(f"--device {spec!r} is not a torch device ({exc}); use cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"--device {spec!r}: CUDA is not available on this machine; use --device cpu")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(
                f"--device {spec!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})"
            )
    elif device.type == "mps":
        if not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
            raise ValueError(f"--device {spec!r}: MPS is not available on this machine; use --device cpu")
    elif device.type == "meta":
        raise ValueError(f"--device {spec!r} holds no data and cannot run a model; use cpu, cuda or cuda:N")
    elif device.type != "cpu":
        # other backends (xpu, ...) are left to torch, but still must not end in a raw traceback
        backend = getattr(torch, device.type, None)
        is_available = getattr(backend, "is_available", None)
        if callable(is_available) and not is_available():
            raise ValueError(f"--device {spec!r}: {device.type} is not available on this machine; use --device cpu")
