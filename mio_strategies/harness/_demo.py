"""The one-command demo: a tiny model trained mixed (M) vs sequential + explicit prompt (S+EP) on the
embedded photos, evaluated per task next to the identity baseline, with plots and a Markdown report."""

from __future__ import annotations

import json
import math
import os
import shutil
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mio_strategies.analysis import ddr, plot_ddr_comparison, plot_psnr_bars
from mio_strategies.data import PairedFolderDataset, build_testset, embedded_image_paths
from mio_strategies.harness import _weights  # WEIGHTS_DIR is read when the demo runs
from mio_strategies.harness._config import TrainConfig, load_config, parse_strategy
from mio_strategies.harness._eval import PSNR_CAP, EvalResult, evaluate, format_table, write_tables
from mio_strategies.harness._train import load_restorer, train
from mio_strategies.harness._weights import shipped_weights, weights_file_name, weights_label
from mio_strategies.metrics.statistics import paired_differences, summarize
from mio_strategies.models import Restorer, injection_plan
from mio_strategies.tasks import get_task
from mio_strategies.utils.outputs import atomic_file, check_output_dir, staging_dir

__all__ = ["run_demo"]

DEMO_STRATEGIES = ("M", "S+EP")


class _BatchPrompted(nn.Module):
    """Wraps a restorer so that a feature-capture loop that only passes images still sets the prompt."""

    restorer: Restorer  # in __dict__, not a submodule

    def __init__(self, restorer: Restorer) -> None:
        super().__init__()
        self.backbone = restorer.backbone
        self.__dict__["restorer"] = restorer
        self.task: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.restorer(x, None if self.task is None else self.task.to(x.device))


def _prompted_batches(wrapper: _BatchPrompted, lq: torch.Tensor, tasks: torch.Tensor, size: int) -> Iterator[dict[str, Any]]:
    for i in range(0, len(lq), size):
        wrapper.task = tasks[i : i + size]
        yield {"lq": lq[i : i + size], "task": tasks[i : i + size]}


def _ddr_layer(restorer: Restorer, cfg: TrainConfig) -> str:
    """The backbone layer the demo projects: the last residual block of a flat network (the paper's
    choice for SRResNet), the finest decoder scale of a U-Net (the last features before the output)."""
    body = [n for n, _ in restorer.backbone.named_modules() if n.startswith("body.") and n.count(".") == 1]
    if body:
        return max(body, key=lambda n: int(n.split(".")[1]))
    plan = injection_plan(cfg.backbone, cfg.backbone_kwargs)
    if "scales" in plan:
        return [s for s in plan["scales"] if s["part"] == "decoder"][-1]["modules"][-1]
    return plan["targets"][-2]


