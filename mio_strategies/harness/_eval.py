"""Evaluation: per-task PSNR/SSIM of a model next to the identity baseline, tables as Markdown/CSV/JSON."""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import torch

from mio_strategies.data import degrade_deferred, mio_collate
from mio_strategies.harness._shipped_classifier import resolve_classifier
from mio_strategies.metrics import psnr, ssim
from mio_strategies.tasks import TASKS, get_task
from mio_strategies.utils.outputs import atomic_file, check_output_dir

__all__ = [
    "EvalResult",
    "evaluate",
    "format_table",
    "paper_results",
    "write_tables",
]

IDENTITY = "identity"
# An image restored exactly (MSE 0, e.g. low-light with gamma ~1.00 on a small crop) has an infinite
# PSNR; in means it counts as this many dB, so one such image does not make a whole column infinite.
PSNR_CAP = 100.0
_TASK_NAMES = frozenset(t.name for t in TASKS)  # any other column label is a composite ("blur+noise")


def _ordered_columns(labels: set[str]) -> list[str]:
    """Task names in canonical order, then composite labels sorted."""
    return [t.name for t in TASKS if t.name in labels] + sorted(labels - _TASK_NAMES)


@dataclass
class EvalResult:
    """Per-image scores of one model on one test set (and of the unrestored input).

    Attributes:
        name: the model's label in tables.
        records: one dict per image: ``task`` (name), ``image``, ``psnr``, ``ssim``,
            ``identity_psnr``, ``identity_ssim`` and, with a task classifier, ``predicted``.
        testset: a label of the test set.
    """

    name: str
    records: list[dict[str, Any]] = field(default_factory=list)
    testset: str = ""

    def tasks(self) -> list[str]:
        """Task names present, in canonical order, then composite labels (``"blur+noise"``), sorted."""
        return _ordered_columns({r["task"] for r in self.records})

    def single_tasks(self) -> list[str]:
        """The single-degradation tasks present (no composites), in canonical order."""
        return [t for t in self.tasks() if t in _TASK_NAMES]

    def per_task(self, identity: bool = False) -> dict[str, dict[str, float]]:
        """``{task: {"psnr", "ssim", "n", "n_clean_inputs"}}`` means over images (of the input when ``identity``).

        A pair whose degraded input already equals its ground truth at 8 bits (e.g. low-light with
        gamma 1.002 on a small crop: the input's PSNR is infinite) has nothing to restore; it is left
        out of both the model's and the identity's means and counted in ``n_clean_inputs``. Any other
        infinite PSNR (an exact restoration) counts as ``PSNR_CAP`` (100 dB).
        """
        pre = "identity_" if identity else ""
        out = {}
        for task in self.tasks():
            every = [r for r in self.records if r["task"] == task]
            rows = [r for r in every if not math.isinf(float(r["identity_psnr"]))]
            out[task] = {
                "psnr": _mean([min(float(r[pre + "psnr"]), PSNR_CAP) for r in rows]),
                "ssim": _mean([r[pre + "ssim"] for r in rows]),
                "n": len(rows),
                "n_clean_inputs": len(every) - len(rows),
            }
        return out

    def average(self, identity: bool = False) -> dict[str, float]:
        """Mean over the single tasks of the per-task means (the paper's "Avg." column).

        Composite columns are not part of it; a result holding only composites averages those.
        """
        table = self.per_task(identity)
        keys = self.single_tasks() or list(table)
        return {m: _mean([table[k][m] for k in keys]) for m in ("psnr", "ssim")}

    def classifier_accuracy(self) -> float | None:
        """Share of single-task images whose task the classifier predicted correctly, or None without one."""
        rows = [r for r in self.records if "predicted" in r and r["task"] in _TASK_NAMES]
        if not rows:
            return None
        return sum(r["predicted"] == r["task"] for r in rows) / len(rows)

    def classifier_accuracy_per_task(self) -> dict[str, float]:
        """Per single task (in the canonical order), the share of its images whose task the classifier
        predicted correctly; empty without a classifier."""
        rows = [r for r in self.records if "predicted" in r and r["task"] in _TASK_NAMES]
        out: dict[str, float] = {}
        for task in (t.name for t in TASKS):
            mine = [r["predicted"] == task for r in rows if r["task"] == task]
            if mine:
                out[task] = sum(mine) / len(mine)
        return out

    def identity(self) -> EvalResult:
        """The unrestored input's scores as a result of their own (named ``identity``)."""
        recs = [{**r, "psnr": r["identity_psnr"], "ssim": r["identity_ssim"]} for r in self.records]
        for r in recs:
            r.pop("predicted", None)
        return EvalResult(IDENTITY, recs, self.testset)

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name, "testset": self.testset, "per_task": self.per_task(), "average": self.average(),
            "identity_per_task": self.per_task(True), "identity_average": self.average(True),
            "classifier_accuracy": self.classifier_accuracy(),
            "classifier_accuracy_per_task": self.classifier_accuracy_per_task(), "records": self.records,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EvalResult:
        if "records" not in data or "name" not in data:
            raise ValueError("an evaluation JSON needs 'name' and 'records' (written by mio-strategies eval)")
        return cls(str(data["name"]), list(data["records"]), str(data.get("testset", "")))


