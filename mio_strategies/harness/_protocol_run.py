"""Training presets and evaluation tables for the benchmark protocols (``--protocol`` of ``train`` and ``eval``)."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from mio_strategies.data import MiODataset, list_images
from mio_strategies.harness._config import TrainConfig, load_config, parse_overrides
from mio_strategies.metrics import convention_psnr, convention_ssim, psnr, ssim
from mio_strategies.protocols import (
    Protocol,
    ProtocolTestDataset,
    ProtocolTrainDataset,
    ReferenceRow,
    get_protocol,
    resolve_split_root,
)
from mio_strategies.utils.outputs import atomic_file, check_output_dir
from mio_strategies.utils.rng import derive_seed

__all__ = [
    "ProtocolResult",
    "evaluate_protocol",
    "format_protocol_tables",
    "protocol_config",
    "protocol_train_dataset",
    "protocol_validation_set",
    "write_protocol_tables",
]

DEFAULT_CONFIG = "restormer"  # every strategy applies (promptir has its own prompt: M or S only)
_MAX_ITEMS = 4_000_000
IDENTITY = "input (no restoration)"


# -- training --------------------------------------------------------------------------------------------
def protocol_config(protocol: str | Protocol, root: str | Path, source: str | Path | None = None,
                    overrides: Iterable[str] | Mapping[str, Any] | None = None) -> TrainConfig:
    """A training config for ``protocol``: a backbone preset, the protocol's schedule, then ``overrides``.

    The protocol's preset (curriculum order of its slots, periods, iterations, batch, patch, learning rate,
    sampler balance) replaces the backbone preset's schedule; ``overrides`` (``--set``) win over both.

    Args:
        protocol: a protocol or its name.
        root: the data root (recorded in the config, so ``--resume`` finds the data again).
        source: a backbone preset or YAML file (default ``restormer``, with which every strategy applies;
            ``promptir`` is PromptIR itself, with its own prompt: strategies ``M`` and ``S``).
        overrides: ``key=value`` strings or a mapping, as :func:`load_config` takes.

    Raises:
        KeyError: an unknown protocol or config key.
        ValueError: an order that does not cover exactly the protocol's slots, or any invalid value.

    Example:
        >>> cfg = protocol_config("three-task", "data", "promptir", ["strategy=S+EP"])  # doctest: +SKIP
        >>> cfg.order, cfg.periods  # doctest: +SKIP
        ('RNH', 6)
    """
    p = get_protocol(protocol)
    if p.preset is None:  # pragma: no cover - every registered protocol has one
        raise ValueError(f"protocol {p.name!r} has no training preset")
    over = parse_overrides(overrides)
    merged = {**p.preset.overrides(), "protocol": p.name, "protocol_root": str(root), **over}
    cfg = load_config(source if source is not None else DEFAULT_CONFIG, merged)
    if "name" not in over:
        cfg = cfg.replace(name=f"{p.name}-{cfg.backbone}")
    slots = {t.letter for t in p.slots}
    given = {t.letter for t in cfg.order_tasks}
    if given != slots:
        raise ValueError(
            f"order {cfg.order!r} must hold exactly protocol {p.name!r}'s tasks {''.join(t.letter for t in p.slots)} "
            f"(library letters; the protocol's default order is {p.preset.order!r})"
        )
    return cfg


def _repeat(cfg: TrainConfig, world: int, n_items: int, smallest: int, saved: Mapping[str, Any] | None) -> int:
    """How many passes over the pairs an epoch of the run's sampler pool holds (as the harness's default data):
    enough for each index to be drawn about once, capped at ~4M items, never fewer items per slot than a batch."""
    global_batch = cfg.batch_size * world
    fresh = math.ceil(cfg.total_iters * global_batch / n_items)
    repeat = max(1, math.ceil(global_batch / smallest), min(fresh, max(1, _MAX_ITEMS // n_items)))
    items = ((saved or {}).get("sampler") or {}).get("config", {}).get("dataset", {}).get("num_items")
    if isinstance(items, int) and items > 0 and items % n_items == 0:  # a resumed run keeps its pool
        repeat = items // n_items
    return repeat


def protocol_train_dataset(cfg: TrainConfig, world: int = 1, saved: Mapping[str, Any] | None = None) -> Any:
    """The training data of ``cfg.protocol`` read from ``cfg.protocol_root``.

    Raises:
        FileNotFoundError / ValueError: a missing or broken folder (run ``mio-strategies data check``).
    """
    p = get_protocol(cfg.protocol)  # type: ignore[arg-type]
    if p.synthesizes_training_data:  # mio-7: all synthesized, as the config's data keys say (stream, codec, ...)
        images = list_images(resolve_split_root(p, cfg.protocol_root, "train"))  # type: ignore[arg-type]
        per_pass = len(images) * len(cfg.order_tasks)
        repeat = _repeat(cfg, world, per_pass, len(images), saved)
        return MiODataset(images, cfg.order_tasks, patch_size=cfg.patch_size, preset=cfg.preset, seed=cfg.seed,
                          repeat=repeat, stream=cfg.stream, jpeg_codec=cfg.jpeg_codec,
                          implementation=cfg.data_implementation, synthesis=cfg.synthesis)
    base = ProtocolTrainDataset(p, cfg.protocol_root, patch_size=cfg.patch_size, seed=cfg.seed)  # type: ignore[arg-type]
    ids = base.task_ids
    smallest = int(torch.bincount(ids)[ids.unique()].min())
    base.repeat = _repeat(cfg, world, len(ids), smallest, saved)
    return base


def protocol_validation_set(cfg: TrainConfig, per_slot: int = 4) -> Any:
    """Fixed ``val_size`` crops of a few training pairs per slot (no augmentation), for the logged validation."""
    from torch.utils.data import Subset

    p = get_protocol(cfg.protocol)  # type: ignore[arg-type]
    if p.synthesizes_training_data:
        images = list_images(resolve_split_root(p, cfg.protocol_root, "train"))  # type: ignore[arg-type]
        return MiODataset(images[:per_slot], cfg.order_tasks, patch_size=cfg.val_size, preset=cfg.preset,
                          augment=False, seed=derive_seed(cfg.seed, 7919), stream=cfg.stream,
                          jpeg_codec=cfg.jpeg_codec, implementation=cfg.data_implementation)
    ds = ProtocolTrainDataset(p, cfg.protocol_root, patch_size=cfg.val_size, augment=False,  # type: ignore[arg-type]
                              seed=derive_seed(cfg.seed, 7919))
    ids = ds.task_ids
    picks: list[int] = []
    for slot in ids.unique().tolist():
        where = torch.nonzero(ids == slot).flatten()
        step = max(1, len(where) // per_slot)
        picks += where[::step][:per_slot].tolist()
    return Subset(ds, sorted(picks))


# -- evaluation --------------------------------------------------------------------------------------------
@dataclass
class ProtocolResult:
    """Per-image scores of one model on a protocol's test sets.

    Attributes:
        name: the row label.
        protocol: the protocol's name.
        records: one dict per image: ``test_set``, ``image``, ``psnr``, ``ssim`` (the protocol's color
            convention), ``psnr_alt`` (the other one), and the same three for the input (``identity_*``).
    """

    name: str
    protocol: str
    records: list[dict[str, Any]] = field(default_factory=list)

    def per_set(self, identity: bool = False) -> dict[str, dict[str, float]]:
        """``{test set: {"psnr", "ssim", "psnr_alt", "n"}}``, means over images (infinite PSNR counts as 100 dB)."""
        pre = "identity_" if identity else ""
        out: dict[str, dict[str, float]] = {}
        for s in dict.fromkeys(r["test_set"] for r in self.records):
            rows = [r for r in self.records if r["test_set"] == s]
            out[s] = {m: _mean([min(float(r[pre + m]), 100.0) for r in rows]) for m in ("psnr", "ssim", "psnr_alt")}
            out[s]["n"] = len(rows)
        return out

    def average(self, identity: bool = False) -> dict[str, float]:
        """Mean over test sets of the per-set means (the papers' "Average" column)."""
        table = self.per_set(identity)
        return {m: _mean([v[m] for v in table.values()]) for m in ("psnr", "ssim", "psnr_alt")}

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "protocol": self.protocol, "per_set": self.per_set(), "average": self.average(),
                "identity_per_set": self.per_set(True), "identity_average": self.average(True),
                "records": self.records}


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values) if values else float("nan")


