"""PSNR between the official data path and the library's degradations, per task, in both implementations.

For every task, the embedded photographs (8-bit, cropped to multiples of 4) are degraded with the same sampled parameters by
``degrade(..., implementation="library")``, by ``degrade(..., implementation="reference")`` and by the
official recipe rebuilt here from the operators the authors' data scripts call (basicsr's ``DiffJPEG`` and
``filter2D``, ``F.interpolate``, OpenCV for the rain streaks, NumPy for haze and low-light). Noise and rain
are random: the official recipe is run on the library's random field (the reference's own draws come from
NumPy's global RNG, which nothing can replay), so those rows compare the formulas.

Also printed: how much easier each input is than the official one (PSNR to the GT, library minus
official), and the SR test path (MATLAB-made 8-bit LR file, PyTorch bicubic up).

Run: ``python benchmarks/reference_fidelity.py [--seeds 3]`` (needs basicsr and OpenCV; about a minute).
"""

from __future__ import annotations

import argparse
import math

import numpy as np
import torch
import torch.nn.functional as F

import mio_strategies.degradations as D
from mio_strategies.data import embedded_image_paths, read_image
from mio_strategies.tasks import TASKS
from mio_strategies.utils.basicsr_compat import import_basicsr


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    mse = float(((a.detach().double() - b.detach().double()) ** 2).mean())
    return math.inf if mse == 0 else 10 * math.log10(1.0 / mse)


def q8(x: torch.Tensor) -> torch.Tensor:
    return torch.clamp((x * 255.0).round(), 0, 255) / 255.0


def official(task: str, x: torch.Tensor, p: dict[str, torch.Tensor], depth: torch.Tensor) -> torch.Tensor:
    """The official training recipe of ``task`` on one image ``x`` (1, 3, H, W) with parameters ``p``."""
    if task == "sr":
        h, w = x.shape[-2:]
        s = int(p["scale"][0])
        return q8(F.interpolate(F.interpolate(x, scale_factor=1 / s, mode="bicubic"), size=(h, w), mode="bicubic"))
    if task == "blur":
        k, sigma = int(p["kernel_size"][0]), float(p["sigma"][0])
        ax = np.arange(-k // 2 + 1.0, k // 2 + 1.0)
        xx, yy = np.meshgrid(ax, ax)
        kern = np.exp(-0.5 * (xx**2 + yy**2) / sigma**2)
        kern = torch.FloatTensor(kern / kern.sum())
        return q8(import_basicsr("utils.img_process_util").filter2D(x, kern))
    if task == "noise":
        field = torch.randn(x.shape[1:], generator=torch.Generator().manual_seed(int(p["seed"][0])))
        return q8(torch.clamp(x + field[None] * float(p["sigma"][0]) / 255.0, 0, 1))
    if task == "jpeg":
        jpeger = import_basicsr("utils.diffjpeg").DiffJPEG(differentiable=False)
        return q8(jpeger(torch.clamp(x, 0, 1), quality=int(p["quality"][0])))
    if task == "rain":
        import cv2

        img = np.round(x[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)
        h, w = img.shape[:2]
        u = torch.rand((h, w), generator=torch.Generator().manual_seed(int(p["seed"][0]))).numpy().astype(np.float64) * 256
        u[u < 256 - int(p["amount"][0]) * 0.01] = 0
        n = cv2.filter2D(u, -1, np.array([[0, 0.1, 0], [0.1, 8, 0.1], [0, 0.1, 0]]))
        length, angle, width = int(p["length"][0]), int(p["angle"][0]), int(p["width"][0])
        rot = cv2.getRotationMatrix2D((length / 2, length / 2), angle - 45, 1 - length / 100.0)
        k = cv2.GaussianBlur(cv2.warpAffine(np.diag(np.ones(length)), rot, (length, length)), (width, width), 0)
        r = cv2.filter2D(n, -1, k)
        cv2.normalize(r, r, 0, 255, cv2.NORM_MINMAX)
        r = np.repeat(np.array(r, dtype=np.uint8)[..., None], 3, 2)
        out = np.clip(img.astype("float32") + r, 0, 255)
        return q8(torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255.0)
    if task == "haze":
        img = np.round(x[0].permute(1, 2, 0).numpy() * 255).astype(np.float64)
        t = np.exp(-float(p["beta"][0]) * depth[0, 0].double().numpy())[..., None]
        out = img * t + float(p["airlight"][0]) * 255 * (1 - t)
        return q8(torch.from_numpy(out).permute(2, 0, 1)[None].float() / 255.0)
    if task == "lowlight":
        return q8(x ** float(p["gamma"][0]))
    raise AssertionError(task)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=3, help="parameter draws per image (default 3)")
    args = ap.parse_args()
    # cropped to multiples of 4 first (the reference's sub-images are 300x300), so that every path keeps the size
    images = [D.crop_to_multiple(read_image(p)[None]).contiguous() for p in embedded_image_paths()]
    sizes = sorted({tuple(x.shape[-2:]) for x in images})
    print(f"{len(images)} images {sizes}, {args.seeds} parameter draws each, preset 'in'")
    print(f"{'task':9s} {'library vs official':>20s} {'reference vs official':>22s} {'library easier by':>18s}")
    for task in TASKS:
        lib_p, ref_p, easier = [], [], []
        for i, x in enumerate(images):
            x = q8(x)
            depth = D.estimate_depth(x)
            for s in range(args.seeds):
                y_lib, p = D.degrade(x, task.name, generator=torch.Generator().manual_seed(1000 * i + s),
                                     depth=depth if task.name == "haze" else None)
                y_ref = D.degrade(x, task.name, params=p, implementation="reference",
                                  depth=depth if task.name == "haze" else None)[0]
                y_off = official(task.name, x, p, depth)
                lib_p.append(psnr(y_lib, y_off))
                ref_p.append(psnr(y_ref, y_off))
                easier.append(psnr(y_lib, x) - psnr(y_off, x))
        def fmt(v):
            if math.isinf(min(v)):
                return "inf (equal)"
            return f"{np.mean([a for a in v if math.isfinite(a)] or [math.inf]):.2f} dB (min {min(v):.2f})"
        print(f"{task.name:9s} {fmt(lib_p):>20s} {fmt(ref_p):>22s} {np.mean(easier):>+15.2f} dB")
    # the SR test path: a MATLAB-made 8-bit x4 LR file, upsampled by PyTorch bicubic
    imresize = import_basicsr("utils.matlab_functions").imresize
    lib_t, ref_t = [], []
    for x in images:
        x = q8(x)
        low = q8(imresize(x[0], 0.25))
        off = q8(F.interpolate(low[None], size=x.shape[-2:], mode="bicubic"))
        lib_t.append(psnr(D.bicubic_sr(x, 4), off))
        ref_t.append(psnr(D.bicubic_sr_stored_lr(x, 4), off))
    print(f"{'sr test':9s} {np.mean(lib_t):>17.2f} dB {np.mean(ref_t) if all(map(math.isfinite, ref_t)) else math.inf:>19.2f} dB"
          "   (MATLAB-made x4 LR file, PyTorch bicubic up)")


if __name__ == "__main__":
    main()
