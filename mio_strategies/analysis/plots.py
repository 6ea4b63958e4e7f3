"""Figures for the analysis: DDR scatter plots coloured by task, side-by-side comparisons, PSNR bars.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas (no pyplot, no global
state, no display needed) and written as PNG when ``path`` is given.

Example:
    >>> import numpy as np
    >>> from mio_strategies.analysis import plot_psnr_bars
    >>> table = {"mixed": {"sr": 25.5, "noise": 30.5}, "sequential": {"sr": 25.9, "noise": 30.8}}
    >>> fig = plot_psnr_bars(table, baseline={"sr": 24.1, "noise": 20.2})
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from mio_strategies.analysis._deps import require
from mio_strategies.analysis._validate import _as_numpy, _validate_labels
from mio_strategies.analysis.representation import DDRResult
from mio_strategies.tasks import TASK_COLORS, TASKS, Task, UnknownTaskError, get_task
from mio_strategies.utils.validation import finite_float

__all__ = ["TASK_COLORS", "plot_ddr", "plot_ddr_comparison", "plot_psnr_bars", "save_figure", "task_color"]

#: One colour per task id, in the canonical order S, B, N, J, R, H, L (Okabe-Ito, colour-blind safe).
_IDENTITY_COLOR = "#B0B0B0"
_MODEL_COLORS = ("#4C72B0", "#DD8452", "#55A868", "#C44E52", "#8172B3", "#937860", "#DA8BC3", "#8C8C8C")


def task_color(task: Any) -> str:
    """The plot colour of a task (name, letter, id or ``Task``).

    Example:
        >>> task_color("noise")
        '#009E73'
    """
    return TASK_COLORS[get_task(task).id]


def _new_figure(figsize: tuple[float, float]) -> Any:
    figure = require("matplotlib.figure", feature="analysis plots")
    backend_agg = require("matplotlib.backends.backend_agg", feature="analysis plots")
    fig = figure.Figure(figsize=figsize, layout="constrained")
    backend_agg.FigureCanvasAgg(fig)
    return fig


def save_figure(fig: Any, path: str | Path, *, dpi: int = 150) -> Path:
    """Write a figure as PNG (parent folders are created).

    Args:
        fig: a matplotlib ``Figure``.
        path: the output file; it should end in ``.png``.
        dpi: resolution.

    Returns:
        The path written.

    Raises:
        ValueError: a suffix other than ``.png``.

    Example:
        >>> save_figure(plot_psnr_bars({"m": {"sr": 25.0, "blur": 28.0}}), "psnr.png")  # doctest: +SKIP
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise ValueError(f"figures are written as PNG: give a path ending in .png, got {str(path)!r}")
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=dpi)
    return path


def _format_chi(chi: float) -> str:
    return f"CHI: {chi:.0f}" if abs(chi) >= 10 else f"CHI: {chi:.2f}"


def _task_labels(labels: Any, n: int) -> np.ndarray:
    raw = _validate_labels(labels, n)
    try:
        return np.asarray([get_task(v).id for v in raw.tolist()], dtype=np.int64)
    except UnknownTaskError as exc:
        raise ValueError(f"plot labels must be task ids 0..{len(TASKS) - 1}, names or letters: {exc}") from exc


_METHOD_NAMES = {"pca": "PCA", "umap": "UMAP", "tsne": "t-SNE"}


def _draw_ddr(ax: Any, embedding: np.ndarray, ids: np.ndarray, chi: float | None, title: str | None, size: float,
              method: str | None = None) -> None:
    for task in TASKS:  # canonical order, so legends and overlaps are the same in every figure
        mask = ids == task.id
        if mask.any():
            ax.scatter(
                embedding[mask, 0],
                embedding[mask, 1],
                s=size,
                c=TASK_COLORS[task.id],
                label=f"{task.letter}: {task.title}",
                alpha=0.8,
                linewidths=0,
            )
    ax.set_xticks([])
    ax.set_yticks([])
    axis = _METHOD_NAMES.get(str(method).lower(), str(method)) if method else "dimension"
    ax.set_xlabel(f"{axis} 1")
    ax.set_ylabel(f"{axis} 2")
    heading = [t for t in (title, _format_chi(chi) if chi is not None else None) if t]
    if heading:
        ax.set_title("\n".join(heading))