def _score(img: torch.Tensor, gt: torch.Tensor, ev: Any) -> tuple[float, float]:
    """PSNR and SSIM of one image in the protocol's own convention (basicsr's: the library's ``psnr`` / ``ssim``)."""
    if ev.ssim_window == "basicsr" and ev.quantize and ev.color == "rgb":
        return float(psnr(img, gt, ev.border)[0]), float(ssim(img, gt, ev.border)[0])
    kw = {"color": ev.color, "border": ev.border, "quantize": ev.quantize}
    return float(convention_psnr(img, gt, **kw)[0]), float(convention_ssim(img, gt, window=ev.ssim_window, **kw)[0])


@torch.no_grad()
def evaluate_protocol(restorer: Any, protocol: str | Protocol, root: str | Path, *, name: str = "model",
                      device: str | torch.device = "cpu", limit: int | None = None,
                      test_sets: Iterable[str] | None = None, progress: bool = False) -> ProtocolResult:
    """Score a restorer on every test set of a protocol under its evaluation conventions.

    Each test image is centre-cropped as the protocol says, noised with its seeded noise (denoising sets),
    restored (``restorer.restore(lq, task)``: the slot id, or for composite degradations the mixture of
    their components' prompts: explicit-prompt models get the true task, an oracle), and scored in the
    protocol's color convention and the other one (RGB and Y), float or 8-bit as the protocol says.

    Args:
        restorer: a :class:`~mio_strategies.harness.Restorer` or any ``f(lq, task)``.
        protocol: a protocol or its name.
        root: the data root.
        name: the row label.
        device: where images go.
        limit: score only the first ``limit`` images of each test set.
        test_sets: score only these test sets.
        progress: show a progress bar.

    Returns:
        :class:`ProtocolResult`.
    """
    p = get_protocol(protocol)
    ev = p.evaluation
    alt = "y" if ev.color == "rgb" else "rgb"
    chosen = [p.test_set(s) for s in test_sets] if test_sets is not None else list(p.test_sets)
    datasets = [ProtocolTestDataset(p, root, ts, limit=limit) for ts in chosen]  # every set found before scoring
    restore = getattr(restorer, "restore", restorer)
    if hasattr(restorer, "eval"):
        restorer.eval()
    records = []
    for ds in datasets:
        indices: Iterable[int] = range(len(ds))
        if progress:
            from tqdm.auto import tqdm

            indices = tqdm(indices, desc=f"{name} {ds.test_set.name}", unit="img", dynamic_ncols=True)
        for i in indices:
            item = ds[i]
            lq = item["lq"].unsqueeze(0).to(device)
            gt = item["gt"].unsqueeze(0).to(device)
            task = item["prompt"].unsqueeze(0) if "prompt" in item else torch.tensor([item["task"]])
            out = restore(lq, task.to(device))
            rec: dict[str, Any] = {"test_set": ds.test_set.name, "image": item["image"]}
            for pre, img in (("", out), ("identity_", lq)):
                rec[pre + "psnr"], rec[pre + "ssim"] = _score(img, gt, p.evaluation)
                rec[pre + "psnr_alt"] = float(convention_psnr(img, gt, color=alt, border=ev.border,
                                                              quantize=ev.quantize)[0])
            records.append(rec)
    return ProtocolResult(name, p.name, records)


