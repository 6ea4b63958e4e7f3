"""Training speed side by side: precision / compile / channels-last per preset, synthesis streams, packed runs.

Three tables, each measured in one run on one device, with ratios to the first column:

* ``steps``: training steps per second of each preset's backbone (batch and patch size of the preset, random
  inputs: the model step alone, data left out) in fp32, bf16 autocast, ``torch.compile`` and channels-last,
  as the harness runs them (``mio_strategies.harness._acceleration.Acceleration``). Compilation is warm-up:
  the first steps of every cell are not timed.
* ``synthesis``: degraded patches per second of each task, as the dataset synthesizes them (one patch per
  call, the torch stream, CPU) and batched on the device with the torch stream and with the Philox stream
  (noise and rain draw their fields on the device; the other tasks do not draw fields, so their two
  batched columns are the same computation); and JPEG with the DiffJPEG codec, per patch and batched on the
  device as the training loop runs it with ``synthesis: device`` (``degrade_deferred``).
* ``rain``: the Philox stream's rain streak layer (streak kernels, sparse scatter, normalisation) per
  second: built with NumPy on the CPU (the torch stream's layer, and the Philox stream's before the torch
  layer) vs built with torch on the device (what ``degrade(..., stream="philox")`` runs now), the same
  parameters and seeds; and the whole rain degradation with each layer.
* ``packed``: the converged tier's backbone, N runs stepped one after another (each its own model and
  Adam) vs stacked and stepped together (``torch.func``, as ``train_packed`` does): run-iterations/s.

    python benchmarks/train_speed.py                          # CPU: a few seconds per cell
    python benchmarks/train_speed.py --device cuda --presets mini_converged srresnet swinir restormer promptir
    python benchmarks/train_speed.py --sections synthesis --device cuda --batch 64 --patch 128
    python benchmarks/train_speed.py --sections rain --threads 1 --seconds 2   # the streak layers alone
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

try:  # run from a clone without installing: use the working tree's package
    import mio_strategies  # noqa: F401
except ImportError:  # pragma: no cover
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

VARIANTS = {
    "fp32": ("fp32", False, False),
    "bf16": ("bf16", False, False),
    "compile": ("fp32", "default", False),
    "channels-last": ("fp32", False, True),
    "bf16+compile": ("bf16", "default", False),
}
TASKS = ("sr", "blur", "noise", "jpeg", "rain", "haze", "lowlight")


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _timed(step, device: torch.device, seconds: float, warmup: int, min_steps: int = 3) -> float:
    """Steps per second of ``step()`` after ``warmup`` untimed calls, timed for about ``seconds``."""
    for _ in range(warmup):
        step()
    _sync(device)
    n, t0 = 0, time.perf_counter()
    while n < min_steps or time.perf_counter() - t0 < seconds:
        step()
        n += 1
        if n % 5 == 0:
            _sync(device)
    _sync(device)
    return n / (time.perf_counter() - t0)


def step_speed(
    preset: str, variant: str, device: torch.device, seconds: float, batch: int | None = None, patch: int | None = None
) -> float:
    """Training steps per second of ``preset``'s backbone (strategy M) under ``variant``, at the preset's batch
    and patch size unless ``batch`` / ``patch`` are given."""
    import torch.nn.functional as F

    from mio_strategies.harness import build_restorer, load_config
    from mio_strategies.harness._acceleration import Acceleration

    cfg = load_config(preset, ["strategy=M"])
    precision, mode, cl = VARIANTS[variant]
    restorer = build_restorer(cfg.backbone, None, backbone_kwargs=cfg.backbone_kwargs, seed=0).to(device)
    acc = Acceleration(precision, mode, cl, device)
    acc.prepare(restorer)
    opt = torch.optim.Adam(restorer.parameters(), lr=1e-4)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda _: 1.0)
    g = torch.Generator().manual_seed(0)
    n, side = batch or cfg.batch_size, patch or cfg.patch_size
    lq = acc.inputs(torch.rand(n, 3, side, side, generator=g).to(device))
    gt = acc.inputs(torch.rand(n, 3, side, side, generator=g).to(device))
    restorer.train()

    def step() -> None:
        with acc.autocast():
            out = restorer(lq)
        loss = F.l1_loss(out.float(), gt)
        opt.zero_grad(set_to_none=True)
        acc.backward(loss)
        acc.step(opt, sched)

    return _timed(step, device, seconds, warmup=3 if mode else 2)


def steps_table(
    presets: list[str],
    variants: list[str],
    device: torch.device,
    seconds: float,
    compile_presets: list[str] | None = None,
    batch: int | None = None,
    patch: int | None = None,
) -> list[str]:
    """One row per preset; compiled variants only for ``compile_presets`` (None: all), "-" elsewhere; each
    preset at its own batch and patch size unless ``batch`` / ``patch`` are given (the row says which)."""
    header = ["preset (batch x patch)", *(f"{v} it/s" for v in variants), *(f"{v} / fp32" for v in variants[1:])]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    from mio_strategies.harness import load_config

    for preset in presets:
        cfg = load_config(preset)
        speeds = []
        for v in variants:
            if VARIANTS[v][1] and compile_presets is not None and preset not in compile_presets:
                speeds.append(float("nan"))
                continue
            try:
                speeds.append(step_speed(preset, v, device, seconds, batch, patch))
            except Exception as exc:  # noqa: BLE001 - a variant a backbone or device does not support: say so
                print(f"  {preset} {v}: failed ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})", flush=True)
                speeds.append(float("nan"))
            print(f"  {preset} {v}: {speeds[-1]:.2f} it/s", flush=True)
        base = speeds[0]

        def cell(x: float, fmt: str) -> str:
            return "-" if x != x else format(x, fmt)

        row = [
            f"{preset} ({batch or cfg.batch_size} x {patch or cfg.patch_size})",
            *(cell(s, ".2f") for s in speeds),
            *(cell(s / base, ".2f") + ("x" if s == s else "") for s in speeds[1:]),
        ]
        lines.append("| " + " | ".join(row) + " |")
    return lines


def synthesis_speed(
    task: str, mode: str, device: torch.device, batch: int, patch: int, seconds: float, codec: str | None = None
) -> float:
    """Patches per second of ``task``: ``item`` (one patch per call, torch stream, CPU, as the dataset does),
    ``torch`` / ``philox`` (a batch on ``device``). JPEG with ``codec="diffjpeg"`` batched: the training loop's
    ``synthesis: device`` call, :func:`degrade_deferred` on a batch of deferred JPEG items whose GT is on
    ``device`` (the transfer every batch makes, whatever the synthesis, is left out)."""
    from mio_strategies.data import degrade_deferred
    from mio_strategies.degradations import degrade, sample_params

    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, patch, patch, generator=g)
    kw = {"codec": codec}
    if mode == "item":

        def run() -> None:
            for i in range(batch):
                degrade(x[i : i + 1], task, generator=g, stream="torch", **kw)
    elif task == "jpeg" and codec == "diffjpeg":  # as MiODataset(synthesis="device", jpeg_codec="diffjpeg") + the loop
        p = sample_params("jpeg", batch, generator=g, codec=codec)
        items = [{"quality": p["quality"][i], "codec": codec} for i in range(batch)]
        deferred = {"lq": x.to(device), "task": torch.full((batch,), 3), "params": items, "deferred": [True] * batch}

        def run() -> None:
            degrade_deferred(deferred, device)
    else:
        xd = x.to(device)

        def run() -> None:
            degrade(xd, task, generator=g, stream=mode, **kw)

    return batch * _timed(run, device if mode != "item" else torch.device("cpu"), seconds, warmup=1, min_steps=2)


def synthesis_table(device: torch.device, batch: int, patch: int, seconds: float) -> list[str]:
    where = "CPU" if device.type == "cpu" else "GPU"
    lines = [
        f"| task | per patch, torch stream, CPU | batch {batch}, torch stream, {where} | batch {batch}, philox, {where} "
        f"| philox / torch (batched) | philox / per patch |",
        "|---|---|---|---|---|---|",
    ]
    # JPEG also with the DiffJPEG codec (the default codec is Pillow, per image on the CPU): per patch as the
    # loader runs it, batched as the training loop runs it with synthesis: device (degrade_deferred)
    for task, codec in [(t, None) for t in TASKS] + [("jpeg", "diffjpeg")]:
        v = [synthesis_speed(task, m, device, batch, patch, seconds, codec) for m in ("item", "torch", "philox")]
        name = task if codec is None else f"{task} (DiffJPEG codec)"
        print(f"  {name}: " + ", ".join(f"{x:.0f}" for x in v) + " patches/s", flush=True)
        lines.append(f"| {name} | {v[0]:.0f} | {v[1]:.0f} | {v[2]:.0f} | {v[2] / v[1]:.2f}x | {v[2] / v[0]:.2f}x |")
    return lines


def rain_layer_table(device: torch.device, batch: int, patch: int, seconds: float) -> list[str]:
    """Patches/s of the Philox stream's rain streak layer, NumPy (CPU) vs torch (``device``), and of the whole
    rain degradation with each layer (the NumPy one moved to the device, as the torch stream does)."""
    from mio_strategies.degradations import _functional as fn
    from mio_strategies.degradations import apply_degradation, sample_params
    from mio_strategies.degradations._rain import rain_layer
    from mio_strategies.degradations._rain_torch import rain_layer_torch

    where = "CPU" if device.type == "cpu" else "GPU"
    p = sample_params("rain", batch, generator=torch.Generator().manual_seed(0), stream="philox")
    args = [p[k] for k in ("seed", "amount", "length", "angle", "width")]
    x = torch.rand(batch, 3, patch, patch, generator=torch.Generator().manual_seed(1)).to(device)

    def numpy_layer() -> None:
        rain_layer(*args, patch, patch, device, torch.float32, stream="philox")

    def torch_layer() -> None:
        rain_layer_torch(*args, patch, patch, device, torch.float32)

    def degrade_with(layer) -> float:
        saved = fn.rain_layer_torch
        fn.rain_layer_torch = layer  # the Philox rain of degrade() with the given streak layer
        try:
            return batch * _timed(lambda: apply_degradation(x, "rain", p), device, seconds, warmup=1, min_steps=2)
        finally:
            fn.rain_layer_torch = saved

    def numpy_as_layer(*a, **k):
        return rain_layer(*a, **k, stream="philox")

    v = [batch * _timed(f, device, seconds, warmup=1, min_steps=2) for f in (numpy_layer, torch_layer)]
    d = [degrade_with(numpy_as_layer), degrade_with(rain_layer_torch)]
    print(f"  rain layer: NumPy {v[0]:.0f}, torch {v[1]:.0f}; rain: {d[0]:.0f}, {d[1]:.0f} patches/s", flush=True)
    return [
        f"| rain, Philox stream, batch {batch} | NumPy streak layer (CPU) | torch streak layer ({where}) | torch / NumPy |",
        "|---|---|---|---|",
        f"| streak layer alone | {v[0]:.0f} | {v[1]:.0f} | {v[1] / v[0]:.2f}x |",
        f"| whole rain degradation | {d[0]:.0f} | {d[1]:.0f} | {d[1] / d[0]:.2f}x |",
    ]


def packed_table(runs: int, device: torch.device, seconds: float, preset: str = "mini_converged") -> list[str]:
    """Run-iterations per second of ``runs`` copies of ``preset``'s backbone: one after another vs packed."""
    import copy

    import torch.nn.functional as F
    from torch.func import functional_call, stack_module_state, vmap

    from mio_strategies.harness import build_restorer, load_config

    cfg = load_config(preset)
    nets = [
        build_restorer(cfg.backbone, None, backbone_kwargs=cfg.backbone_kwargs, seed=k).backbone.to(device)
        for k in range(runs)
    ]
    g = torch.Generator().manual_seed(0)
    lq = torch.rand(runs, cfg.batch_size, 3, cfg.patch_size, cfg.patch_size, generator=g).to(device)
    gt = torch.rand(runs, cfg.batch_size, 3, cfg.patch_size, cfg.patch_size, generator=g).to(device)
    opts = [torch.optim.Adam(n.parameters(), lr=1e-4) for n in nets]

    def separate() -> None:
        for i, (n, o) in enumerate(zip(nets, opts)):
            loss = F.l1_loss(n(lq[i]), gt[i])
            o.zero_grad(set_to_none=True)
            loss.backward()
            o.step()

    params, buffers = stack_module_state(nets)
    base = copy.deepcopy(nets[0]).to("meta")
    popt = torch.optim.Adam(list(params.values()), lr=1e-4)
    fwd = vmap(lambda p, b, x: functional_call(base, (p, b), (x,)), randomness="error")

    def packed() -> None:
        out = fwd(params, buffers, lq)
        loss = (out - gt).abs().flatten(1).mean(1).sum()
        popt.zero_grad(set_to_none=True)
        loss.backward()
        popt.step()

    sep = runs * _timed(separate, device, seconds, warmup=2)
    pk = runs * _timed(packed, device, seconds, warmup=2)
    print(f"  {runs} runs of {preset}: separate {sep:.1f}, packed {pk:.1f} run-iterations/s", flush=True)
    return [
        f"| {preset} x {runs} runs (batch {cfg.batch_size} x {cfg.patch_size}) | separate run-it/s | packed run-it/s "
        "| packed / separate |",
        "|---|---|---|---|",
        f"| model steps | {sep:.1f} | {pk:.1f} | {pk / sep:.2f}x |",
    ]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu or cuda")
    p.add_argument(
        "--sections",
        nargs="+",
        choices=("steps", "synthesis", "rain", "packed"),
        default=["steps", "synthesis", "rain", "packed"],
    )
    p.add_argument(
        "--presets",
        nargs="+",
        default=None,
        help="presets of the steps table (default: mini_converged, mini_quick; on CUDA mini_converged and "
        "the full-size srresnet, swinir, restormer)",
    )
    p.add_argument(
        "--compile-presets",
        nargs="+",
        default=None,
        help="presets whose compiled variants are timed (compiling a full-size model takes minutes; "
        "default: all on a CPU, mini_converged on CUDA)",
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS),
        default=None,
        help="default: fp32 bf16 compile channels-last (and bf16+compile on CUDA)",
    )
    p.add_argument("--seconds", type=float, default=3.0, help="timed seconds per cell (default 3)")
    p.add_argument("--batch", type=int, default=16, help="synthesis batch (default 16)")
    p.add_argument("--patch", type=int, default=64, help="synthesis patch side (default 64)")
    p.add_argument(
        "--steps-batch",
        type=int,
        default=None,
        help="batch size of the steps table (default: each preset's own; a smaller one times the full-size "
        "presets on a CPU in minutes, the row names the batch used)",
    )
    p.add_argument(
        "--steps-patch",
        type=int,
        default=None,
        help="patch side of the steps table (default: each preset's own; SwinIR's 128-px step at batch 2 takes "
        "about 23 GB on a CPU)",
    )
    p.add_argument("--runs", type=int, default=6, help="packed runs (default 6: M and S x 3 seeds)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    args = p.parse_args(argv)
    name = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        p.error("--device cuda but no CUDA device is available")
    if args.steps_batch is not None and args.steps_batch < 1:
        p.error(f"--steps-batch {args.steps_batch}: give a positive batch size, or leave it out for each preset's own")
    if args.steps_patch is not None and args.steps_patch < 8:
        p.error(
            f"--steps-patch {args.steps_patch}: give a patch side of at least 8, or leave it out for each preset's own"
        )
    device = torch.device(name)
    if args.threads:
        torch.set_num_threads(args.threads)
    cuda = device.type == "cuda"
    what = torch.cuda.get_device_name(device) if cuda else f"CPU, {torch.get_num_threads()} threads"
    print(f"device: {what}; torch {torch.__version__}", flush=True)
    presets = args.presets or (
        ["mini_converged", "srresnet", "swinir", "restormer"] if cuda else ["mini_converged", "mini_quick"]
    )
    compile_presets = args.compile_presets or (["mini_converged"] if cuda else None)
    variants = args.variants or (["fp32", "bf16", "compile", "channels-last"] + (["bf16+compile"] if cuda else []))
    if variants[0] != "fp32":
        variants = ["fp32", *[v for v in variants if v != "fp32"]]
    # the quick tables first: a time limit that cuts the run short leaves them printed
    out: list[str] = []

    def section(title: str, rows: list[str], *, now: bool = True) -> None:
        out.extend(["", title, *rows])
        if now:
            print("\n".join([title, *rows]), flush=True)

    if "synthesis" in args.sections:
        print(f"== synthesis, {args.patch}-px patches", flush=True)
        section(
            f"Synthesis, patches/s ({args.patch} px):", synthesis_table(device, args.batch, args.patch, args.seconds)
        )
    if "rain" in args.sections:
        print("== rain streak layer, NumPy vs torch", flush=True)
        section(
            f"Rain streak layer, patches/s ({args.patch} px):",
            rain_layer_table(device, args.batch, args.patch, args.seconds),
        )
    if "packed" in args.sections:
        print("== packed runs", flush=True)
        section("Packed runs (model steps, random inputs):", packed_table(args.runs, device, args.seconds))
    if "steps" in args.sections:
        print("== training steps per second (random inputs, model step only)", flush=True)
        section(
            "Training steps per second (model step, random inputs):",
            steps_table(presets, variants, device, args.seconds, compile_presets, args.steps_batch, args.steps_patch),
            now=False,
        )
    print("\n".join(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
