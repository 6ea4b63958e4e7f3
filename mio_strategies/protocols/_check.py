"""``data check``'s engine: validate a download against a protocol's layout before hours of training."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mio_strategies.data import ImageReadError, image_size, read_image
from mio_strategies.protocols._pairing import list_folder_images, pair_folder
from mio_strategies.protocols._spec import Folder, Protocol

__all__ = ["PROBLEM_KINDS", "CheckReport", "FolderCheck", "Problem", "check_tree", "expected_tree"]

#: The defects ``check_tree`` names, in the order the report lists them.
PROBLEM_KINDS: tuple[str, ...] = (
    "missing-root", "missing-folder", "empty", "count", "unpaired", "misnamed", "missing-input", "duplicate",
    "unreadable", "size-mismatch", "too-small",
)
"""The kinds of defect :func:`check_tree` reports, in the order its summary lists them."""


@dataclass(frozen=True)
class Problem:
    """One defect: its kind (one of :data:`PROBLEM_KINDS`), the folder key, the path and what is wrong."""

    kind: str
    folder: str
    path: str
    message: str


@dataclass
class FolderCheck:
    """The row of one folder: where it is, how many pairs were expected and found."""

    folder: Folder
    path: str
    expected: int | None
    found: int | None
    problems: list[Problem] = field(default_factory=list)

    @property
    def status(self) -> str:
        return "ok" if not self.problems else ", ".join(sorted({p.kind for p in self.problems}, key=PROBLEM_KINDS.index))


@dataclass
class CheckReport:
    """The outcome of :func:`check_tree`: one row per folder and every problem found.

    Attributes:
        protocol: the protocol checked.
        root: the user's root.
        rows: one :class:`FolderCheck` per folder, in the protocol's order.
    """

    protocol: Protocol
    root: Path
    rows: list[FolderCheck] = field(default_factory=list)

    @property
    def problems(self) -> list[Problem]:
        """Every problem, folder by folder."""
        return [p for r in self.rows for p in r.problems]

    @property
    def ok(self) -> bool:
        """True when nothing is missing or wrong."""
        return not self.problems

    def table(self) -> str:
        """The per-folder table (folder, path, expected, found, status) as aligned text."""
        head = ("folder", "path", "expected", "found", "status")
        body = [(r.folder.key, r.path, "-" if r.expected is None else str(r.expected),
                 "-" if r.found is None else str(r.found), r.status) for r in self.rows]
        widths = [max(len(str(x)) for x in col) for col in zip(head, *body)]

        def line(cells: Any) -> str:
            return "  ".join(str(c).ljust(w) for c, w in zip(cells, widths)).rstrip()

        return "\n".join([line(head), line(["-" * w for w in widths]), *[line(b) for b in body]])

    def summary(self, max_per_kind: int = 10) -> str:
        """What is wrong and where to get what is missing (empty when :attr:`ok`)."""
        if self.ok:
            return ""
        out = []
        for kind in PROBLEM_KINDS:
            probs = [p for p in self.problems if p.kind == kind]
            if not probs:
                continue
            out.append(f"{kind}: {len(probs)}")
            out += [f"  {p.folder}: {p.message}" for p in probs[:max_per_kind]]
            if len(probs) > max_per_kind:
                out.append(f"  ... and {len(probs) - max_per_kind} more")
        datasets = dict.fromkeys(r.folder.dataset for r in self.rows if r.problems)
        if datasets:
            out.append("where to get the data (docs/benchmarks.md):")
            for key in datasets:
                info = self.protocol.datasets[key]
                out.append(f"  {info.name}: {info.urls[0]}")
                out.append(f"    {info.note}")
        return "\n".join(out)


def _rel(path: Path, root: Path) -> str:
    try:
        return str(path.relative_to(root))
    except ValueError:
        return str(path)


def _check_folder(folder: Folder, split_root: Path, root: Path, expected: int | None, deep: bool) -> FolderCheck:
    gt_dir = split_root / folder.gt
    lq_dir = split_root / folder.lq if folder.lq is not None else None
    shown = _rel(lq_dir if lq_dir is not None else gt_dir, root)
    row = FolderCheck(folder, shown, expected, None)
    missing = [d for d in (gt_dir, lq_dir) if d is not None and not d.is_dir()]
    for d in missing:
        row.problems.append(Problem("missing-folder", folder.key, _rel(d, root), f"folder {_rel(d, root)} is missing"))
    if missing:
        return row
    res = pair_folder(folder.pairing, gt_dir, lq_dir, recursive=folder.recursive)
    row.found = len(res.pairs)
    if not res.pairs and not res.orphans and not res.bad_names:
        row.problems.append(Problem("empty", folder.key, shown, f"no images in {shown}"))
    if expected is not None and row.found != expected:
        unit = "pairs" if folder.lq is not None else "images"
        row.problems.append(Problem("count", folder.key, shown, f"{row.found} {unit} in {shown}, expected {expected} "
                                    f"({folder.count_source})"))
    for p in res.orphans:
        row.problems.append(Problem("unpaired", folder.key, _rel(p, root),
                                    f"{_rel(p, root)} has no target in {_rel(gt_dir, root)} (rule {folder.pairing})"))
    for p in res.bad_names:
        row.problems.append(Problem("misnamed", folder.key, _rel(p, root),
                                    f"{_rel(p, root)} does not follow the naming rule {folder.pairing!r}"))
    for p in res.duplicates:
        row.problems.append(Problem("duplicate", folder.key, _rel(p, root),
                                    f"{_rel(p, root)} shares its stem with another target: pairing is ambiguous"))
    if folder.pairing in ("same-name", "rain-norain"):  # one input per target: a target alone means a lost input
        used = {gt for _, gt in res.pairs}
        for gt in list_folder_images(gt_dir):
            if gt not in used:
                row.problems.append(Problem("missing-input", folder.key, _rel(gt, root),
                                            f"target {_rel(gt, root)} has no input in {shown}"))
    sizes: dict[Path, tuple[int, int] | None] = {}

    def size_of(path: Path) -> tuple[int, int] | None:
        if path not in sizes:
            try:
                sizes[path] = tuple(read_image(path).shape[-2:]) if deep else image_size(path)  # type: ignore[assignment]
            except ImageReadError as exc:
                sizes[path] = None
                row.problems.append(Problem("unreadable", folder.key, _rel(path, root), str(exc).replace(str(root) + "/", "")))
        return sizes[path]

    for lq, gt in res.pairs:
        gs = size_of(gt)
        ls = size_of(lq) if lq is not None else gs
        if gs is None or ls is None:
            continue
        if ls != gs:
            row.problems.append(Problem("size-mismatch", folder.key, _rel(lq, root),  # type: ignore[arg-type]
                                        f"{_rel(lq, root)} is {ls[0]}x{ls[1]} but its target {_rel(gt, root)} is "  # type: ignore[arg-type]
                                        f"{gs[0]}x{gs[1]}"))
        elif min(gs) < folder.min_side:
            row.problems.append(Problem("too-small", folder.key, _rel(gt, root),
                                        f"{_rel(gt, root)} is {gs[0]}x{gs[1]}, smaller than the {folder.min_side}-pixel "
                                        "training crop"))
    return row


def check_tree(
    protocol: Protocol,
    root: str | Path,
    *,
    counts: bool = True,
    expected_counts: Mapping[str, int | None] | None = None,
    deep: bool = False,
    splits: tuple[str, ...] = ("train", "test"),
) -> CheckReport:
    """Check a data root against a protocol's layout: folders, counts, pairing, readability, sizes.

    Every folder of the protocol is looked for under the first existing split root; in each, every input
    must pair with a target by the layout's naming rule (and, where pairs are one-to-one, every target
    with an input), the number of pairs must match the known count, and every file must be readable with
    its pair's size. Nothing is written.

    Args:
        protocol: the protocol.
        root: the user's data root.
        counts: compare counts with the known ones (``False``: pairing and files only).
        expected_counts: ``{folder key: count}`` overriding the protocol's known counts (e.g. for a subset);
            unknown keys are refused.
        deep: decode every image (finds truncated files; slower) instead of reading headers only.
        splits: which splits to check.

    Returns:
        :class:`CheckReport` (``report.ok``, ``report.table()``, ``report.summary()``).

    Raises:
        KeyError: an ``expected_counts`` key that is not a folder of the protocol.
        FileNotFoundError: ``root`` does not exist.

    Example:
        >>> report = check_tree(get_protocol("three-task"), "data")  # doctest: +SKIP
        >>> print(report.table())  # doctest: +SKIP
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"data root {str(root)!r} does not exist")
    keys = {f.key for f in protocol.folders}
    if expected_counts is not None:
        unknown = sorted(set(expected_counts) - keys)
        if unknown:
            raise KeyError(f"expected_counts names folders {unknown} that protocol {protocol.name!r} does not have: "
                           f"its folders are {sorted(keys)}")
    report = CheckReport(protocol, root)
    for split in splits:
        folders = [f for f in protocol.folders if f.split == split]
        split_root = next((root / c for c in protocol.roots[split] if (root / c).is_dir()), None)
        if split_root is None:
            where = " or ".join(str(c) for c in protocol.roots[split])
            for f in folders:
                row = FolderCheck(f, f"{protocol.roots[split][0]}/{f.lq or f.gt}", f.count if counts else None, None)
                row.problems.append(Problem("missing-root", f.key, protocol.roots[split][0],
                                            f"no {split} folder ({where}) under {root}"))
                report.rows.append(row)
            continue
        for f in folders:
            expected = None
            if counts:
                expected = expected_counts.get(f.key, f.count) if expected_counts is not None else f.count
            report.rows.append(_check_folder(f, split_root, root, expected, deep))
    return report


def expected_tree(protocol: Protocol) -> str:
    """The folders a protocol expects under its data root, with each folder's pairing rule and known count.

    Example:
        >>> print(expected_tree(get_protocol("three-task")).splitlines()[1])  # doctest: +SKIP
        Train/ (or data/Train/)
    """
    lines = [f"{protocol.name}: expected under ROOT"]
    for split in ("train", "test"):
        roots = protocol.roots[split]
        lines.append(f"{roots[0]}/" + (f" (or {', '.join(r + '/' for r in roots[1:])})" if len(roots) > 1 else ""))
        for f in protocol.folders:
            if f.split != split:
                continue
            unit = "pairs" if f.lq is not None else "images"
            count = f"{f.count:,} {unit}" if f.count is not None else "count not stated"
            what = (f"{f.lq}/ -> {f.gt}/ ({f.pairing}" if f.lq is not None else f"{f.gt}/ (clean images, {f.pairing}")
            lines.append(f"  {what}{', in sub-folders' if f.recursive else ''}; {count})")
    return "\n".join(lines)