def _mean(values: Sequence[float]) -> float:
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else float("nan")


def _evaluation_device(restorer: Any, device: str | torch.device | None) -> torch.device:
    """The restorer's device (its first parameter's, else its first buffer's; the CPU for a callable without
    either), checked against a requested ``device``."""
    first = None
    for attr in ("parameters", "buffers"):  # a module without parameters may still hold buffers
        tensors = getattr(restorer, attr, None)
        first = next(iter(tensors()), None) if callable(tensors) else None
        if first is not None:
            break
    own = first.device if first is not None else None
    if device is None:
        return own if own is not None else torch.device("cpu")
    wanted = torch.device(device)
    if own is not None and own.type == wanted.type and (wanted.index is None or own.index in (None, wanted.index)):
        return own  # "cuda" for a restorer on "cuda:0"; "cpu:0" for one on "cpu"
    if own is not None:
        raise ValueError(
            f"the restorer is on {own} but device={str(device)!r} was asked for: leave device unset to evaluate "
            f"where the restorer is, or move it first (restorer.to({str(device)!r}))"
        )
    return wanted


@torch.no_grad()
def evaluate(
    restorer: Any,
    dataset: Any,
    *,
    name: str = "model",
    device: str | torch.device | None = None,
    task_source: str = "given",
    classifier: torch.nn.Module | str | Path | None = None,
    crop_border: int = 4,
    progress: bool = False,
    testset: str = "",
) -> EvalResult:
    """Restore every pair of a test set and score it per task (PSNR/SSIM on RGB, border crop).

    Args:
        restorer: a :class:`~mio_strategies.harness.Restorer` (or any callable ``f(lq, task)``).
        dataset: items with ``lq``, ``gt`` (``(3, H, W)``), ``task`` (id) and ``image``; e.g. a
            :class:`~mio_strategies.data.PairedFolderDataset` test set. Composite items
            (:class:`~mio_strategies.data.CompositeFolderDataset`: ``composite`` and ``tasks``
            instead of ``task``) are scored in a column named after the composite; an
            explicit-prompt model gets the equal mixture of the stages' prompts there (or, with
            ``task_source="classifier"``, the predicted task's prompt).
        name: label of the model in tables.
        device: where the test images go; default: the device of the restorer's parameters (the CPU
            for a callable without parameters). A device other than the restorer's is refused.
        task_source: for explicit prompts, ``"given"`` passes the true task (an oracle classifier);
            ``"classifier"`` lets a task classifier pick each image's prompt and records its
            predictions (``EvalResult.classifier_accuracy``). Models without explicit prompts ignore it.
        classifier: the task classifier for ``task_source="classifier"``: a module (e.g.
            :func:`~mio_strategies.harness.load_classifier`) or a classifier file; default: the one set on
            the model's :class:`~mio_strategies.prompts.ExplicitPrompt`, if any, else the one shipped with
            the package (:func:`~mio_strategies.harness.shipped_classifier`, trained on the embedded photos).
        crop_border: pixels cropped at each side before scoring (the reference: 4).
        progress: show a progress bar.

    Returns:
        :class:`EvalResult`.

    Raises:
        ValueError: an unknown ``task_source``, an empty dataset, ``device`` other than the restorer's,
            or a ``classifier`` file that is not a task classifier.
        TypeError: a ``classifier`` that is neither a module nor a file.

    Example:
        >>> res = evaluate(restorer, PairedFolderDataset("mio-testset"))  # doctest: +SKIP
        >>> res.average()["psnr"]  # doctest: +SKIP
    """
    if task_source not in ("given", "classifier"):
        raise ValueError(f"task_source must be 'given' or 'classifier', got {task_source!r}")
    if len(dataset) == 0:
        raise ValueError("the evaluation dataset is empty")
    device = _evaluation_device(restorer, device)
    explicit = getattr(restorer, "prompt", None) == "explicit"
    clf = None
    if task_source == "classifier" and explicit:
        own = getattr(getattr(getattr(restorer, "injector", None), "source", None), "classifier", None)
        # a module or a file; none given: the model's own, else the classifier shipped with the package
        clf = resolve_classifier(classifier if classifier is not None else own).to(device).eval()
    if hasattr(restorer, "eval"):
        restorer.eval()
    indices: Iterable[int] = range(len(dataset))
    if progress:
        from tqdm.auto import tqdm

        indices = tqdm(indices, desc=f"eval {name}", unit="img", dynamic_ncols=True)
    restore = getattr(restorer, "restore", restorer)
    records = []
    for i in indices:
        item = dataset[i]
        # an item of a dataset with synthesis="device" holds its GT until degraded here
        lq = degrade_deferred(mio_collate([item]), device) if item.get("deferred") else item["lq"].unsqueeze(0).to(device)
        gt = item["gt"].unsqueeze(0).to(device)
        if "composite" in item:
            stages = [get_task(int(t)) for t in item["tasks"]]
            rec: dict[str, Any] = {"task": str(item["composite"]), "image": str(item.get("image", i)),
                                   "stages": [t.name for t in stages]}
            mix = torch.zeros(1, len(TASKS), device=device)
            for t in stages:
                mix[0, t.id] += 1.0 / len(stages)
            given = mix if explicit else None
        else:
            task = get_task(int(item["task"]))
            rec = {"task": task.name, "image": str(item.get("image", i))}
            given = torch.tensor([task.id], device=device)
            if explicit and "prompt" in item:  # a protocol's composite degradation: its components' mixture
                given = item["prompt"].unsqueeze(0).to(device)
        if clf is not None:
            pred = int(clf(lq).argmax(-1)[0])
            rec["predicted"] = TASKS[pred].name
            out = restore(lq, torch.tensor([pred], device=device))
        else:
            out = restore(lq, given)
        rec["psnr"] = float(psnr(out, gt, crop_border)[0])
        rec["ssim"] = float(ssim(out, gt, crop_border)[0])
        rec["identity_psnr"] = float(psnr(lq, gt, crop_border)[0])
        rec["identity_ssim"] = float(ssim(lq, gt, crop_border)[0])
        records.append(rec)
    return EvalResult(name, records, testset)


