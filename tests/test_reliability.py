"""Signals, periodic checkpoints, configs, image-size caps, 16-bit images and one-line errors where a
traceback used to be."""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch

from mio_strategies.cli import main
from mio_strategies.data import (
    ImageTooLargeError,
    MiODataset,
    build_testset,
    embedded_image_paths,
    pixel_limit,
    read_image,
    write_png,
)
from mio_strategies.harness import load_checkpoint, load_config, train
from mio_strategies.harness._config import ConfigKeyError, list_presets

ROOT = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
TINY = ["backbone=srresnet_tiny", "backbone_kwargs.num_feat=4", "backbone_kwargs.num_block=1", "periods=7",
        "batch_size=2", "patch_size=16", "val_size=24", "prompt_size=16", "log_every=1", "lr=1e-3", "lr_min=1e-5",
        "ema_decay=0.9"]


def _sets(overrides):
    return [a for o in overrides for a in ("--set", o)]


# ----------------------------------------------------------------------------------- 5. signals
def _train_cmd(out, iters, extra=()):
    return [sys.executable, "-m", "mio_strategies", "train", "--config", "cpu_demo",
            *_sets(TINY + [f"period_iters={iters}", *extra]), "--output", str(out), "--no-progress"]


def _wait_for_records(out, n, proc, timeout=240):
    log = out / "log.jsonl"
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            return False
        if log.is_file() and sum(1 for line in log.read_text().splitlines() if '"train"' in line) >= n:
            return True
        time.sleep(0.05)
    raise AssertionError("training did not log in time")


