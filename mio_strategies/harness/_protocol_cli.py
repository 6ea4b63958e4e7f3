"""``mio-strategies data check``: validate a download against a benchmark protocol's layout."""

from __future__ import annotations

import argparse
import sys
from typing import Any


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
    from mio_strategies.protocols import check_tree, get_protocol

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
    print(report.summary(max_per_kind=args.max_listed), file=sys.stderr)
    return 1