# -- the paper's numbers -------------------------------------------------------------------------------
def paper_results() -> dict[str, Any]:
    """The paper's per-task PSNR tables (section 4.7): ``{"in"|"out": {backbone: {strategy: {task: dB}}}}``.

    Example:
        >>> paper_results()["in"]["srresnet"]["M"]["average"]
        29.52
    """
    text = resources.files("mio_strategies.harness").joinpath("paper_results.json").read_text(encoding="utf-8")
    return json.loads(text)


def reference_row(backbone: str, strategy: str, split: str = "in") -> dict[str, float]:
    """One published row, ``{task: psnr, "average": psnr}``.

    Raises:
        KeyError: no published row for this backbone/strategy/split (lists what exists).
    """
    table = paper_results()
    if split not in ("in", "out"):
        raise KeyError(f"unknown split {split!r}: the paper's per-task tables are 'in' (In-Dis) and 'out' (Out-Dis)")
    rows = table[split]
    key = backbone.removesuffix("_tiny")
    if key not in rows or strategy not in rows[key]:
        avail = {b: sorted(s) for b, s in rows.items()}
        raise KeyError(f"the paper publishes no {split}-dis row for {backbone!r} {strategy!r}; published: {avail}")
    return dict(rows[key][strategy])


# -- tables --------------------------------------------------------------------------------------------
def _rows(results: Sequence[EvalResult], metric: str, include_identity: bool) -> list[tuple[str, dict[str, float], float]]:
    rows = []
    if include_identity and results:
        ident = results[0].identity()
        rows.append((IDENTITY, {k: v[metric] for k, v in ident.per_task().items()}, ident.average()[metric]))
    for r in results:
        rows.append((r.name, {k: v[metric] for k, v in r.per_task().items()}, r.average()[metric]))
    return rows


