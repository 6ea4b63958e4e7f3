"""``mio-strategies train``, ``eval`` and ``demo``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from mio_strategies.analysis import plot_psnr_bars
from mio_strategies.checkpoints import load_classifier
from mio_strategies.data import MAX_PIXELS_HELP, max_pixels_arg, open_testset, pixel_limit
from mio_strategies.harness import _demo as demo_module  # run_demo / evaluate are looked up when a command runs
from mio_strategies.harness import _eval as eval_module
from mio_strategies.harness._classifier import train_classifier
from mio_strategies.harness._config import _device_name, list_presets, load_config, parse_strategy, preset_metadata
from mio_strategies.harness._eval import IDENTITY, format_table, reference_row, write_tables
from mio_strategies.harness._loop import resolve_device
from mio_strategies.harness._protocol_cli import eval_protocol_command, train_command, train_protocol_command
from mio_strategies.harness._shipped_classifier import shipped_classifier
from mio_strategies.harness._train import load_restorer
from mio_strategies.integrations.basicsr_prompt import load_basicsr_restorer
from mio_strategies.models import describe_backbones
from mio_strategies.utils.outputs import check_output_dir, prepare_output_dir
from mio_strategies.utils.signals import Interrupted, exit_code, interrupt_on_signals


def add_parser(subparsers: Any) -> None:
    """Register the ``train``, ``train-classifier``, ``eval`` and ``demo`` sub-commands."""
    p = subparsers.add_parser(
        "train", help="train a backbone with a strategy (M, S, M+EP, S+EP, M+AP, S+AP)",
        description="Train one model as a preset or YAML config says; --set overrides any key.",
    )
    p.add_argument("--config", default=None,
                   help="preset name (see --list-presets) or a .yaml file (default: srresnet; with --resume or "
                        "--extend and --output, the run folder's own config.yaml)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set strategy=S+EP --set backbone_kwargs.num_feat=32")
    p.add_argument("--output", help="run folder (default: runs/<name>-<strategy>)")
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing run folder that mio-strategies wrote (never a file, a link or another folder)")
    p.add_argument("--resume", action="store_true", help="continue the run saved in the output folder")
    p.add_argument("--extend", action="store_true",
                   help="continue the run saved in the output folder, finished or not, into more periods "
                        "(--set periods=N); every other setting as saved")
    p.add_argument("--max-pixels", type=max_pixels_arg, default=None, metavar="N", help=MAX_PIXELS_HELP)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default=None,
                   help="autocast of the forward pass (the config's precision key; default fp32); fp16 scales the loss")
    p.add_argument("--compile", nargs="?", const="default", default=None,
                   choices=("default", "reduce-overhead", "max-autotune"), metavar="MODE",
                   help="torch.compile the backbone (prompt hooks included): default, reduce-overhead or max-autotune")
    p.add_argument("--channels-last", action="store_true", default=None, help="train in the channels-last memory format")
    p.add_argument("--synthesis", choices=("loader", "device"), default=None,
                   help="where the training data are degraded (the config's synthesis key): in the DataLoader "
                        "(loader, default) or batched on the training device (device; JPEG too with --jpeg-codec "
                        "diffjpeg, else in the loader)")
    p.add_argument("--jpeg-codec", choices=("pillow", "diffjpeg"), default=None,
                   help="JPEG codec of the training data (the config's jpeg_codec key): pillow (libjpeg, on the "
                        "CPU, per image) or diffjpeg (the reference's differentiable JPEG, batched; on the "
                        "training device with --synthesis device); default: the data implementation's (pillow "
                        "for library, diffjpeg for reference)")
    p.add_argument("--list-presets", action="store_true", help="list presets and backbones, then exit")
    p.add_argument("--protocol", help="train on a benchmark protocol's data: three-task, five-task, cdd11 or mio-7 "
                                      "(its curriculum order, periods and batch replace the preset's; --config defaults "
                                      "to restormer; needs --data)")
    p.add_argument("--data", help="the protocol's data root (check it first with `mio-strategies data check`)")
    p.set_defaults(func=_with_pixel_limit(_train))

    c = subparsers.add_parser(
        "train-classifier", help="train the task classifier that picks explicit prompts at test time",
        description="Train a TaskClassifier on degraded crops (the library's In-Dis degradations) and save it "
                    "for `mio-strategies eval --classifier`.",
    )
    c.add_argument("--output", default="classifier.pt", help="classifier file to write (default: classifier.pt)")
    c.add_argument("--images", help="folder of GT images (default: the embedded photos)")
    c.add_argument("--tasks", default="SBNJRHL", help="tasks to tell apart (letters, default SBNJRHL)")
    c.add_argument("--steps", type=int, default=2000, help="training steps (default: 2000)")
    c.add_argument("--batch-size", type=int, default=16, help="degraded crops per step (default: 16)")
    c.add_argument("--crop", type=int, default=128, help="training crop side (default: 128; the reference: 256)")
    c.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate (default: 0.001)")
    c.add_argument("--width", type=int, default=128, help="conv width (default: 128, as the reference)")
    c.add_argument("--seed", type=int, default=0,
                   help="seed of the initial weights and of the crops and degradations drawn (default: 0)")
    c.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda or cuda:N (default: auto)")
    c.add_argument("--profile", choices=("library", "reference"), default="library",
                   help="reference: the reference's classifier (--arch reference) on its data path "
                        "(--implementation reference); default: library")
    c.add_argument("--arch", choices=("library", "reference"), default=None,
                   help="library: ReLU after every conv; reference: LeakyReLU(0.1), none after the last conv "
                        "(default: the profile's)")
    c.add_argument("--implementation", choices=("library", "reference"), default=None,
                   help="degradations of the training crops (default: the profile's)")
    c.add_argument("--overwrite", action="store_true", help="replace an existing classifier file")
    c.add_argument("--max-pixels", type=max_pixels_arg, default=None, metavar="N", help=MAX_PIXELS_HELP)
    c.add_argument("--no-progress", action="store_true")
    c.set_defaults(func=_with_pixel_limit(_train_classifier))

    e = subparsers.add_parser(
        "eval", help="per-task PSNR/SSIM of checkpoints on test sets, as Markdown, CSV and JSON",
        description="Evaluate checkpoints on test sets built by `mio-strategies degrade` / build_testset.",
    )
    e.add_argument("--checkpoint", action="append", required=True, help="a run's checkpoint.pt (repeatable)")
    e.add_argument("--name", action="append", default=[],
                   help="table label of each checkpoint: one per --checkpoint, each distinct (default: "
                        "'<backbone> <strategy>', so two runs of one strategy need --name)")
    e.add_argument("--testset", help="a test-set folder: GT/ beside one folder per task and/or per composite "
                   "(blur+noise/), as `mio-strategies degrade` writes it")
    e.add_argument("--output", required=True, help="folder for results.md/.csv/.json and the bar plot")
    e.add_argument("--baseline", help="row the difference column compares to (a checkpoint's label, or 'identity'; "
                                      "default: the first checkpoint)")
    e.add_argument("--reference", action="append", default=[], metavar="BACKBONE:STRATEGY[:in|out]",
                   help="add the paper's published row, e.g. srresnet:M:in (repeatable)")
    e.add_argument("--task-source", choices=("given", "classifier"), default=None,
                   help="explicit prompts: the true task (given; the default without --classifier) or the "
                        "task classifier's prediction (classifier: --classifier FILE, else the classifier "
                        "shipped with the package; the default with --classifier)")
    e.add_argument("--classifier", metavar="FILE", help="a task-classifier file from `mio-strategies train-classifier`; explicit-"
                                        "prompt models then pick their prompt from its prediction (default with "
                                        "--task-source classifier: the classifier shipped with the package, "
                                        "trained on the embedded photos)")
    e.add_argument("--basicsr-options", metavar="YAML",
                   help="the --checkpoint files are BasicSR weights (net_g_*.pth) of a MiOPromptedNet: build the "
                        "network from this BasicSR options file (its network_g and val.size_multiple)")
    weights = e.add_mutually_exclusive_group()
    weights.add_argument("--no-ema", action="store_true",
                         help="evaluate the plain (live) weights, not the EMA (default for a run of the reference profile)")
    weights.add_argument("--ema", action="store_true",
                         help="evaluate the EMA weights (default, except for a run of the reference profile)")
    e.add_argument("--device", default="cpu", help="cpu (default), auto (CUDA when available), cuda or cuda:N")
    e.add_argument("--max-pixels", type=max_pixels_arg, default=None, metavar="N", help=MAX_PIXELS_HELP)
    e.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that mio-strategies wrote (never a file, a link or another folder)")
    e.add_argument("--protocol", help="score on a benchmark protocol's test sets (three-task, five-task, cdd11, "
                                      "mio-7) under its conventions, published rows beside; needs --data, not --testset")
    e.add_argument("--data", help="the protocol's data root")
    e.add_argument("--limit", type=int, help="with --protocol: score only the first N images of each test set")
    e.set_defaults(func=_with_pixel_limit(_eval))

    d = subparsers.add_parser(
        "demo", help="the strategies compared on the embedded photos: trained here (minutes on a CPU) or --pretrained",
        description="The main job: trains a tiny model with each strategy (or loads the shipped weights with "
                    "--pretrained), evaluates per task next to the unrestored input, prints the table, the verdicts, "
                    "the paired differences to M and the paper's claims read from them, and writes plots and a report.",
    )
    d.add_argument("--output", default=None,
                   help="demo folder (default: mio-demo, or mio-demo-pretrained with --pretrained)")
    d.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override the cpu_demo preset (e.g. --set period_iters=20 for a smoke run)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--overwrite", action="store_true",
                   help="replace an existing demo folder that mio-strategies wrote once the new demo is complete (never a "
                        "file, a link or another folder)")
    d.add_argument("--no-progress", action="store_true")
    d.add_argument("--pretrained", nargs="?", const=True, default=False, metavar="DIR",
                   help="evaluate trained weights instead of training: the weights shipped with the package, or a "
                        "folder of exported weights (M.pt, S_EP.pt, ...: mio_strategies.harness.export_weights)")
    d.add_argument("--strategies", nargs="+", default=None, metavar="STRATEGY",
                   help="the strategies compared, the first as the baseline (default: M S+EP when training; with "
                        "--pretrained, every strategy whose weights are there)")
    d.set_defaults(func=_demo)


def _with_pixel_limit(command: Any) -> Any:
    """``command`` run under ``--max-pixels`` (when given) as the limit of every image it reads."""
    def run(args: argparse.Namespace) -> int:
        if getattr(args, "max_pixels", None) is None:
            return command(args)
        with pixel_limit(args.max_pixels):
            return command(args)

    return run


def _message(exc: BaseException) -> str:
    """An exception's message, without the quotes ``str(KeyError(...))`` adds."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)


