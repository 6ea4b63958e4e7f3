"""Tiny synthetic data trees in each benchmark protocol's exact on-disk layout (a few images per folder)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

TRAIN_SIZE = (128, 144)  # (H, W): the check's minimum training crop side is 128
TEST_SIZE = (40, 56)  # centre-cropped to 32 x 48 by the PromptIR family's crop to a multiple of 16


def _img(path: Path, size: tuple[int, int], seed: int, fmt: str | None = None) -> Path:
    rng = np.random.default_rng(seed)
    h, w = size
    base = np.linspace(30, 220, w)[None, :, None] + rng.normal(0, 12, (h, w, 3))
    arr = np.clip(base, 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode="RGB").save(path, format=fmt)
    return path


def _promptir(root: Path, n: int, five: bool, layout: str) -> dict[str, int]:
    train = root / "data/Train"  # both keep data/Train; PromptIR has test/ at the top, AdaIR data/test/
    test = root / ("test" if layout == "promptir" else "data/test")
    s = 0
    for i in range(n):  # BSD400 .jpg and WED .bmp clean images side by side
        _img(train / "Denoise" / (f"{i:05d}.bmp" if i % 2 else f"a{i}.jpg"), TRAIN_SIZE, s := s + 1)
        _img(train / "Derain/rainy" / f"rain-{i + 1}.png", TRAIN_SIZE, s := s + 1)
        _img(train / "Derain/gt" / f"norain-{i + 1}.png", TRAIN_SIZE, s := s + 1)
        _img(train / "Dehaze/original" / f"{i + 25:04d}.jpg", TRAIN_SIZE, s := s + 1)
        for part, beta in ((1, "0.04"), (2, "0.1")):  # two hazy images of each clear one, in part folders
            _img(train / f"Dehaze/synthetic/part{part}" / f"{i + 25:04d}_0.8_{beta}.jpg", TRAIN_SIZE, s := s + 1)
        _img(test / "dehaze/input" / f"{i + 1:04d}_0.8_0.2.jpg", TEST_SIZE, s := s + 1)
        _img(test / "dehaze/target" / f"{i + 1:04d}.png", TEST_SIZE, s := s + 1)
        _img(test / "derain/Rain100L/input" / f"{i + 1}.png", TEST_SIZE, s := s + 1)
        _img(test / "derain/Rain100L/target" / f"{i + 1}.png", TEST_SIZE, s := s + 1)
        _img(test / "denoise/bsd68" / f"{3096 + i}.png", TEST_SIZE, s := s + 1)
        if five:
            _img(train / "Deblur/blur" / f"GOPR0372_07_00_{i:06d}.png", TRAIN_SIZE, s := s + 1)
            _img(train / "Deblur/sharp" / f"GOPR0372_07_00_{i:06d}.png", TRAIN_SIZE, s := s + 1)
            _img(train / "Enhance/low" / f"{i + 2}.png", TRAIN_SIZE, s := s + 1)
            _img(train / "Enhance/gt" / f"{i + 2}.png", TRAIN_SIZE, s := s + 1)
            _img(test / "deblur/gopro/input" / f"GOPR0384_11_00_{i:06d}.png", TEST_SIZE, s := s + 1)
            _img(test / "deblur/gopro/target" / f"GOPR0384_11_00_{i:06d}.png", TEST_SIZE, s := s + 1)
            _img(test / "enhance/lol/input" / f"{i + 1}.png", TEST_SIZE, s := s + 1)
            _img(test / "enhance/lol/target" / f"{i + 1}.png", TEST_SIZE, s := s + 1)
    counts = {"train/denoise": n, "train/derain": n, "train/dehaze": 2 * n,
              "test/sots": n, "test/rain100l": n, "test/bsd68": n}
    if five:
        counts |= {"train/deblur": n, "train/lowlight": n, "test/gopro": n, "test/lol": n}
    return counts


CDD_TYPES = ("low", "haze", "rain", "snow", "low_haze", "low_rain", "low_snow", "haze_rain", "haze_snow",
             "low_haze_rain", "low_haze_snow")


def _cdd11(root: Path, n: int) -> dict[str, int]:
    s = 100
    for split, size in (("train", TRAIN_SIZE), ("test", TEST_SIZE)):
        for i in range(n):
            name = f"{i + 1:06d}.png"
            _img(root / split / "clear" / name, size, s := s + 1)
            for t in CDD_TYPES:
                _img(root / split / t / name, size, s := s + 1)
    return {f"{split}/{t}": n for split in ("train", "test") for t in CDD_TYPES}


def _mio7(root: Path, n: int) -> dict[str, int]:
    s = 500
    for i in range(n):
        _img(root / "train" / f"img{i}.png", TRAIN_SIZE, s := s + 1)
        _img(root / "test/GT" / f"t{i}.png", TEST_SIZE, s := s + 1)
        for t in ("sr", "blur", "noise", "jpeg", "rain", "haze", "lowlight"):
            _img(root / "test" / t / f"t{i}.png", TEST_SIZE, s := s + 1)
    return {"train/gt": n} | {f"test/{t}": n for t in ("sr", "blur", "noise", "jpeg", "rain", "haze", "lowlight")}


def make_tree(protocol: str, root: Path, n: int = 2, layout: str = "promptir") -> dict[str, int]:
    """Write a complete tiny tree of ``protocol`` under ``root``; return ``{folder key: pairs}``.

    ``layout`` picks, for the PromptIR family, PromptIR's roots (``data/Train`` beside ``test``) or AdaIR's
    (``data/Train`` and ``data/test``).
    """
    root.mkdir(parents=True, exist_ok=True)
    if protocol in ("three-task", "five-task"):
        return _promptir(root, n, protocol == "five-task", layout)
    if protocol == "cdd11":
        return _cdd11(root, n)
    if protocol == "mio-7":
        return _mio7(root, n)
    raise ValueError(protocol)