@pytest.mark.skipif(os.name != "posix", reason="POSIX signals")
@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_a_signal_finishes_the_step_saves_and_says_how_to_resume(sig, code, tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen(_train_cmd(out, 40), env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert _wait_for_records(out, 3, proc)
    proc.send_signal(sig)
    _stdout, stderr = proc.communicate(timeout=240)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    saved = load_checkpoint(out / "checkpoint.pt")
    name = signal.Signals(sig).name
    assert (f"training interrupted by {name} after iteration {saved['iteration']} of 280; checkpoint saved to "
            f"{str(out / 'checkpoint.pt')!r}. Resume with: mio-strategies train --output {str(out)!r} --resume") in stderr
    assert 3 <= saved["iteration"] < 280 and not saved["finished"]
    assert not [p.name for p in out.iterdir() if p.name.endswith(".tmp")]


def test_every_preset_checkpoints_periodically():
    for name in list_presets():
        cfg = load_config(name)
        assert 0 < cfg.checkpoint_every <= cfg.period_iters, name
    assert load_config({}).checkpoint_every == 1000  # the default of a config that names none


def test_resume_removes_the_runs_own_stale_temporary_files(tmp_path):
    cfg = load_config("cpu_demo", TINY + ["period_iters=1"])
    out = tmp_path / "run"
    train(cfg, out, progress=False, stop_after=3)
    junk = [out / ".checkpoint.pt.abc123.tmp", out / ".log.jsonl.tmp", out / ".config.yaml.x1.tmp"]
    for j in junk:
        j.write_bytes(b"half")
    (out / "notes.tmp").write_text("mine")  # not one of the run's files: kept
    train(cfg, out, progress=False, resume=True)
    assert not any(j.exists() for j in junk) and (out / "notes.tmp").read_text() == "mine"


def test_the_run_is_described_at_its_start_with_an_estimated_time(tmp_path, capsys):
    assert main(["train", "--config", "cpu_demo", *_sets(TINY + ["period_iters=1"]), "--output", str(tmp_path / "r"),
                 "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert ("training srresnet_tiny (num_feat=4, num_block=1), strategy M: 7 periods x 1 = 7 iterations, batch 2, "
            "patch 16, device auto; checkpoint every 60 iterations; into") in out
    assert "time per iteration" in out and "for the remaining" in out


# ----------------------------------------------------------------------------------- 6. configs
@pytest.mark.parametrize("text", ["", "# only a comment\n", "{}\n"])
def test_an_empty_config_file_is_refused(text, tmp_path, capsys):
    path = tmp_path / "empty.yaml"
    path.write_text(text)
    with pytest.raises(ValueError, match=r"empty.yaml' is empty: write the keys to set"):
        load_config(path)
    assert main(["train", "--config", str(path), "--output", str(tmp_path / "r"), "--no-progress"]) == 2
    assert "is empty" in capsys.readouterr().err and not (tmp_path / "r").exists()


def test_config_errors_print_without_quotes_and_suggest_only_near_misses(tmp_path, capsys):
    with pytest.raises(ConfigKeyError) as info:
        load_config("cpu_demo", ["bogus_key=1"])
    assert str(info.value).startswith("unknown config key 'bogus_key': valid keys are [")  # no "did you mean"
    assert isinstance(info.value, KeyError)
    with pytest.raises(KeyError, match=r"did you mean 'period_iters'\?"):
        load_config("cpu_demo", ["period_iter=3"])
    with pytest.raises(KeyError, match=r"did you mean 'batch_size'\?"):
        load_config("cpu_demo", ["Batch_Size=3"])
    assert main(["train", "--config", "cpu_demo", "--set", "bogus_key=1", "--output", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: unknown config key 'bogus_key'") and "did you mean" not in err
    with pytest.raises(ValueError, match=r"unknown preset 'nothing_like_it': valid presets"):
        load_config("nothing_like_it")


# ----------------------------------------------------------------------------------- 4. memory caps
def _png_header_only(path, w, h):
    """A PNG whose header claims ``w`` x ``h`` pixels (its data is a few bytes): what a bomb looks like."""
    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0))
                     + chunk(b"IDAT", zlib.compress(b"\x00" * 64)) + chunk(b"IEND", b""))
    return path


def test_images_above_the_pixel_cap_are_refused_from_their_header(tmp_path):
    big = _png_header_only(tmp_path / "big.png", 12000, 12000)
    with pytest.raises(ImageTooLargeError, match=r"big.png' is 12000 x 12000 = 144.0 megapixels, above the limit of "
                                                 r"67.1 megapixels.*raise the limit \(max_pixels=144000000, or "
                                                 r"max_pixels=0 for none\)"):
        read_image(big)
    with pytest.raises(ImageTooLargeError, match="above the limit of 0.0 megapixels"):
        read_image(embedded_image_paths()[0], max_pixels=1000)
    with pixel_limit(1000), pytest.raises(ImageTooLargeError):
        read_image(embedded_image_paths()[0])
    with pytest.raises(ImageTooLargeError, match="big.png"):  # before anything is decoded
        MiODataset([embedded_image_paths()[0], big], patch_size=16)
    with pytest.raises(ValueError, match=r"max_pixels must be a non-negative integer \(a whole number of pixels; 0 or None: no limit\), got -1"):
        read_image(big, max_pixels=-1)
    with pytest.raises(TypeError, match=r"max_pixels must be a non-negative integer \(a whole number of pixels; 0 or None: no limit\), got float 1.5"):
        read_image(big, max_pixels=1.5)


def test_a_decompression_bomb_is_the_librarys_clear_error(tmp_path):
    bomb = _png_header_only(tmp_path / "bomb.png", 20000, 20000)  # past Pillow's own error threshold
    with pytest.raises(ImageTooLargeError, match=r"bomb.png' is refused by Pillow as a possible decompression bomb"):
        read_image(bomb, max_pixels=0)


def test_degrade_names_the_big_image_and_its_override_and_skips_it(tmp_path, capsys):
    src = tmp_path / "in"
    write_png(read_image(embedded_image_paths()[0])[:, :32, :32], src / "a.png")
    _png_header_only(src / "z_big.png", 12000, 12000)
    assert main(["degrade", "--input", str(src), "--output", str(tmp_path / "o"), "--tasks", "N"]) == 1
    err = capsys.readouterr().err
    assert "z_big.png' is 12000 x 12000 = 144.0 megapixels" in err and "--max-pixels 144000000" in err
    assert "Traceback" not in err and not (tmp_path / "o").exists()
    assert main(["degrade", "--input", str(src), "--output", str(tmp_path / "o"), "--tasks", "N", "--on-error",
                 "skip"]) == 0
    assert "skipped z_big.png" in capsys.readouterr().err
    _png_header_only(src / "z_big.png", 20000, 20000)
    assert main(["degrade", "--input", str(src), "--output", str(tmp_path / "o2"), "--tasks", "N", "--on-error",
                 "skip", "--max-pixels", "0"]) == 0
    assert "decompression bomb" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["degrade", "--input", str(src), "--output", str(tmp_path / "o3"), "--max-pixels", "lots"])
    assert exit_.value.code == 2
    assert "--max-pixels: expected a whole number of pixels (e.g. 64e6), or 0 for no limit, got 'lots'" \
        in capsys.readouterr().err


# ----------------------------------------------------------------------------------- 9. 16-bit images
def _encode_png16(rgb16: np.ndarray, alpha: bool) -> bytes:
    """A 16-bit RGB(A) PNG with every row filtered by another of the five PNG filters."""
    h, w, _ = rgb16.shape
    px = np.concatenate([rgb16, np.full((h, w, 1), 65535, np.uint16)], axis=2) if alpha else rgb16
    rows = px.astype(">u2").view(np.uint8).reshape(h, -1).astype(np.int32)
    bpp = 8 if alpha else 6
    out = []
    for r in range(h):
        x, p = rows[r], rows[r - 1] if r else np.zeros_like(rows[r])
        a = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        c = np.concatenate([np.zeros(bpp, np.int32), p[:-bpp]])
        f = r % 5
        if f == 0:
            y = x
        elif f == 1:
            y = x - a
        elif f == 2:
            y = x - p
        elif f == 3:
            y = x - (a + p) // 2
        else:
            pa, pb, pc = np.abs(p - c), np.abs(a - c), np.abs(a + p - 2 * c)
            pred = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, p, c))
            y = x - pred
        out.append(bytes([f]) + (y % 256).astype(np.uint8).tobytes())

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 6 if alpha else 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"".join(out)))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize("alpha", [False, True])
def test_16_bit_rgb_pngs_keep_their_precision(alpha, tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 65536, size=(11, 13, 3), dtype=np.uint16)
    path = tmp_path / "deep.png"
    path.write_bytes(_encode_png16(rgb, alpha))
    got = read_image(path)
    want = torch.from_numpy(rgb.astype(np.float32) / 65535.0).permute(2, 0, 1)
    assert got.shape == (3, 11, 13) and torch.allclose(got, want, atol=1e-7, rtol=0)
    assert torch.equal((got * 65535).round().to(torch.int64), torch.from_numpy(rgb.astype(np.int64)).permute(2, 0, 1))