def _ddr_inputs(data: DDRResult | Any, labels: Any, chi: float | None) -> tuple[np.ndarray, np.ndarray, float | None]:
    if isinstance(data, DDRResult):
        if labels is not None:
            raise ValueError("labels come from the DDRResult: do not pass labels= with a result")
        return data.embedding, data.labels, data.chi if chi is None else chi
    if labels is None:
        raise ValueError("plot_ddr needs labels= (task ids) when given an embedding instead of a DDRResult")
    emb = np.asarray(_as_numpy(data, "embedding"), dtype=np.float64)
    if emb.ndim != 2 or emb.shape[1] != 2:
        raise ValueError(f"Expected a 2D embedding of shape (N, 2), got shape {tuple(emb.shape)}; use project() first")
    if not np.isfinite(emb).all():
        raise ValueError("the embedding contains NaN or inf")
    return emb, _task_labels(labels, emb.shape[0]), chi


def plot_ddr(
    data: DDRResult | Any,
    labels: Any = None,
    *,
    chi: float | None = None,
    title: str | None = None,
    ax: Any = None,
    path: str | Path | None = None,
    point_size: float = 8.0,
    legend: bool = True,
) -> Any:
    """Scatter a 2-D DDR embedding coloured by task, with the CHI in the title (as the paper's Fig. 4).

    Args:
        data: a :class:`DDRResult`, or an ``(N, 2)`` embedding with ``labels=``.
        labels: task ids/names for an embedding (not with a result).
        chi: the CHI to show (default: the result's; none for a bare embedding).
        title: a heading above the CHI (e.g. ``"SRResNet-S+AP"``).
        ax: draw into this matplotlib ``Axes`` instead of a new figure.
        path: write the figure here as PNG.
        point_size: marker area.
        legend: add a legend of the tasks present, in canonical order.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: an embedding that is not ``(N, 2)`` or not finite, mismatched labels, labels
            that are not tasks, labels given with a result, a path not ending in ``.png``.
        ImportError: matplotlib is missing (``pip install mio-strategies[analysis]``).

    Example:
        >>> emb = np.array([[0.0, 0.0], [0.1, 0.0], [3.0, 3.0], [3.1, 3.0]])
        >>> fig = plot_ddr(emb, [0, 0, 5, 5], chi=120.0, title="demo")
    """
    emb, ids, shown_chi = _ddr_inputs(data, labels, chi)
    if ax is None:
        fig = _new_figure((4.6, 4.2))
        ax = fig.add_subplot()
    else:
        fig = ax.figure
    _draw_ddr(ax, emb, ids, shown_chi, title, point_size, data.method if isinstance(data, DDRResult) else None)
    if legend:
        ax.legend(loc="best", fontsize="x-small", markerscale=1.5, frameon=False)
    if path is not None:
        save_figure(fig, path)
    return fig


def plot_ddr_comparison(
    results: Mapping[str, DDRResult],
    *,
    path: str | Path | None = None,
    point_size: float = 8.0,
) -> Any:
    """Side-by-side DDR scatter plots of several models (e.g. mixed vs sequential), one shared legend.

    Each panel is titled by its model and CHI, its axes by the projection method (``PCA 1``, ``PCA 2``); when
    every panel shows the same method and layer, the figure's title names them.

    Args:
        results: panel title -> :class:`DDRResult`, in display order (at least one).
        path: write the figure here as PNG.
        point_size: marker area.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: no results, or an entry that is not a ``DDRResult``.

    Example:
        >>> import torch
        >>> g = torch.Generator().manual_seed(0)
        >>> a = DDRResult.from_features(torch.randn(20, 4, generator=g), [0] * 10 + [1] * 10, method="pca")
        >>> fig = plot_ddr_comparison({"mixed": a, "sequential": a})
    """
    if not isinstance(results, Mapping) or not results:
        raise ValueError("plot_ddr_comparison needs a non-empty mapping of title -> DDRResult")
    bad = [k for k, v in results.items() if not isinstance(v, DDRResult)]
    if bad:
        raise ValueError(f"entries {bad} are not DDRResult objects; compute them with ddr() or DDRResult.from_features()")
    fig = _new_figure((4.0 * len(results) + 1.6, 4.2))
    axes = fig.subplots(1, len(results), squeeze=False)[0]
    for ax, (name, res) in zip(axes, results.items()):
        _draw_ddr(ax, res.embedding, res.labels, res.chi, str(name), point_size, res.method)
    methods = {_METHOD_NAMES.get(r.method.lower(), r.method) for r in results.values()}
    modules = {r.module for r in results.values()}
    if len(methods) == 1 and len(modules) == 1:  # what every panel shows, named once
        fig.suptitle(f"DDR ({methods.pop()}) of {modules.pop()}", fontsize="medium")
    present = sorted({int(i) for r in results.values() for i in np.unique(r.labels)})
    lines = require("matplotlib.lines", feature="analysis plots")
    handles = [
        lines.Line2D([], [], marker="o", linestyle="", color=TASK_COLORS[i], label=f"{TASKS[i].letter}: {TASKS[i].title}")
        for i in present
    ]
    fig.legend(handles=handles, loc="outside right center", fontsize="small", frameon=False)
    if path is not None:
        save_figure(fig, path)
    return fig