def _cell(psnr: float | None, ssim: float | None, published: bool = False) -> str:
    if psnr is None or (isinstance(psnr, float) and math.isnan(psnr)):
        return "-"
    if ssim is None or math.isnan(ssim):
        return f"{psnr:.2f}"
    text = f"{ssim:.4f}"
    return f"{psnr:.2f} / " + (text.rstrip("0") if published else text)  # a published 0.962 stays 0.962


def _rows(p: Protocol, results: Sequence[ProtocolResult], alt: bool,
          extra: Sequence[ReferenceRow] = ()) -> list[list[str]]:
    names = [s.name for s in p.test_sets]
    rows = []
    metric = "psnr_alt" if alt else "psnr"
    if results:
        ident = results[0].per_set(identity=True)
        avg = results[0].average(identity=True)
        rows.append([IDENTITY, *[_cell(ident[n][metric], None if alt else ident[n]["ssim"]) if n in ident else "-"
                                 for n in names], _cell(avg[metric], None if alt else avg["ssim"]), "measured"])
    for r in results:
        per, avg = r.per_set(), r.average()
        rows.append([r.name, *[_cell(per[n][metric], None if alt else per[n]["ssim"]) if n in per else "-"
                               for n in names], _cell(avg[metric], None if alt else avg["ssim"]), "measured"])
    color = ("y" if p.evaluation.color == "rgb" else "rgb") if alt else p.evaluation.color
    for ref in (*p.references, *extra):
        if ref.color != color:
            continue
        mark = "" if ref.ssim_window in (None, p.evaluation.ssim_window) else " (SSIM: " + str(ref.ssim_window) + ")"
        label = f"{ref.method}" + (f", {ref.venue}" if ref.venue else "") + mark
        avg_cell = _cell(*ref.average, published=True) if ref.average is not None else "-"
        rows.append([label, *[_cell(*ref.scores[n], published=True) if n in ref.scores else "-" for n in names], avg_cell,
                     "published"])
    return rows


