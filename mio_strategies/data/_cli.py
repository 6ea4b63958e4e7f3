"""``mio-strategies degrade``: build a degraded test set from a folder of GT images."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from mio_strategies.data._io import MAX_PIXELS_HELP, ImageReadError, embedded_image_paths, max_pixels_arg
from mio_strategies.data._testsets import build_testset
from mio_strategies.utils.signals import Interrupted, exit_code, interrupt_on_signals


def add_parser(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "degrade",
        help="synthesize degraded versions of GT images (a MiO test set with a manifest)",
        description=(
            "Degrade every image of --input by every task and write PNG folders per task plus "
            "manifest.json with every sampled parameter. Without --input, the images embedded in "
            "the package are used."
        ),
    )
    p.add_argument("--input", help="folder of GT images (default: the embedded photographs)")
    p.add_argument("--output", required=True, help="destination folder (refused if not empty, see --overwrite)")
    p.add_argument("--tasks", default="SBNJRHL", help="task letters or comma-separated names (default: SBNJRHL)")
    p.add_argument("--preset", default="in", choices=["in", "out"], help="In-Dis (training) or Out-Dis ranges")
    p.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    p.add_argument(
        "--composite",
        action="append",
        default=[],
        metavar="A+B",
        help="also write a composite of two or more tasks applied in order, e.g. blur+noise (repeatable)",
    )
    p.add_argument(
        "--implementation",
        choices=["library", "reference"],
        default="library",
        help="library: the library's degradations (default); reference: the official code's test inputs (MATLAB-made "
        "LR files upsampled by PyTorch bicubic for SR, basicsr's DiffJPEG model for JPEG, GT cropped to multiples of 4)",
    )
    p.add_argument("--on-error", choices=["stop", "skip"], default="stop",
                   help="on an unreadable image: stop, or report and skip it")
    p.add_argument("--max-pixels", type=max_pixels_arg, default=None, metavar="N", help=MAX_PIXELS_HELP)
    p.add_argument("--overwrite", action="store_true",
                   help="replace an existing output folder that mio-strategies wrote (never a file, a link or another folder)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    images = args.input if args.input is not None else embedded_image_paths()
    try:
        with interrupt_on_signals():  # SIGTERM too: the staging folder is removed, the old output kept
            report = build_testset(
                images,
                args.output,
                tasks=args.tasks,
                preset=args.preset,
                seed=args.seed,
                composites=args.composite,
                overwrite=args.overwrite,
                on_error="raise" if args.on_error == "stop" else "skip",
                progress=True,
                implementation=args.implementation,
                **({} if args.max_pixels is None else {"max_pixels": args.max_pixels}),
            )
    except Interrupted as exc:
        print(f"mio-strategies degrade: interrupted ({exc}): nothing was written, {args.output!r} is as it was",
              file=sys.stderr)
        return exit_code(exc.signum)
    except KeyboardInterrupt:
        print(f"mio-strategies degrade: interrupted: nothing was written, {args.output!r} is as it was", file=sys.stderr)
        return 130
    except (ImageReadError, OSError, ValueError, KeyError) as exc:
        print(f"mio-strategies degrade: error: {_message(exc)}", file=sys.stderr)
        return 1
    for name, why in report.skipped.items():
        print(f"skipped {name}: {why}", file=sys.stderr)
    print(f"wrote {report.num_pairs} degraded images of {len(report.images)} GT images to {report.root}")
    print(f"manifest: {report.root / 'manifest.json'}")
    return 0


def _message(exc: BaseException) -> str:
    """An exception's message without the quotes ``str(KeyError)`` adds."""
    return str(exc.args[0]) if isinstance(exc, KeyError) and exc.args else str(exc)