def _validate_psnr_table(
    table: Mapping[str, Mapping[Any, float]], baseline: Mapping[Any, float] | None
) -> tuple[list[str], list[Task], np.ndarray, np.ndarray | None]:
    if not isinstance(table, Mapping) or not table:
        raise ValueError("the PSNR table must be a non-empty mapping: model name -> {task name -> PSNR}")

    def row(name: str, scores: Any) -> dict[int, float]:
        if not isinstance(scores, Mapping) or not scores:
            raise ValueError(f"PSNR row {name!r} must be a non-empty mapping task name -> PSNR, got {scores!r}")
        out: dict[int, float] = {}
        for task, value in scores.items():
            tid = get_task(task).id  # UnknownTaskError lists the valid tasks
            if tid in out:
                raise ValueError(f"PSNR row {name!r} gives task {TASKS[tid].name!r} twice")
            out[tid] = finite_float(f"PSNR of {name!r} / {task!r}", value)
        return out

    rows = {str(name): row(str(name), scores) for name, scores in table.items()}
    base = row("baseline", baseline) if baseline is not None else None
    task_sets = {name: set(r) for name, r in rows.items()}
    reference = set().union(*task_sets.values())
    for name, ids in task_sets.items():
        missing = sorted(reference - ids)
        if missing:
            raise ValueError(
                f"PSNR row {name!r} lacks tasks {[TASKS[i].name for i in missing]} that other rows have; "
                "give every model the same tasks"
            )
    if base is not None and not reference <= set(base):
        missing = sorted(reference - set(base))
        raise ValueError(f"the baseline lacks tasks {[TASKS[i].name for i in missing]}; give it every task in the table")
    tasks = [t for t in TASKS if t.id in reference]
    values = np.array([[rows[name][t.id] for t in tasks] for name in rows])
    base_values = np.array([base[t.id] for t in tasks]) if base is not None else None
    return list(rows), tasks, values, base_values


def plot_psnr_bars(
    table: Mapping[str, Mapping[Any, float]],
    *,
    baseline: Mapping[Any, float] | None = None,
    title: str | None = None,
    show_mean: bool = True,
    path: str | Path | None = None,
) -> Any:
    """Grouped bars of per-task PSNR for several models, tasks in canonical order.

    Args:
        table: model name -> {task (name, letter or id) -> PSNR in dB}; every model gives the same tasks.
        baseline: optional {task -> PSNR} of the identity (the degraded input against the GT), drawn
            as grey bars first in each group.
        title: figure title.
        show_mean: add an ``Avg.`` group (mean over the tasks, as in the paper's tables).
        path: write the figure here as PNG.

    Returns:
        The matplotlib ``Figure``.

    Raises:
        ValueError: an empty table, rows with different tasks, a task given twice, non-finite values.
        TypeError: a non-numeric value.
        mio_strategies.tasks.UnknownTaskError: an unknown task name (lists the valid tasks).

    Example:
        >>> fig = plot_psnr_bars({"M": {"S": 25.52, "B": 30.01}, "S": {"S": 25.87, "B": 30.28}})
    """
    names, tasks, values, base_values = _validate_psnr_table(table, baseline)
    groups: Sequence[str] = [t.letter for t in tasks]
    if show_mean:
        values = np.concatenate([values, values.mean(axis=1, keepdims=True)], axis=1)
        if base_values is not None:
            base_values = np.append(base_values, base_values.mean())
        groups = [*groups, "Avg."]
    series: list[tuple[str, np.ndarray, str, str | None]] = []
    if base_values is not None:
        series.append(("identity (input)", base_values, _IDENTITY_COLOR, "//"))
    for i, name in enumerate(names):
        series.append((name, values[i], _MODEL_COLORS[i % len(_MODEL_COLORS)], None))

    fig = _new_figure((min(14.0, max(6.0, 2.5 + 0.22 * len(groups) * len(series))), 3.6))
    ax = fig.add_subplot()
    x = np.arange(len(groups))
    width = 0.8 / len(series)
    for k, (label, vals, color, hatch) in enumerate(series):
        ax.bar(x - 0.4 + width * (k + 0.5), vals, width, label=label, color=color, hatch=hatch, edgecolor="white")
    every = np.concatenate([s[1] for s in series])
    low, high = float(every.min()), float(every.max())
    ax.set_ylim(max(0.0, math.floor(low) - 2.0), math.ceil(high) + 1.0)
    ax.set_xticks(x, groups)
    ax.set_ylabel("PSNR (dB)")
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)
    fig.legend(fontsize="small", frameon=False, loc="outside right upper")
    if title:
        ax.set_title(title)
    if path is not None:
        save_figure(fig, path)
    return fig