def describe_run(cfg: Any, output: str, resume: bool = False) -> str:
    """One line of what a ``train`` run will do (printed at its start, also with --no-progress)."""
    kw = ", ".join(f"{k}={v}" for k, v in cfg.backbone_kwargs.items())
    every = f"every {cfg.checkpoint_every:,} iterations" if cfg.checkpoint_every else "at the end only"
    return (f"{'resuming' if resume else 'training'} {cfg.backbone}{f' ({kw})' if kw else ''}, strategy "
            f"{cfg.strategy}: {cfg.periods} periods x {cfg.period_iters:,} = {cfg.total_iters:,} iterations, "
            f"batch {cfg.batch_size}, patch {cfg.patch_size}, device {cfg.device}; checkpoint {every}; into {output}")


def _duration(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _train(args: argparse.Namespace) -> int:
    if args.list_presets:
        print("presets:")
        for name in list_presets():
            meta = preset_metadata(name)
            hours = meta["expected"].get("h200_hours_per_strategy")
            cost = f" [one H200: {', '.join(f'{k} {v} h' for k, v in hours.items())}]" if hours else ""
            print(f"  {name:16s} {meta['description']}{cost}")
        print("backbones:\n" + describe_backbones())
        return 0
    # the speed flags are config keys: set on the preset's config, or the protocol's (which refuses those that a
    # protocol's own data does not take, with the reason)
    speed = [f"{k}={v}" for k, v in (("precision", args.precision), ("compile", args.compile),
                                      ("channels_last", args.channels_last and "true"),
                                      ("synthesis", args.synthesis), ("jpeg_codec", args.jpeg_codec)) if v]
    if args.protocol or args.data:
        return train_protocol_command(args, speed)
    config = args.config
    if config is None:
        saved = Path(args.output) / "config.yaml" if args.output else None
        config = str(saved) if (args.resume or args.extend) and saved is not None and saved.is_file() else "srresnet"
    try:
        cfg = load_config(config, [*args.overrides, *speed])
    except (KeyError, ValueError, TypeError, OSError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 2
    output = args.output or f"runs/{cfg.name}-{cfg.strategy.replace('+', '_')}"
    print(describe_run(cfg, output, resume=args.resume or args.extend), flush=True)

    def on_record(rec: dict[str, Any]) -> None:
        if rec.get("kind") == "timing":
            print(f"time per iteration {rec['seconds_per_iteration']:.3g} s over the first steps: about "
                  f"{_duration(rec['eta_seconds'])} for the remaining {rec['remaining_iterations']:,} iterations",
                  file=sys.stderr if not args.no_progress else sys.stdout, flush=True)

    try:
        res = train_command(cfg, output, args, callback=on_record)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 2
    if isinstance(res, int):
        return res
    print(f"{res.iteration} iterations ({res.iters_per_second:.2f} it/s); checkpoint: {res.checkpoint}")
    if res.validation:
        last = res.validation[-1]
        per_task = ", ".join(f"{k} {v:.2f}" for k, v in last["psnr"].items())
        print(f"validation PSNR: {per_task}; average {last['average']:.2f}")
    return 0


def _train_classifier(args: argparse.Namespace) -> int:
    try:
        run = train_classifier(
            args.output, images=args.images, tasks=args.tasks, steps=args.steps, batch_size=args.batch_size,
            crop=args.crop, lr=args.lr, width=args.width, seed=args.seed, overwrite=args.overwrite,
            progress=not args.no_progress, device=args.device, arch=args.arch or args.profile,
            implementation=args.implementation or args.profile,
        )
    except (OSError, KeyError, ValueError, TypeError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 2
    print(f"{len(run.losses)} steps; batch accuracy over the last 50 steps {run.recent_accuracy():.3f} "
          f"(training crops); classifier: {run.path}")
    return 0


def _duplicate_label(labels: list[str], checkpoints: list[str]) -> str | None:
    """The error for two checkpoints with the same table label (or one named like the identity row), or None."""
    seen: dict[str, str] = {}
    for label, ckpt in zip(labels, checkpoints):
        if label == "identity":
            return (f"the label 'identity' (checkpoint {ckpt!r}) is the unrestored input's row: give that checkpoint "
                    "another --name")
        if label in seen:
            return (f"checkpoints {seen[label]!r} and {ckpt!r} are both labelled {label!r}, so the table could not "
                    "tell them apart: pass one --name per --checkpoint, each distinct (e.g. --name 'M seed 0' "
                    "--name 'M seed 1')")
        seen[label] = ckpt
    return None


def _eval(args: argparse.Namespace) -> int:
    def error(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    if args.protocol or args.data:
        return eval_protocol_command(args)
    if args.testset is None:
        return error("give --testset (a test-set folder) or --protocol NAME --data ROOT")

    try:  # before anything is read: a device this machine lacks is one line, not a traceback mid-way
        _device_name("--device", args.device)
        args.device = str(resolve_device(args.device, 0, fix="--device cpu"))
    except ValueError as exc:
        return error(str(exc))
    task_source = args.task_source or ("classifier" if args.classifier else None)  # None: each run's own default
    if args.classifier and task_source == "given":
        return error("--classifier with --task-source given: the classifier would not be used; drop one of them")
    if args.name and len(args.name) != len(args.checkpoint):
        return error(f"give one --name per --checkpoint ({len(args.checkpoint)} checkpoints, {len(args.name)} names)")
    if args.name and (dup := _duplicate_label(args.name, args.checkpoint)):
        return error(dup)
    out = Path(args.output)
    try:  # a link, a file, a foreign, non-empty or read-only folder: refused before anything is evaluated
        check_output_dir(out, overwrite=args.overwrite)
    except OSError as exc:
        return error(str(exc))
    reference = []
    for ref in args.reference:  # every published row is looked up before anything is evaluated
        parts = ref.split(":")
        if len(parts) not in (2, 3):
            return error(f"--reference {ref!r} must look like srresnet:M or srresnet:S+EP:out")
        backbone, strategy = parts[0].strip(), parts[1].strip()
        split = parts[2].strip().lower() if len(parts) == 3 else "in"
        try:
            parse_strategy(strategy)
            strategy = strategy.upper()  # as `train` reads it: srresnet:s+ep is srresnet:S+EP
            reference_row(backbone, strategy, split)
        except (KeyError, ValueError) as exc:
            return error(f"--reference {ref!r}: {exc.args[0] if exc.args else exc}")
        reference.append((backbone, strategy, split))
    try:
        classifier = load_classifier(args.classifier) if args.classifier else None
        testset = open_testset(args.testset)  # single-task folders, then composites (blur+noise/ ...)
        loaded = []
        for i, ckpt in enumerate(args.checkpoint):  # load and check every checkpoint before evaluating any
            if args.basicsr_options:
                restorer = load_basicsr_restorer(args.basicsr_options, ckpt, param_key="params" if args.no_ema else "params_ema")
                restorer.to(args.device)
                label = f"{Path(args.basicsr_options).stem}:{Path(ckpt).stem}"
                source = task_source or "given"
            else:
                ema = True if args.ema else (False if args.no_ema else None)  # None: the run's eval_weights
                restorer, cfg, _ = load_restorer(ckpt, ema=ema, device=args.device)
                label = f"{cfg.backbone} {cfg.strategy}"
                source = task_source or cfg.eval_task_source
            if source == "classifier" and restorer.prompt == "explicit" and classifier is None:
                classifier = load_classifier(shipped_classifier())  # no --classifier: the package's own
                print(f"task classifier: the one shipped with the package ({shipped_classifier()}; trained on "
                      "the embedded photos); --classifier FILE for another", flush=True)
            loaded.append((restorer, args.name[i] if args.name else label, source))
        labels = [name for _, name, _ in loaded]
        if dup := _duplicate_label(labels, args.checkpoint):
            raise ValueError(dup)
        if args.baseline is not None and args.baseline not in (IDENTITY, *labels):
            raise ValueError(f"--baseline {args.baseline!r} is not a row of the table: rows are "
                             f"{[IDENTITY, *labels]} (a checkpoint's label, or 'identity')")
        results = [
            eval_module.evaluate(restorer, testset, name=name, device=args.device, task_source=source,
                     classifier=classifier if source == "classifier" else None, progress=True,
                     testset=str(args.testset))
            for restorer, name, source in loaded
        ]
        print(format_table(results, baseline=args.baseline, reference=reference))
        for r in results:
            if r.classifier_accuracy() is not None:
                per_task = ", ".join(f"{t} {a:.3f}" for t, a in r.classifier_accuracy_per_task().items())
                print(f"task-classifier accuracy ({r.name}): {r.classifier_accuracy():.3f} ({per_task})")
        prepare_output_dir(out, overwrite=args.overwrite, command="eval")  # the folder is replaced
        paths = write_tables(results, out, baseline=args.baseline, reference=reference)
    except (KeyError, ValueError, OSError) as exc:
        return error(_message(exc))
    try:
        single = results[0].single_tasks()  # the bar plot shows the seven tasks, not composites
        tables = {r.name: r.per_task() for r in results}
        bars = {name: {t: table[t]["psnr"] for t in single} for name, table in tables.items()}
        ident_table = results[0].per_task(identity=True)
        ident = {t: ident_table[t]["psnr"] for t in single}
        for backbone, strategy, split in reference:  # the published rows, as in the table
            row = reference_row(backbone, strategy, split)
            if all(t in row for t in single):
                bars[f"paper {backbone.removesuffix('_tiny')}-{strategy} ({split}-dis)"] = {t: row[t] for t in single}
        if single:
            plot_psnr_bars(bars, baseline=ident, path=out / "psnr_bars.png")
            paths["psnr_bars"] = out / "psnr_bars.png"
    except ImportError as exc:
        print(f"(per-task bar plot skipped: {exc})")
    print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0


def _demo(args: argparse.Namespace) -> int:
    try:
        with interrupt_on_signals():
            res = demo_module.run_demo(args.output, overrides=args.overrides, overwrite=args.overwrite,
                           progress=not args.no_progress, seed=args.seed, pretrained=args.pretrained,
                           strategies=args.strategies)
    except Interrupted as exc:
        print(f"demo interrupted: {exc}", file=sys.stderr)
        return exit_code(exc.signum)
    except KeyboardInterrupt:
        print("demo interrupted (SIGINT)", file=sys.stderr)
        return 130
    except (OSError, KeyError, ValueError, TypeError) as exc:
        print(f"error: {_message(exc)}", file=sys.stderr)
        return 2
    print(res["table"])
    if res.get("summary"):
        print(res["summary"])
    print("written: " + ", ".join(res["paths"].values()))
    return 0
