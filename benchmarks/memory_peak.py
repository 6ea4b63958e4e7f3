"""Peak resident memory of reading, degrading and evaluating 4K and 8K images, old path vs current.

Each measurement runs in its own subprocess (peak RSS, ``ru_maxrss``, minus the RSS after imports), side by
side with the path it replaces:

* ``read``: decoding one image to a (3, H, W) float tensor (what ``MiODataset`` and the test-set readers do
  per image). Old: the float32 array in the file's layout, divided, transposed and copied. Current:
  ``read_image`` (uint8 view, one float copy in the tensor's layout).
* ``degrade``: degrading one image by ``--tasks`` as ``mio-strategies degrade`` does. Old: every degraded
  copy held until the image is done, then written. Current: ``build_testset`` (each copy written as soon
  as it is computed).
* ``eval``: PSNR and SSIM of one (LQ, GT) pair of that size, as evaluation scores it. Old: the float64 maps
  of the whole image. Current: ``psnr`` / ``ssim`` (the same values, computed in bands of rows).

Usage::

    python benchmarks/memory_peak.py                 # 4K and 8K, tasks N, J, L
    python benchmarks/memory_peak.py --sizes 4k --tasks SBNJRHL
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = {"4k": (3840, 2160), "8k": (7680, 4320)}

CHILD = r'''
import json, resource, sys, os
mode, path, tasks, out = sys.argv[1:5]
import numpy as np, torch
from PIL import Image
import mio_strategies.data as D
from mio_strategies.degradations import degrade
from mio_strategies.utils.rng import generator_from
def rss_now():
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0
base = rss_now()
peak0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
def old_read(p):
    with Image.open(p) as im:
        im.load()
        arr = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))
if mode == "read-old":
    x = old_read(path)
elif mode == "read-new":
    x = D.read_image(path, max_pixels=0)
elif mode == "degrade-old":
    gt = old_read(path).mul(255).round().div(255).unsqueeze(0)
    outs = [gt[0]]
    for i, t in enumerate(tasks):
        outs.append(degrade(gt, t, generator=generator_from(0, i))[0][0])
    for j, o in enumerate(outs):
        D.write_png(o, os.path.join(out, f"{j}.png"))
elif mode == "degrade-new":
    D.build_testset([path], out, tasks=tasks, max_pixels=0)
elif mode == "prep":
    D.build_testset([path], out, tasks=tasks[0], max_pixels=0)
    sys.exit(0)
elif mode.startswith("eval"):
    # one (LQ, GT) pair of the test set, scored as evaluation scores it (PSNR and SSIM, 4-pixel border)
    with D.pixel_limit(0):
        item = D.open_testset(out)[0]
    lq, gt = item["lq"].unsqueeze(0), item["gt"].unsqueeze(0)
    if mode == "eval-new":
        from mio_strategies.harness import psnr, ssim
    else:  # the whole-image formulas the metrics used before (float64 maps of the whole image)
        import torch.nn.functional as F
        def levels(x):
            return (x.detach().to(torch.float64).clamp(0, 1) * 255.0).round()[..., 4:-4, 4:-4]
        def psnr(x, y):
            a, b = levels(x), levels(y)
            return 10 * torch.log10(255.0**2 / ((a - b) ** 2).mean(dim=(1, 2, 3)))
        def ssim(x, y):
            a, b = levels(x), levels(y)
            g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / 4.5); g = g / g.sum()
            r, c = g.view(1, 1, 11, 1).expand(3, 1, 11, 1), g.view(1, 1, 1, 11).expand(3, 1, 1, 11)
            f = lambda z: F.conv2d(F.conv2d(z, r, groups=3), c, groups=3)
            m1, m2 = f(a), f(b)
            s11, s22, s12 = f(a * a) - m1**2, f(b * b) - m2**2, f(a * b) - m1 * m2
            c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
            return (((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1**2 + m2**2 + c1) * (s11 + s22 + c2))).mean()
    psnr(lq, gt), ssim(lq, gt)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"peak_mib": peak / 1024, "above_imports_mib": (peak - max(base, peak0)) / 1024}))
'''


def _image(size: tuple[int, int], path: Path) -> Path:
    """An upscaled embedded photograph (a natural image's PNG compression and statistics)."""
    from PIL import Image

    from mio_strategies.data import embedded_image_paths

    with Image.open(embedded_image_paths()[0]) as im:
        im.convert("RGB").resize(size, Image.BICUBIC).save(path)
    return path


def _measure(mode: str, image: Path, tasks: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "out")
        if mode.startswith("degrade-old"):
            os.makedirs(out)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).resolve().parents[1]),
                                                                            os.environ.get("PYTHONPATH")]))}
        if mode.startswith("eval"):  # the test set is built in another process: only the scoring is measured
            subprocess.run([sys.executable, "-c", CHILD, "prep", str(image), tasks, out], check=True, env=env)
        res = subprocess.run([sys.executable, "-c", CHILD, mode, str(image), tasks, out], capture_output=True,
                             text=True, env=env)
        if res.returncode != 0:
            raise RuntimeError(f"{mode} failed: {res.stderr[-2000:]}")
        return json.loads(res.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", nargs="+", default=["4k", "8k"], choices=sorted(SIZES))
    p.add_argument("--tasks", default="NJL", help="tasks degraded (letters, default NJL)")
    args = p.parse_args(argv)
    print(f"{'size':>4} {'what':8} {'old MiB':>9} {'current MiB':>12} {'old/current':>12}   (peak RSS above the imports)")
    with tempfile.TemporaryDirectory() as tmp:
        for size in args.sizes:
            w, h = SIZES[size]
            image = _image((w, h), Path(tmp) / f"{size}.png")
            for what in ("read", "degrade", "eval"):
                old = _measure(f"{what}-old", image, args.tasks)
                new = _measure(f"{what}-new", image, args.tasks)
                o = f"{old['above_imports_mib']:9.0f}" if old else f"{'-':>9}"
                ratio = f"{old['above_imports_mib'] / new['above_imports_mib']:12.2f}" if old else f"{'-':>12}"
                label = what if what != "degrade" else f"degrade {args.tasks}"
                print(f"{size:>4} {label:8} {o} {new['above_imports_mib']:12.0f} {ratio}", flush=True)
    print(f"({w * h / 1e6:.1f} megapixels at the largest size; float32 RGB is 12 bytes per pixel)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