# ----------------------------------------------------------------------------------- 7. one line, not a traceback
def test_a_missing_pretrained_folder_is_said_to_be_missing(tmp_path, capsys):
    assert main(["demo", "--pretrained", str(tmp_path / "nowhere"), "--output", str(tmp_path / "d"),
                 "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert f"pretrained weights folder {str(tmp_path / 'nowhere')!r} does not exist" in err
    assert "has no weights" not in err and not (tmp_path / "d").exists()


@pytest.mark.basicsr
def test_a_bad_basicsr_weights_file_is_one_line(tmp_path, capsys):
    from mio_strategies.integrations.basicsr_prompt import load_basicsr_restorer

    opts = {"network_g": {"type": "MiOPromptedNet", "backbone": {"type": "SRResNet"}}}
    (tmp_path / "bad.pth").write_bytes(b"not a torch file")
    with pytest.raises(ValueError, match=r"cannot read BasicSR weights '.*bad.pth' \("):
        load_basicsr_restorer(opts, tmp_path / "bad.pth")
    with pytest.raises(FileNotFoundError, match=r"BasicSR weights file '.*none.pth' does not exist"):
        load_basicsr_restorer(opts, tmp_path / "none.pth")
    (tmp_path / "o.yml").write_text("network_g:\n  type: MiOPromptedNet\n")
    set_dir = tmp_path / "set"
    build_testset([embedded_image_paths()[0]], set_dir, tasks="N")
    assert main(["eval", "--checkpoint", str(tmp_path / "bad.pth"), "--basicsr-options", str(tmp_path / "o.yml"),
                 "--testset", str(set_dir), "--output", str(tmp_path / "ev")]) == 2
    err = capsys.readouterr().err
    assert "cannot read BasicSR weights" in err and "Traceback" not in err


@pytest.mark.parametrize(("task", "params", "message"), [
    ("noise", {"sigma": 10.0, "seed": float("nan")}, r"noise.seed must be an integer, got nan"),
    ("noise", {"sigma": 10.0, "seed": 2**63}, r"noise.seed = 9223372036854775808 is outside the valid bounds"),
    ("noise", {"sigma": 10.0, "seed": float(2**63)}, r"noise.seed = 9223372036854775808 is outside the valid bounds"),
    ("noise", {"sigma": 10.0, "seed": 10**30}, r"noise.seed = 10{30} is outside the valid bounds"),
    ("jpeg", {"quality": 50.5}, r"jpeg.quality must be an integer, got 50.5"),
    ("noise", {"sigma": float("inf"), "seed": 1}, r"noise.sigma = inf is outside the valid bounds"),
])
def test_bad_parameter_values_are_named(task, params, message):
    from mio_strategies import degrade

    with pytest.raises(ValueError, match=message):
        degrade(torch.rand(1, 3, 16, 16), task, params=params)


def test_integer_valued_floats_are_accepted_exactly():
    from mio_strategies import degrade

    x = torch.rand(1, 3, 16, 16)
    assert torch.equal(degrade(x, "jpeg", params={"quality": 50.0})[0], degrade(x, "jpeg", params={"quality": 50})[0])
    _y, p = degrade(x, "noise", params={"sigma": 5.0, "seed": float(2**53)})
    assert p["seed"].dtype == torch.int64 and int(p["seed"][0]) == 2**53


def test_the_report_written_for_the_runs_log_is_jsonl(tmp_path):
    # the run's log stays one JSON record per line after a signal-free resume
    cfg = load_config("cpu_demo", TINY + ["period_iters=1"])
    train(cfg, tmp_path / "r", progress=False, stop_after=2)
    train(cfg, tmp_path / "r", progress=False, resume=True)
    recs = [json.loads(line) for line in (tmp_path / "r" / "log.jsonl").read_text().splitlines()]
    assert [r["iteration"] for r in recs if r["kind"] == "train"] == list(range(1, 8))


# ----------------------------------------------------------------------------------- 4. bounded evaluation
def test_metrics_in_bands_equal_the_whole_image_formula(monkeypatch):
    import torch.nn.functional as F

    import mio_strategies.metrics._psnr_ssim as M

    def whole(a, b):  # the formula on the whole image at once, as the reference (basicsr) computes it
        a = (a.to(torch.float64).clamp(0, 1) * 255).round()[..., 4:-4, 4:-4]
        b = (b.to(torch.float64).clamp(0, 1) * 255).round()[..., 4:-4, 4:-4]
        g = torch.exp(-((torch.arange(11, dtype=torch.float64) - 5) ** 2) / 4.5)
        g = g / g.sum()
        r, c = g.view(1, 1, 11, 1).expand(3, 1, 11, 1), g.view(1, 1, 1, 11).expand(3, 1, 1, 11)

        def f(z):
            return F.conv2d(F.conv2d(z, r, groups=3), c, groups=3)

        m1, m2 = f(a), f(b)
        s11, s22, s12 = f(a * a) - m1**2, f(b * b) - m2**2, f(a * b) - m1 * m2
        c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
        smap = ((2 * m1 * m2 + c1) * (2 * s12 + c2)) / ((m1**2 + m2**2 + c1) * (s11 + s22 + c2))
        return 10 * torch.log10(255.0**2 / ((a - b) ** 2).mean(dim=(1, 2, 3))), smap.mean(dim=(2, 3)).mean(dim=1)

    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 203, 150, generator=g)
    y = (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    want_psnr, want_ssim = whole(x, y)
    monkeypatch.setattr(M, "_BAND_PIXELS", 64 * 142)  # bands of 64 rows: four bands, the last a short one
    assert torch.allclose(M.psnr(x, y), want_psnr, rtol=0, atol=1e-12)
    assert torch.allclose(M.ssim(x, y), want_ssim, rtol=0, atol=1e-12)