def format_protocol_tables(protocol: str | Protocol, results: Sequence[ProtocolResult], *,
                           fmt: str = "markdown", extra_references: Sequence[ReferenceRow] = ()) -> str:
    """The protocol's table: one column per test set and the average, measured rows then published ones.

    Markdown gives two tables: the protocol's convention (PSNR / SSIM, published rows beside the measured
    ones) and the other color convention (PSNR only; published rows appear there when they used it), then
    the sources of the published rows and the evaluation notes. CSV gives the first table.
    ``extra_references`` adds published rows the protocol does not hold (the seed paper's, for ``mio-7``).

    Raises:
        ValueError: an unknown ``fmt``, results of another protocol, or two results with one name.
    """
    p = get_protocol(protocol)
    if fmt not in ("markdown", "csv"):
        raise ValueError(f"fmt must be 'markdown' or 'csv', got {fmt!r}")
    seen: set[str] = set()
    for r in results:
        if r.protocol != p.name:
            raise ValueError(f"result {r.name!r} is of protocol {r.protocol!r}, not {p.name!r}")
        if r.name in seen or r.name == IDENTITY:
            raise ValueError(f"two rows would be named {r.name!r}: give each result a distinct name")
        seen.add(r.name)
    header = ["model", *[s.title for s in p.test_sets], "average", "kind"]
    refs = (*p.references, *extra_references)
    main_rows = _rows(p, results, alt=False, extra=extra_references)
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(main_rows)
        return buf.getvalue()

    def md(rows: list[list[str]]) -> list[str]:
        return ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 2) + ["---"]) + "|",
                *["| " + " | ".join(r) + " |" for r in rows]]

    ev = p.evaluation
    alt = "Y (BT.601)" if ev.color == "rgb" else "RGB"
    main = "RGB" if ev.color == "rgb" else "Y (BT.601)"
    how = (f"{'8-bit' if ev.quantize else 'float'} output, border crop {ev.border}, images centre-cropped to a "
           f"multiple of {ev.crop_multiple}, SSIM window {ev.ssim_window}")
    lines = [f"# {p.title}", "", f"PSNR (dB) / SSIM on {main} ({how}):", "", *md(main_rows), "",
             f"PSNR (dB) on {alt}, the other convention:", "", *md(_rows(p, results, alt=True, extra=extra_references)), ""]
    if not any(r.color != ev.color for r in refs):
        lines += [f"(No published row of this protocol uses {alt}: its published rows are all {main}.)", ""]
    if refs:
        lines += ["Published rows and their sources:", ""]
        lines += [f"- {r.method}: {r.source}" + (f". {r.note}" if r.note else "") for r in refs]
        lines.append("")
    lines += [f"Evaluation: {ev.note}", ""]
    lines += [("Explicit-prompt models are given each image's true task (an oracle, as in training); adaptive-prompt "
              "and prompt-free models see only the image."), ""]
    return "\n".join(lines)


def write_protocol_tables(protocol: str | Protocol, results: Sequence[ProtocolResult], output: str | Path,
                          stem: str = "results", extra_references: Sequence[ReferenceRow] = ()) -> dict[str, Path]:
    """Write ``<stem>.md``, ``<stem>.csv`` and ``<stem>.json`` for a protocol evaluation.

    Raises:
        ValueError: as :func:`format_protocol_tables` (checked before anything is written).
        FileExistsError: ``output`` is a file or a symbolic link, not a folder.
        PermissionError: ``output`` is not writable.
    """
    p = get_protocol(protocol)
    md = format_protocol_tables(p, results, extra_references=extra_references)
    table = format_protocol_tables(p, results, fmt="csv", extra_references=extra_references)
    out = Path(output)
    check_output_dir(out, overwrite=False, resume=True)  # a link, a file or a read-only folder is refused
    payload = {"protocol": p.name, "evaluation": p.evaluation.__dict__, "results": [r.to_dict() for r in results],
               "references": [{"method": r.method, "venue": r.venue, "source": r.source, "color": r.color,
                               "scores": dict(r.scores), "average": r.average, "note": r.note}
                              for r in (*p.references, *extra_references)]}
    out.mkdir(parents=True, exist_ok=True)
    paths = {"markdown": out / f"{stem}.md", "csv": out / f"{stem}.csv", "json": out / f"{stem}.json"}
    for key, text in (("markdown", md), ("csv", table), ("json", json.dumps(payload, indent=1))):
        with atomic_file(paths[key], "w") as fh:  # never half a file, never through a link
            fh.write(text)
    return paths