def _column(task: str) -> str:
    """Column header: ``"S sr"`` for a task, the label itself for a composite (``"blur+noise"``)."""
    return get_task(task).letter + " " + task if task in _TASK_NAMES else task


def _fmt(v: float, digits: int) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _check_names(results: Sequence[EvalResult], identity: bool) -> None:
    """Every row of a table needs its own name: rows are told apart (and the baseline found) by name."""
    seen = set()
    for r in results:
        if identity and r.name == IDENTITY:
            raise ValueError(
                f"a result is named {IDENTITY!r}, the name of the unrestored input's row: give it another name "
                "(evaluate(..., name=...); `mio-strategies eval --name`)"
            )
        if r.name in seen:
            raise ValueError(
                f"two results are both named {r.name!r}, so the table cannot tell them apart: give each result a "
                "distinct name (evaluate(..., name=...); `mio-strategies eval --name`, one per --checkpoint)"
            )
        seen.add(r.name)


def format_table(
    results: Sequence[EvalResult],
    *,
    metric: str = "psnr",
    baseline: str | None = None,
    identity: bool = True,
    reference: Sequence[tuple[str, str, str]] = (),
    fmt: str = "markdown",
) -> str:
    """A per-task table: one row per model (and the identity), columns tasks, average, and the
    difference of the average to ``baseline`` (a model name or ``"identity"``).

    Args:
        results: evaluations on the same test set.
        metric: ``"psnr"`` or ``"ssim"``.
        baseline: the row the last column compares to (default: the first model).
        identity: include the unrestored input as a row.
        reference: published rows to append, as ``(backbone, strategy, split)``; PSNR only.
        fmt: ``"markdown"`` or ``"csv"``.

    Raises:
        ValueError: unknown metric, format or baseline; two results with the same name (or one named
            ``"identity"`` while the identity row is shown).

    Example:
        >>> print(format_table([res_m, res_s], baseline="identity"))  # doctest: +SKIP
    """
    if metric not in ("psnr", "ssim"):
        raise ValueError(f"metric must be 'psnr' or 'ssim', got {metric!r}")
    if fmt not in ("markdown", "csv"):
        raise ValueError(f"fmt must be 'markdown' or 'csv', got {fmt!r}")
    if not results:
        raise ValueError("no results to tabulate")
    _check_names(results, identity)
    rows = _rows(results, metric, identity)
    names = [r[0] for r in rows]
    base = baseline if baseline is not None else results[0].name
    if base not in names:
        raise ValueError(f"baseline {base!r} is not a row of the table: rows are {names}")
    base_avg = rows[names.index(base)][2]
    present = {t for r in rows for t in r[1]}
    tasks = _ordered_columns(present)
    digits = 2 if metric == "psnr" else 4
    header = ["model", *[_column(t) for t in tasks], "average", f"vs {base}"]
    body = []
    for name, per, avg in rows:
        diff = "baseline" if name == base else f"{avg - base_avg:+.{digits}f}"
        body.append([name, *[_fmt(per.get(t, float("nan")), digits) for t in tasks], _fmt(avg, digits), diff])
    if metric == "psnr":
        for backbone, strategy, split in reference:
            row = reference_row(backbone, strategy, split)
            label = f"paper {backbone.removesuffix('_tiny')}-{strategy} ({split}-dis)"
            body.append([label, *[_fmt(row.get(t, float("nan")), 2) for t in tasks], _fmt(row["average"], 2), "published"])
    if fmt == "csv":
        buf = io.StringIO()
        w = csv.writer(buf, lineterminator="\n")
        w.writerow(header)
        w.writerows(body)
        return buf.getvalue()
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(["---"] + ["---:"] * (len(header) - 1)) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


