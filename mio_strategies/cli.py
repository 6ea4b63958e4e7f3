"""The ``mio-strategies`` command line: one sub-command per capability.

Each capability module exposes ``add_parser(subparsers)`` that registers its sub-command and sets
``func`` (called with the parsed namespace, returning an exit code). Heavy imports happen inside
those functions, so ``mio-strategies --help`` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from mio_strategies import __version__
from mio_strategies.utils.outputs import cli_spelling

# sub-command modules, in the order shown by --help
_COMMAND_MODULES: tuple[str, ...] = (
    "mio_strategies.data._cli",
    "mio_strategies.harness._cli",
    "mio_strategies.harness._restore",
    "mio_strategies.harness._protocol_cli",
    "mio_strategies.harness._analyze_cli",
)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every sub-command registered."""
    parser = argparse.ArgumentParser(
        prog="mio-strategies",
        description="Sequential and prompt learning for multiple-in-one image restoration.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        importlib.import_module(name).add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mio-strategies`` script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 2
    with cli_spelling():  # messages name --overwrite, not overwrite=True
        return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
