"""Pairing rules of the benchmark layouts: which input goes with which target, by file name alone."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from mio_strategies.data import IMAGE_SUFFIXES

__all__ = ["FolderPairs", "list_folder_images", "pair_folder"]

_RAIN = re.compile(r"^rain-(.+)$")


def list_folder_images(folder: Path, *, recursive: bool = False) -> list[Path]:
    """Image files of ``folder`` (sorted; sub-folders too when ``recursive``); hidden files are skipped."""
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        p for p in it
        if p.suffix.lower() in IMAGE_SUFFIXES and not p.name.startswith(".") and p.is_file()
    )


@dataclass
class FolderPairs:
    """The result of pairing one folder.

    Attributes:
        pairs: ``(lq or None, gt)`` per pair, sorted by input path (by target for synthesized inputs).
        orphans: inputs whose target is missing.
        bad_names: inputs whose name does not follow the layout's naming rule.
        duplicates: targets sharing a stem (``a.png`` and ``a.jpg``): the pairing would be ambiguous.
    """

    pairs: list[tuple[Path | None, Path]] = field(default_factory=list)
    orphans: list[Path] = field(default_factory=list)
    bad_names: list[Path] = field(default_factory=list)
    duplicates: list[Path] = field(default_factory=list)


def _gt_key(rule: str, lq: Path) -> str | None:
    """The target stem an input's name points to under ``rule`` (None: the name breaks the rule)."""
    stem = lq.stem
    if rule == "same-name":
        return stem
    if rule == "rain-norain":
        m = _RAIN.match(stem)
        return f"norain-{m.group(1)}" if m else None
    if rule == "haze-id":
        head, sep, _ = stem.partition("_")
        return head if sep and head else None
    raise ValueError(f"unknown pairing rule {rule!r}")


def pair_folder(rule: str, gt_dir: Path, lq_dir: Path | None, *, recursive: bool = False) -> FolderPairs:
    """Pair the inputs of ``lq_dir`` with the targets of ``gt_dir`` by ``rule``.

    Args:
        rule: ``same-name``, ``rain-norain``, ``haze-id``, or ``clean`` / ``synthesize`` (targets only).
        gt_dir: the target folder (must exist).
        lq_dir: the input folder (must exist unless the rule synthesizes inputs).
        recursive: read inputs from sub-folders too.

    Returns:
        :class:`FolderPairs`.

    Example:
        >>> pair_folder("rain-norain", Path("Derain/gt"), Path("Derain/rainy")).pairs[:1]  # doctest: +SKIP
        [(PosixPath('Derain/rainy/rain-1.png'), PosixPath('Derain/gt/norain-1.png'))]
    """
    gts = list_folder_images(gt_dir)
    out = FolderPairs()
    if rule in ("clean", "synthesize"):
        out.pairs = [(None, g) for g in gts]
        return out
    if lq_dir is None:
        raise ValueError(f"pairing rule {rule!r} needs an input folder")
    by_stem: dict[str, Path] = {}
    for g in gts:
        if g.stem in by_stem:
            out.duplicates.append(g)
        else:
            by_stem[g.stem] = g
    for lq in list_folder_images(lq_dir, recursive=recursive):
        key = _gt_key(rule, lq)
        if key is None:
            out.bad_names.append(lq)
        elif key in by_stem:
            out.pairs.append((lq, by_stem[key]))
        else:
            out.orphans.append(lq)
    return out