def write_tables(
    results: Sequence[EvalResult],
    output: str | Path,
    *,
    baseline: str | None = None,
    reference: Sequence[tuple[str, str, str]] = (),
    stem: str = "results",
) -> dict[str, Path]:
    """Write ``<stem>.md`` (PSNR and SSIM tables), ``<stem>_psnr.csv``, ``<stem>_ssim.csv`` and ``<stem>.json``.

    Returns:
        ``{"markdown": path, "csv_psnr": path, "csv_ssim": path, "json": path}``.

    Raises:
        ValueError: as :func:`format_table` (no results, duplicate names, unknown baseline); checked
            before anything is written.
        FileExistsError: ``output`` is a file or a symbolic link, not a folder.
        PermissionError: ``output`` is not writable.
    """
    out = Path(output)
    # a link, a file or a read-only folder is refused; files are replaced atomically (never written through
    # a link inside the folder)
    check_output_dir(out, overwrite=False, resume=True)
    # every table is made before the folder is created, so bad input writes nothing
    testset = results[0].testset if results else ""
    md = [f"# Evaluation{(' on ' + testset) if testset else ''}", "", "PSNR (dB, RGB, 4-pixel border crop):", ""]
    md.append(format_table(results, metric="psnr", baseline=baseline, reference=reference))
    md += ["SSIM (RGB, 4-pixel border crop):", "", format_table(results, metric="ssim", baseline=baseline)]
    acc = [(r.name, r.classifier_accuracy()) for r in results if r.classifier_accuracy() is not None]
    if acc:
        per_task = {r.name: r.classifier_accuracy_per_task() for r in results}
        md += ["Task-classifier accuracy (overall, then per task):", ""] + [
            f"- {n}: {a:.3f} (" + ", ".join(f"{t} {v:.3f}" for t, v in per_task[n].items()) + ")" for n, a in acc
        ] + [""]
    csv_psnr = format_table(results, metric="psnr", baseline=baseline, reference=reference, fmt="csv")
    csv_ssim = format_table(results, metric="ssim", baseline=baseline, fmt="csv")
    payload = {"baseline": baseline or results[0].name, "results": [r.to_dict() for r in results]}
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "markdown": out / f"{stem}.md",
        "csv_psnr": out / f"{stem}_psnr.csv",
        "csv_ssim": out / f"{stem}_ssim.csv",
        "json": out / f"{stem}.json",
    }
    for key, text in (("markdown", "\n".join(md)), ("csv_psnr", csv_psnr), ("csv_ssim", csv_ssim),
                      ("json", json.dumps(payload, indent=1))):
        with atomic_file(paths[key], "w") as fh:
            fh.write(text)
    return paths
