"""``mio-strategies data check``: validate a download against a benchmark protocol's layout."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mio_strategies.harness._config import TrainConfig, _device_name
from mio_strategies.harness._eval import reference_row
from mio_strategies.harness._loop import resolve_device
from mio_strategies.harness._protocol_run import evaluate_protocol, protocol_config, write_protocol_tables
from mio_strategies.harness._train import TrainResult, load_restorer, train
from mio_strategies.protocols import ReferenceRow, check_tree, expected_tree, get_protocol
from mio_strategies.utils.outputs import check_output_dir, prepare_output_dir
from mio_strategies.utils.signals import Interrupted, exit_code, interrupt_on_signals


def add_parser(subparsers: Any) -> None:
    """Register ``data`` (with its ``check`` sub-command)."""
    d = subparsers.add_parser(
        "data", help="benchmark data: check a download against a protocol's layout",
        description="Commands on the benchmark protocols' data (three-task, five-task, cdd11, mio-7).",
    )
    sub = d.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    c = sub.add_parser(
        "check", help="check a data root: folders, counts, pairing, unreadable and mis-sized files",
        description=(
            "Check ROOT against the protocol's expected tree: every folder present, the number of pairs per folder "
            "against the protocol's known counts, every input paired with its target by the layout's naming rule, "
            "every file readable and the size of its pair. Prints a table; exits 1 naming what is missing or wrong "
            "and where to get it."
        ),
    )
    c.add_argument("root", help="the data root (PromptIR: the repository root holding data/Train and test; AdaIR: "
                                "its data/ folder; CDD-11: the folder holding train/ and test/)")
    c.add_argument("--protocol", required=True, help="three-task, five-task, cdd11 or mio-7")
    c.add_argument("--no-counts", action="store_true", help="do not compare counts with the protocol's known ones")
    c.add_argument("--expect", action="append", default=[], metavar="FOLDER=N",
                   help="expected pairs in one folder instead of the protocol's count, e.g. train/derain=100 "
                        "(repeatable)")
    c.add_argument("--split", choices=("train", "test", "both"), default="both", help="which split to check")
    c.add_argument("--deep", action="store_true", help="decode every image (finds truncated files; slower)")
    c.add_argument("--max-listed", type=int, default=10, help="problems listed per kind (default 10)")
    c.set_defaults(func=_check)
    d.set_defaults(func=lambda args: (d.print_help(), 2)[1])


def _check(args: argparse.Namespace) -> int:
    def error(message: str) -> int:
        print(f"mio-strategies data check: error: {message}", file=sys.stderr)
        return 2

    try:
        protocol = get_protocol(args.protocol)
    except KeyError as exc:
        return error(str(exc.args[0]))
    expected: dict[str, int] = {}
    for item in args.expect:
        key, sep, value = item.partition("=")
        if not sep or not value.strip().isdigit():
            return error(f"--expect {item!r} must look like FOLDER=N, e.g. train/derain=100")
        expected[key.strip()] = int(value)
    splits = ("train", "test") if args.split == "both" else (args.split,)
    try:
        report = check_tree(protocol, args.root, counts=not args.no_counts, expected_counts=expected or None,
                            deep=args.deep, splits=splits)
    except (KeyError, FileNotFoundError) as exc:
        return error(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
    print(f"protocol {protocol.name}: {protocol.title}")
    print(report.table())
    if report.ok:
        print(f"ok: every folder of {protocol.name} is present, paired and readable")
        return 0
    folders = len({p.folder for p in report.problems})
    print(f"{len(report.problems)} problem(s) in {folders} folder(s) of {protocol.name} under {args.root}:",
          file=sys.stderr)
    print(report.summary(max_per_kind=args.max_listed), file=sys.stderr)
    if any(p.kind in ("missing-root", "missing-folder") for p in report.problems):
        print(expected_tree(protocol), file=sys.stderr)
    return 1


def train_command(cfg: TrainConfig, output: str, args: argparse.Namespace, **kwargs: Any) -> TrainResult | int:
    """:func:`train` as ``mio-strategies train`` runs it (``args``: its output, resume and progress flags), or the
    exit code of a signal that stopped it: one line on stderr (where the checkpoint is and how to resume) in
    place of a traceback, 143 for SIGTERM, 130 for SIGINT. Other errors propagate."""
    try:
        with interrupt_on_signals():  # before the loop (which stops cleanly on its own), a signal is one line
            return train(cfg, output, overwrite=args.overwrite, resume=args.resume, extend=args.extend,
                         progress=not args.no_progress, **kwargs)
    except Interrupted as exc:  # TrainingInterrupted: its message says where the checkpoint is and how to resume
        print(f"{exc}" if hasattr(exc, "checkpoint") else f"interrupted ({exc}) before training started",
              file=sys.stderr)
        return exit_code(exc.signum)
    except KeyboardInterrupt:
        print("interrupted (SIGINT)", file=sys.stderr)
        return 130


def train_protocol_command(args: argparse.Namespace, speed: list[str] | None = None) -> int:
    """``mio-strategies train --protocol NAME --data ROOT``: the protocol's preset on any backbone and strategy;
    ``speed``: the speed flags as ``key=value`` overrides (``--precision``, ``--compile``, ...)."""
    def error(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    if not (args.protocol and args.data):
        return error("--protocol and --data go together: --protocol NAME --data ROOT")
    if args.list_presets:
        return error("--list-presets does not combine with --protocol")
    try:
        cfg = protocol_config(args.protocol, args.data, args.config, [*args.overrides, *(speed or [])])
    except (KeyError, ValueError, TypeError, FileNotFoundError) as exc:
        return error(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))
    output = args.output or f"runs/{cfg.name}-{cfg.strategy.replace('+', '_')}"
    print(f"protocol {cfg.protocol}: {cfg.backbone} {cfg.strategy}, order {cfg.order}, {cfg.periods} periods x "
          f"{cfg.period_iters} iterations, batch {cfg.batch_size}, patch {cfg.patch_size}, balance {cfg.balance}")
    try:
        res = train_command(cfg, output, args)
    except (FileExistsError, FileNotFoundError, ValueError) as exc:
        return error(str(exc))
    if isinstance(res, int):
        return res
    print(f"{res.iteration} iterations ({res.iters_per_second:.2f} it/s); checkpoint: {res.checkpoint}")
    print(f"next: mio-strategies eval --protocol {cfg.protocol} --data {args.data} --checkpoint {res.checkpoint} "
          "--output <folder>")
    return 0


def eval_protocol_command(args: argparse.Namespace) -> int:
    """``mio-strategies eval --protocol NAME --data ROOT --checkpoint ...``: the protocol's table."""
    from pathlib import Path

    def error(message: str) -> int:
        print(f"error: {message}", file=sys.stderr)
        return 2

    if not (args.protocol and args.data):
        return error("--protocol and --data go together: --protocol NAME --data ROOT")
    if args.testset:
        return error("--testset and --protocol exclude each other: a protocol names its own test sets")
    unsupported = [flag for flag, used in (("--classifier", args.classifier), ("--basicsr-options", args.basicsr_options),
                                           ("--baseline", args.baseline), ("--task-source", args.task_source)) if used]
    if unsupported:
        return error(f"{', '.join(unsupported)} not supported with --protocol")
    if args.name and len(args.name) != len(args.checkpoint):
        return error(f"give one --name per --checkpoint ({len(args.checkpoint)} checkpoints, {len(args.name)} names)")
    if args.limit is not None and args.limit <= 0:
        return error(f"--limit must be a positive integer, got {args.limit}")
    try:
        protocol = get_protocol(args.protocol)
        _device_name("--device", args.device)
        device = str(resolve_device(args.device, 0, fix="--device cpu"))
    except (KeyError, ValueError) as exc:
        return error(str(exc.args[0]) if isinstance(exc, KeyError) else str(exc))
    out = Path(args.output)
    try:  # a link, a file, a foreign, non-empty or read-only folder: refused before anything is evaluated
        check_output_dir(out, overwrite=args.overwrite)
    except OSError as exc:
        return error(str(exc))
    extra = []
    if args.reference:
        if protocol.name != "mio-7":
            return error("--reference adds the seed paper's rows, which belong to --protocol mio-7; the other "
                         "protocols print their published rows by themselves")
        for ref in args.reference:
            parts = ref.split(":")
            if len(parts) not in (2, 3):
                return error(f"--reference {ref!r} must look like srresnet:M or srresnet:S+EP:out")
            split = parts[2].strip().lower() if len(parts) == 3 else "in"
            try:
                row = reference_row(parts[0].strip(), parts[1].strip().upper(), split)
            except KeyError as exc:
                return error(f"--reference {ref!r}: {exc.args[0]}")
            extra.append(ReferenceRow(
                f"paper {parts[0].strip()} {parts[1].strip().upper()} ({split}-dis)", "", "the seed paper's tables "
                "(Kong, Dong & Zhang 2024; mio_strategies.harness.paper_results)", "rgb",
                {k: (v, None) for k, v in row.items() if k != "average"}, (row["average"], None),
                note="scored on the paper's MiO100, not on this test set"))
    try:
        loaded = []
        for i, ckpt in enumerate(args.checkpoint):  # every checkpoint is loaded before any is evaluated
            restorer, cfg, _ = load_restorer(ckpt, ema=not args.no_ema, device=device)
            loaded.append((restorer, args.name[i] if args.name else f"{cfg.backbone} {cfg.strategy}"))
        labels = [n for _, n in loaded]
        if len(set(labels)) != len(labels):
            raise ValueError(f"two checkpoints share the label {labels}: pass one distinct --name per --checkpoint")
        results = [evaluate_protocol(r, protocol, args.data, name=n, device=device, limit=args.limit, progress=True)
                   for r, n in loaded]
        prepare_output_dir(out, overwrite=args.overwrite, command="eval")  # the folder is replaced
        paths = write_protocol_tables(protocol, results, out, extra_references=extra)
    except (KeyError, ValueError, OSError) as exc:
        return error(str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc))
    print(paths["markdown"].read_text(encoding="utf-8"))
    print(f"written: {', '.join(str(p) for p in paths.values())}")
    return 0