def _ddr_figure(restorers: dict[str, Restorer], configs: dict[str, TrainConfig], data: Any, path: Path,
                seed: int) -> dict[str, float] | str:
    """DDR (PCA) of the last residual block of each model, side by side; CHI per model."""
    items = [data[i] for i in range(len(data))]
    side = min(min(it["lq"].shape[-2:]) for it in items + [{"lq": torch.zeros(3, 128, 128)}])

    def centre(x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        top, left = (h - side) // 2, (w - side) // 2
        return x[..., top : top + side, left : left + side]

    lq = torch.stack([centre(it["lq"]) for it in items])
    tasks = torch.tensor([int(it["task"]) for it in items])
    results = {}
    try:  # the CHI needs scikit-learn and the figure matplotlib: the analysis extra, optional
        for name, r in restorers.items():
            wrapper = _BatchPrompted(r)
            module = "backbone." + _ddr_layer(r, configs[name])
            results[name] = ddr(wrapper, _prompted_batches(wrapper, lq, tasks, 16), module, method="pca", seed=seed)
        plot_ddr_comparison(results, path=path)
    except ImportError as exc:
        return f"skipped (analysis extra unavailable: {exc})"
    return {name: float(res.chi) for name, res in results.items()}


def _no_weights(pretrained: bool | str | Path, folder: Path, what: str) -> FileNotFoundError:
    where = "the package ships no demo weights" if pretrained is True else f"{str(folder)!r} has no weights"
    fix = ("run the demo without --pretrained to train its models (minutes on a CPU)" if pretrained is True
           else "export finished runs there with mio_strategies.harness.export_weights")
    return FileNotFoundError(f"{where} {what}: {fix}")


def _verdict(result: Any) -> str:
    """``- S+EP: average 27.03 dB, above the identity (21.83 dB); above it on every task``: a tie (to the
    printed precision or exactly) counts as "at or below", for the average and for each task alike."""
    avg, ident = result.average()["psnr"], result.average(identity=True)["psnr"]
    ident_tasks = result.per_task(identity=True)
    worse = [t for t, v in result.per_task().items() if round(v["psnr"], 2) <= round(ident_tasks[t]["psnr"], 2)]
    verdict = "above" if round(avg, 2) > round(ident, 2) else "at or below"
    return (f"- {result.name}: average {avg:.2f} dB, {verdict} the identity ({ident:.2f} dB)"
            + (f"; at or below the identity on {', '.join(worse)}" if worse else "; above it on every task"))


# The paper's claims a demo can read, as (strategy, compared to, claim); each is read when both are there.
CLAIMS: tuple[tuple[str, str, str], ...] = (
    ("S", "M", "sequential learning beats mixed training"),
    ("M+EP", "M", "explicit prompts beat mixed training"),
    ("S+EP", "M", "sequential learning with explicit prompts beats mixed training"),
    ("S+AP", "M", "sequential learning with adaptive prompts beats mixed training"),
    ("S+EP", "M+EP", "sequential learning adds to explicit prompts"),
    ("S+AP", "S", "adaptive prompts add to sequential learning"),
)


def paired_difference(result: EvalResult, baseline: EvalResult) -> dict[str, Any]:
    """PSNR of ``result`` minus ``baseline`` on the same test images, paired image by image.

    Pairs whose input already equals its ground truth are left out (as :meth:`EvalResult.per_task` does);
    an infinite PSNR counts as the table's cap.

    Returns:
        ``{"mean": dB, "ci95": half-width of the 95% interval of the mean (normal approximation), "n": pairs,
        "per_task": {task: mean dB}, "ahead": tasks with a positive mean, "tasks": tasks compared}``.

    Raises:
        ValueError: the two results do not hold the same images and tasks.

    Example:
        >>> d = paired_difference(results["S+EP"], results["M"])  # doctest: +SKIP
        >>> f"{d['mean']:+.2f} +/- {d['ci95']:.2f} dB"  # doctest: +SKIP
    """
    def scores(r: EvalResult) -> dict[tuple[str, str], float]:
        return {(x["task"], x["image"]): min(float(x["psnr"]), PSNR_CAP) for x in r.records
                if not math.isinf(float(x["identity_psnr"]))}

    a, b = scores(result), scores(baseline)
    if a.keys() != b.keys() or not a:
        raise ValueError(f"{result.name!r} and {baseline.name!r} were not scored on the same images: pair results of "
                         "one test set")
    diffs = paired_differences(a, b)
    overall = summarize(diffs.values())
    tasks = [t for t in result.single_tasks() if any(k[0] == t for k in diffs)]
    per_task = {t: summarize(v for k, v in diffs.items() if k[0] == t).mean for t in tasks}
    return {"mean": overall.mean, "ci95": overall.ci95 if overall.n > 1 else 0.0, "n": overall.n,
            "per_task": per_task, "ahead": sum(v > 0 for v in per_task.values()), "tasks": len(per_task)}


def _reading(d: dict[str, Any]) -> str:
    low, high = d["mean"] - d["ci95"], d["mean"] + d["ci95"]
    return "supported" if low > 0 else "contradicted" if high < 0 else "not resolved (the interval holds 0)"


def _summary(strategies: Sequence[str], results: Sequence[EvalResult], paired: dict[str, dict[str, Any]],
             source: str) -> str:
    """The verdicts against the input, the paired differences to the baseline and the claims read from them."""
    base = strategies[0]
    lines = ["Against the unrestored input (identity):"] + [_verdict(r) for r in results]
    if paired:
        note = "" if base == "M" else " (M is not among the strategies here)"
        n = next(iter(paired.values()))["n"]
        lines += ["", f"Paired differences to {base}{note}, PSNR in dB over the same {n} test images (mean +/- 95% "
                  "interval; per task):"]
        for s, d in paired.items():
            per = ", ".join(f"{get_task(t).letter} {v:+.2f}" for t, v in d["per_task"].items())
            lines.append(f"- {s} - {base}: {d['mean']:+.2f} +/- {d['ci95']:.2f} dB, ahead on {d['ahead']} of "
                         f"{d['tasks']} tasks ({per})")
    present = set(strategies)
    read, unread = [], []
    for s, ref, claim in CLAIMS:
        if s in present and ref in present:
            d = paired[s] if ref == base else paired_difference(_by_name(results, s), _by_name(results, ref))
            read.append(f"- {claim} ({s} > {ref}): {_reading(d)}, {d['mean']:+.2f} +/- {d['ci95']:.2f} dB")
        else:
            unread.append(f"{s} > {ref}")
    if read:
        lines += ["", "The paper's claims, read from these differences (supported: the whole 95% interval above 0):"]
        lines += read
    if unread:
        lines += ["", f"Not read here (a strategy's weights are missing): {', '.join(unread)}."]
    lines += ["", source]
    return "\n".join(lines)


def _by_name(results: Sequence[EvalResult], name: str) -> EvalResult:
    return next(r for r in results if r.name == name)


def _chi_text(chi: float) -> str:
    """A CHI as the DDR figure's panel titles print it: whole numbers from 10 up, two decimals below."""
    return f"{chi:.0f}" if abs(chi) >= 10 else f"{chi:.2f}"


def run_demo(
    output: str | Path | None = None,
    *,
    config: TrainConfig | str = "cpu_demo",
    overrides: Sequence[str] = (),
    strategies: Sequence[str] | None = None,
    overwrite: bool = False,
    progress: bool = True,
    seed: int = 0,
    pretrained: bool | str | Path = False,
) -> dict[str, Any]:
    """Train a tiny model with each strategy on the embedded images (or load trained weights), evaluate,
    plot and report.

    Writes ``output/<strategy>/`` (run folders, when training), ``output/testset/`` (the In-Dis test set
    built from the embedded photos), ``results.md`` / ``.csv`` / ``.json``, ``psnr_bars.png``, ``ddr.png``
    and ``report.md``. Everything is built in a hidden folder beside ``output`` and renamed into place at the
    end, so a failed or interrupted run leaves nothing that blocks the next one.

    Args:
        output: the demo folder (refused when it exists, unless ``overwrite``); default ``mio-demo`` when
            training, ``mio-demo-pretrained`` with ``pretrained``, so the two never collide.
        config: the training preset (``cpu_demo``: about 1-2 minutes per strategy on a 2-core CPU).
        overrides: ``key=value`` changes to the preset (e.g. ``period_iters=10`` for a smoke run).
        strategies: the strategies compared; the first is the table's baseline. Default: M and S+EP when
            training; with ``pretrained``, every strategy whose weights the folder holds (in the order M, S,
            M+EP, S+EP, M+AP, S+AP).
        seed: paired seed (same initial weights and data for every strategy); also the test set's draws.
        pretrained: evaluate trained weights instead of training: ``True`` for the weights shipped with
            the package (see :func:`~mio_strategies.harness.shipped_weights`), or a folder holding one
            file per strategy (``M.pt``, ``S_EP.pt``, as :func:`~mio_strategies.harness.export_weights`
            writes them, or any harness checkpoint under that name). ``config`` and ``overrides`` do not
            apply then.

    Returns:
        ``{"table": markdown, "summary": text, "results": {strategy: EvalResult}, "paired": {strategy:
        differences to the baseline}, "paths": {...}, "chi": ...}``; ``summary`` holds the verdicts against the
        input, the paired differences to the baseline (M when it is there) and the paper's claims read from them,
        as the command prints them.

    Raises:
        FileExistsError: ``output`` is a link or a file, or a non-empty folder without ``overwrite`` (with it,
            one that the library did not write).
        FileNotFoundError: ``pretrained`` lacks a strategy's weights (or holds none).
        ValueError: ``overrides`` given with ``pretrained``; weights of another strategy than their name says.
    """
    # everything is checked before the output folder is touched
    if output is None:
        output = "mio-demo" if pretrained is False else "mio-demo-pretrained"
    check_output_dir(output, overwrite=overwrite, what="demo folder")
    folder = None if pretrained is False else _weights.WEIGHTS_DIR if pretrained is True else Path(pretrained)
    if folder is not None and pretrained is not True and not folder.is_dir():
        what = "is a file, not a folder" if folder.is_file() else "does not exist"
        raise FileNotFoundError(f"pretrained weights folder {str(folder)!r} {what}: give the folder that holds the "
                                "exported weights (M.pt, S_EP.pt, ...), or no folder for the shipped ones")
    found = shipped_weights(folder) if folder is not None else {}
    if strategies is None and folder is not None:  # every strategy whose weights are there
        strategies = list(found)
        if not strategies:
            raise _no_weights(pretrained, folder, f"(files named like {weights_file_name('M')}, {weights_file_name('S+EP')})")
    elif strategies is None:
        strategies = DEMO_STRATEGIES
    for s in strategies:
        parse_strategy(s)
    strategies = [s.strip().upper() for s in strategies]
    if not strategies or len(set(strategies)) != len(strategies):
        raise ValueError(f"strategies must name each strategy once (the first is the baseline), got {strategies}")
    loaded: dict[str, tuple[Restorer, TrainConfig, dict[str, Any]]] = {}
    if folder is not None:
        if overrides or not (isinstance(config, str) and config == "cpu_demo"):
            raise ValueError("config/overrides (--set) change training, and pretrained weights are not trained: "
                             "drop them, or drop pretrained to train")
        missing = [s for s in strategies if s not in found]
        if missing:
            raise _no_weights(pretrained, folder, f"{', '.join(weights_file_name(s) for s in missing)} (weights of {missing})")
        for s in strategies:
            restorer, cfg, state = load_restorer(found[s])
            if cfg.strategy != s:
                raise ValueError(f"{str(found[s])!r} holds {cfg.strategy} weights, not {s}: rename or re-export it")
            loaded[s] = (restorer, cfg, state)
        configs = [loaded[s][1] for s in strategies]
        base = configs[0]
    else:
        base = config if isinstance(config, TrainConfig) else load_config(config, list(overrides) + [f"seed={seed}"])
        configs = [base.replace(strategy=s, name=f"demo-{s}") for s in strategies]  # validates every strategy first
    final = Path(output)
    with staging_dir(final, command="demo") as out:  # removed if the demo fails or is interrupted
        res = _run(out, final, base, configs, strategies, loaded, seed, progress)
        if final.exists():  # overwrite (a demo folder, checked above): the old one goes once the new one is complete
            shutil.rmtree(final)
        os.replace(out, final)
    return res


def _run(out: Path, final: Path, base: TrainConfig, configs: list[TrainConfig], strategies: list[str],
         loaded: dict[str, tuple[Restorer, TrainConfig, dict[str, Any]]], seed: int, progress: bool) -> dict[str, Any]:
    """The demo's work, written into ``out``; the paths it returns are those of ``final``."""
    testset_dir = out / "testset"
    build_testset(embedded_image_paths(), testset_dir, tasks=base.order_tasks, preset="in", seed=seed + 1)
    testset = PairedFolderDataset(testset_dir)

    results: dict[str, EvalResult] = {}
    restorers: dict[str, Restorer] = {}
    timings: dict[str, float] = {}
    for cfg in configs:
        if loaded:
            restorer = loaded[cfg.strategy][0]
        else:
            run = train(cfg, out / cfg.strategy.replace("+", "_"), progress=progress)
            assert run.restorer is not None
            restorer = run.restorer
            timings[cfg.strategy] = run.seconds
        restorers[cfg.strategy] = restorer
        results[cfg.strategy] = evaluate(restorer, testset, name=cfg.strategy, testset="embedded In-Dis", progress=progress)

    ordered = [results[s] for s in strategies]
    table = format_table(ordered, baseline=strategies[0])
    paths = {k: str(v) for k, v in write_tables(ordered, out, baseline=strategies[0]).items()}

    try:
        bars = {s: {t: v["psnr"] for t, v in results[s].per_task().items()} for s in strategies}
        ident = {t: v["psnr"] for t, v in ordered[0].per_task(identity=True).items()}
        plot_psnr_bars(bars, baseline=ident, title="Per-task PSNR (embedded photos, In-Dis)", path=out / "psnr_bars.png")
        paths["psnr_bars"] = str(out / "psnr_bars.png")
    except ImportError as exc:
        paths["psnr_bars"] = f"skipped ({exc})"
    chi = _ddr_figure(restorers, {c.strategy: c for c in configs}, testset, out / "ddr.png", seed)
    if isinstance(chi, dict):
        paths["ddr"] = str(out / "ddr.png")

    if loaded:
        source = ("Pretrained weights (not trained here): " + "; ".join(
            f"{s}: {loaded[s][1].name}, {loaded[s][2]['iteration']} iterations, {weights_label(loaded[s][2])} weights"
            for s in strategies) + ".")
    else:
        source = ("Wall time of each training, on this machine under its load at the time (every strategy runs the "
                  "same iterations of the same network, so these are not speeds to compare): "
                  + ", ".join(f"{s} {timings[s]:.0f} s" for s in strategies) + ".")
    paired = {s: paired_difference(results[s], results[strategies[0]]) for s in strategies[1:]}
    summary = _summary(strategies, ordered, paired, source)
    layer = _ddr_layer(restorers[strategies[0]], configs[0])
    report = _report(base, strategies, ordered, table, summary, chi, layer, trained_here=not loaded)
    with atomic_file(out / "report.md", "w") as fh:
        fh.write(report)
    paths["report"] = str(out / "report.md")
    paths = {k: v if v.startswith("skipped") else str(final / Path(v).relative_to(out)) for k, v in paths.items()}
    with atomic_file(out / "demo.json", "w") as fh:
        fh.write(json.dumps({"chi": chi, "seconds": timings, "paths": paths, "paired": paired}, indent=1))
    return {"table": table, "summary": summary, "results": results, "paired": paired, "paths": paths, "chi": chi}


def _report(cfg: TrainConfig, strategies: Sequence[str], results: Sequence[EvalResult], table: str,
            summary: str, chi: Any, layer: str, trained_here: bool = True) -> str:
    lines = [
        "# mio-strategies demo", "",
        f"Backbone `{cfg.backbone}` {cfg.backbone_kwargs}, {cfg.periods} periods x {cfg.period_iters} iterations, "
        f"batch {cfg.batch_size}, {cfg.patch_size} px patches, order {cfg.order}, seed {cfg.seed} (paired: same "
        "initial weights and data for every strategy). Test set: the six embedded photos, whole, degraded by every "
        "task (In-Dis ranges, other draws than training). The models trained on crops of the same photos, so this "
        "measures fit, not generalisation to new images. PSNR on RGB with a 4-pixel border crop; `identity` is "
        "the unrestored input.", "",
        table,
        summary,
    ]
    if isinstance(chi, dict):
        lines += ["", f"DDR (PCA of the pooled features of `{layer}`), Calinski-Harabasz index by task: "
                  + ", ".join(f"{k} {_chi_text(v)}" for k, v in chi.items()) + " (higher: tasks better separated).", "",
                  "![per-task PSNR](psnr_bars.png)", "", "![DDR](ddr.png)"]
    if any(s.endswith("+EP") for s in strategies):
        lines += ["", "Explicit-prompt rows are given each image's task. The paper's EP tables let a task classifier "
                  "pick it: `mio-strategies eval --task-source classifier` (the classifier shipped with the package, or "
                  "`--classifier FILE` from `mio-strategies train-classifier`)."]
    scale = ("This is a minutes-scale CPU run on six photos" if trained_here
             else "These are CPU-scale models evaluated on six photos")
    lines += ["", f"{scale}: it shows the pipeline, not the paper's numbers. See docs/reproducing.md for the full protocol."]
    return "\n".join(lines) + "\n"
