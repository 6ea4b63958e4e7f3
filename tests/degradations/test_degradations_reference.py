"""Each explicit-parameter degradation agrees with an independent reference formula or implementation."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from conftest import real_batch
from PIL import Image
from scipy import ndimage

import mio_strategies.degradations as D
from mio_strategies.degradations._rain import streak_kernels
from mio_strategies.utils.basicsr_compat import import_basicsr


def _hwc(x: torch.Tensor) -> np.ndarray:
    return x.permute(1, 2, 0).double().numpy()


def _q8(a: np.ndarray) -> np.ndarray:
    return np.round(np.clip(a, 0, 1) * 255) / 255


# ------------------------------------------------------------------------------------------- sr
def _pil_bicubic(a: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """PIL's antialiased bicubic (a = -0.5) per channel on float images; size is (W, H)."""
    chans = [np.asarray(Image.fromarray(a[..., c].astype(np.float32)).resize(size, Image.BICUBIC)) for c in range(3)]
    return np.stack(chans, -1).astype(np.float64)


def test_imresize_matches_pil_bicubic_away_from_the_borders():
    # PIL and MATLAB share the kernel (cubic a=-0.5, stretched when shrinking); they differ only at borders
    x = real_batch(1, 64)
    for size in ((16, 16), (12, 20), (128, 96)):
        ours = _hwc(D.imresize(x, (size[1], size[0]))[0])
        ref = _pil_bicubic(_hwc(x[0]), size)
        np.testing.assert_allclose(ours[4:-4, 4:-4], ref[4:-4, 4:-4], atol=1e-5)


@pytest.mark.basicsr
@pytest.mark.parametrize("scale", [2, 3, 4, 6])
def test_bicubic_sr_matches_basicsr_matlab_imresize(scale):
    imresize = import_basicsr("utils.matlab_functions").imresize
    x = D.quantize_8bit(real_batch(2, 48))
    ours = D.bicubic_sr(x, scale)
    for i in range(2):
        low = torch.round(imresize(x[i], 1.0 / scale).clamp(0, 1) * 255) / 255
        ref = torch.round(imresize(low, scale).clamp(0, 1) * 255) / 255
        diff = (ours[i] - ref).abs()
        assert float(diff.max()) <= 1 / 255 + 1e-6 and float((diff > 0).float().mean()) < 0.002


# ------------------------------------------------------------------------------------------- blur
@pytest.mark.parametrize(("sigma", "size"), [(1.0, 7), (2.3, 13), (4.5, 21), (0.8, 3)])
def test_gaussian_blur_matches_scipy_correlation_with_an_explicit_kernel(sigma, size):
    x = real_batch(1, 40)
    r = size // 2
    yy, xx = np.mgrid[-r : r + 1, -r : r + 1]
    k = np.exp(-(xx**2 + yy**2) / (2 * sigma**2))
    k /= k.sum()
    a = _hwc(x[0])
    ref = np.stack([ndimage.correlate(a[..., c], k, mode="mirror") for c in range(3)], -1)
    ours = _hwc(D.gaussian_blur(x, sigma, size, quantize=False)[0])
    np.testing.assert_allclose(ours, ref, atol=1e-5)
    qdiff = np.abs(_hwc(D.gaussian_blur(x, sigma, size)[0]) - _q8(ours))
    assert qdiff.max() <= 1 / 255 + 1e-6 and (qdiff > 0.5 / 255).mean() < 0.001  # float32 rounding ties


def test_gaussian_blur_on_images_smaller_than_the_kernel_reflects_repeatedly():
    x = real_batch(1, 6)
    k1 = np.exp(-(np.arange(-10, 11) ** 2) / (2 * 3.0**2))
    k = np.outer(k1, k1) / np.outer(k1, k1).sum()
    ref = np.stack([ndimage.correlate(_hwc(x[0])[..., c], k, mode="mirror") for c in range(3)], -1)
    np.testing.assert_allclose(_hwc(D.gaussian_blur(x, 3.0, 21, quantize=False)[0]), ref, atol=1e-5)


# ------------------------------------------------------------------------------------------- noise
def test_gaussian_noise_has_the_requested_statistics():
    x = torch.full((1, 3, 96, 96), 0.5)
    y = D.gaussian_noise(x, sigma=30.0, seed=123)
    n = (y[0] - 0.5).reshape(3, -1).double() * 255
    assert abs(float(n.mean())) < 1.0
    # quantisation to integers adds 1/12 to the variance
    assert float(n.std()) == pytest.approx((30.0**2 + 1 / 12) ** 0.5, rel=0.03)
    corr = torch.corrcoef(n)
    assert float((corr - torch.eye(3, dtype=corr.dtype)).abs().max()) < 0.05  # colour (independent) noise


def test_gaussian_noise_is_the_formula_with_the_documented_draw():
    x = real_batch(2, 32)
    y = D.gaussian_noise(x, sigma=torch.tensor([20.0, 45.0]), seed=torch.tensor([7, 8]))
    for i, (sigma, seed) in enumerate(((20.0, 7), (45.0, 8))):
        noise = torch.randn((3, 32, 32), generator=torch.Generator().manual_seed(seed)).numpy().astype(np.float64)
        ref = _q8(x[i].double().numpy() + noise * sigma / 255.0)
        np.testing.assert_allclose(y[i].double().numpy(), ref, atol=1e-6)


# ------------------------------------------------------------------------------------------- jpeg
@pytest.mark.parametrize("quality", [10, 30, 70])
def test_jpeg_compress_equals_pillow_encoding_directly(quality):
    x = real_batch(2, 40)
    ours = D.jpeg_compress(x, quality)
    for i in range(2):
        u8 = np.round(_hwc(x[i]) * 255).astype(np.uint8)
        buf = io.BytesIO()
        Image.fromarray(u8).save(buf, format="JPEG", quality=quality, subsampling="4:2:0")
        ref = np.asarray(Image.open(io.BytesIO(buf.getvalue())).convert("RGB")).astype(np.float64) / 255
        np.testing.assert_allclose(_hwc(ours[i]), ref, atol=1e-7)  # float32 k/255 vs float64 k/255


def test_lower_jpeg_quality_loses_more():
    x = real_batch(2, 64)
    errs = [float((D.jpeg_compress(x, q) - x).pow(2).mean()) for q in (90, 50, 20, 5)]
    assert errs == sorted(errs)


@pytest.mark.basicsr
@pytest.mark.parametrize("quality", [10, 30, 50, 70])
def test_jpeg_compress_is_close_to_the_references_differentiable_jpeg(quality):
    diffjpeg = import_basicsr("utils.diffjpeg").DiffJPEG(differentiable=False)
    x = D.quantize_8bit(real_batch(2, 64))
    ours = D.jpeg_compress(x, quality)
    with torch.no_grad():
        ref = D.quantize_8bit(diffjpeg(x, quality=torch.full((2,), float(quality))))

    def psnr(a, b):
        return float(10 * torch.log10(1 / (a - b).pow(2).mean()))

    assert psnr(ours, ref) > 30.0  # same codec up to rounding/upsampling details
    assert abs(psnr(ours, x) - psnr(ref, x)) < 0.5  # same strength


# ------------------------------------------------------------------------------------------- rain
def _scipy_streak_kernel(length: int, angle: int, width: int) -> np.ndarray:
    """The reference's streak kernel rebuilt with scipy: warp of the diagonal, then OpenCV-sigma Gaussian.

    (OpenCV uses that sigma formula for widths above 9; smaller widths use its fixed tables, checked
    against OpenCV itself below.)
    """
    s = 1 - length / 100.0
    th = np.deg2rad(angle - 45)
    c = length / 2.0
    # (row, col) inverse map of OpenCV's getRotationMatrix2D(center, angle - 45, s)
    m = np.array([[np.cos(th), np.sin(th)], [-np.sin(th), np.cos(th)]]) / s
    k = ndimage.affine_transform(np.eye(length), m, offset=np.array([c, c]) - m @ np.array([c, c]), order=1, mode="grid-constant")
    sigma = 0.3 * ((width - 1) * 0.5 - 1) + 0.8
    g = np.exp(-((np.arange(width) - (width - 1) / 2) ** 2) / (2 * sigma**2))
    return ndimage.correlate(k, np.outer(g, g) / np.outer(g, g).sum(), mode="mirror")


def _sparse_uniform_noise(amount, seed):
    """The recipe's noise map: uniform 0..256 (the library's torch draw), only the top amount*0.01 kept."""
    u = torch.rand((64, 64), generator=torch.Generator().manual_seed(seed)).numpy().astype(np.float64) * 256
    u[u < 256 - amount * 0.01] = 0
    return u


def _with_streaks(x, streaks):
    """The first image of ``x`` plus 0..255 streak levels, clipped and quantised as the recipe does."""
    return _q8(np.clip(_hwc(x[0]) * 255 + streaks[..., None], 0, 255) / 255)


@pytest.mark.parametrize(("amount", "length", "angle", "width"), [(80, 30, 10, 11), (140, 21, -45, 11), (50, 40, 44, 11)])
def test_add_rain_matches_an_independent_scipy_rebuild_of_the_recipe(amount, length, angle, width):
    x = real_batch(1, 64)
    seed = 99
    u = _sparse_uniform_noise(amount, seed)
    cross = np.array([[0, 0.1, 0], [0.1, 8, 0.1], [0, 0.1, 0]])
    n = ndimage.correlate(u, cross, mode="mirror")
    k = _scipy_streak_kernel(length, angle, width)
    r = ndimage.correlate(n, k, mode="mirror")  # scipy's centre index length // 2 is OpenCV's anchor
    r = np.floor((r - r.min()) / (r.max() - r.min()) * 255)
    ref = _with_streaks(x, r)
    ours = _hwc(D.add_rain(x, amount, length, angle, width, seed)[0])
    diff = np.abs(ours - ref)
    # scipy's warp is continuous where OpenCV's (and ours) snaps to 1/32 pixel: streak pixels may differ a little
    assert diff.max() <= 3 / 255 + 1e-6 and (diff > 0.5 / 255).mean() < 0.1


@pytest.mark.basicsr  # OpenCV comes with basicsr
@pytest.mark.parametrize(("amount", "length", "angle", "width"), [(80, 30, 10, 3), (140, 21, -45, 7), (60, 40, 44, 9)])
def test_add_rain_matches_the_recipe_run_with_opencv(amount, length, angle, width):
    import cv2

    x = real_batch(1, 64)
    seed = 5
    u = _sparse_uniform_noise(amount, seed)
    n = cv2.filter2D(u, -1, np.array([[0, 0.1, 0], [0.1, 8, 0.1], [0, 0.1, 0]]))
    rot = cv2.getRotationMatrix2D((length / 2, length / 2), angle - 45, 1 - length / 100.0)
    k = cv2.GaussianBlur(cv2.warpAffine(np.diag(np.ones(length)), rot, (length, length)), (width, width), 0)
    r = cv2.filter2D(n, -1, k)
    cv2.normalize(r, r, 0, 255, cv2.NORM_MINMAX)
    r = np.array(r, dtype=np.uint8).astype(np.float64)
    ref = _with_streaks(x, r)
    diff = np.abs(_hwc(D.add_rain(x, amount, length, angle, width, seed)[0]) - ref)
    assert diff.max() <= 1 / 255 + 1e-6 and (diff > 0.5 / 255).mean() < 0.01  # float32 FFT vs float64 direct


def test_rain_streaks_follow_the_angle():
    k, _ = streak_kernels(torch.tensor([30, 30]), torch.tensor([0, -45]), torch.tensor([3, 3]))
    ys, xs = torch.meshgrid(torch.arange(k.shape[1]), torch.arange(k.shape[2]), indexing="ij")
    for i in range(2):
        w = k[i] / k[i].sum()
        cy, cx = (w * ys).sum(), (w * xs).sum()
        vy, vx = (w * (ys - cy) ** 2).sum(), (w * (xs - cx) ** 2).sum()
        cov = (w * (ys - cy) * (xs - cx)).sum()
        if i == 0:  # angle 0: vertical streaks
            assert float(vy) > 10 * float(vx)
        else:  # angle -45: the diagonal rotated by -90 degrees, i.e. "/" (y grows as x shrinks)
            assert float(cov) < -0.5 * float((vx * vy) ** 0.5)


def test_rain_layer_is_added_equally_to_all_channels_and_clipped():
    x = torch.zeros(1, 3, 64, 64)
    y = D.add_rain(x, 120, 30, 0, 5, seed=1)
    assert torch.equal(y[0, 0], y[0, 1]) and torch.equal(y[0, 1], y[0, 2])
    assert float(y.max()) == 1.0 and float(y.min()) == 0.0  # min-max normalised to 0..255
    z = D.add_rain(torch.ones(1, 3, 64, 64), 120, 30, 0, 5, seed=1)
    assert bool((z == 1.0).all())


@pytest.mark.basicsr  # OpenCV comes with basicsr
@pytest.mark.parametrize("width", [3, 5, 7, 9, 11])
def test_streak_kernels_match_opencv_warp_and_gaussian_blur(width):
    import cv2

    lengths, angles = [20, 27, 33, 40], [-45, 13, -7, 44]
    k, a = streak_kernels(torch.tensor(lengths), torch.tensor(angles), torch.full((4,), width))
    for i, (length, angle) in enumerate(zip(lengths, angles)):
        rot = cv2.getRotationMatrix2D((length / 2, length / 2), angle - 45, 1 - length / 100.0)
        ref = cv2.GaussianBlur(cv2.warpAffine(np.diag(np.ones(length)), rot, (length, length)), (width, width), 0)
        off = a - length // 2
        ours = k[i, off : off + length, off : off + length].numpy()
        assert float(k[i].sum()) == pytest.approx(float(ours.sum()))  # nothing outside the length box
        np.testing.assert_allclose(ours, ref, atol=1e-9)  # including OpenCV's 1/32-pixel coordinate grid


# ------------------------------------------------------------------------------------------- haze, lowlight
def test_add_haze_is_the_scattering_formula():
    x = real_batch(2, 24)
    depth = np.random.default_rng(0).uniform(0, 1, (2, 1, 24, 24))
    a, b = np.array([0.8, 0.95]), np.array([0.7, 2.4])
    ours = D.add_haze(x, torch.from_numpy(depth), a.tolist(), b.tolist(), quantize=False).double().numpy()
    t = np.exp(-b[:, None, None, None] * depth)
    ref = x.double().numpy() * t + a[:, None, None, None] * (1 - t)
    np.testing.assert_allclose(ours, ref, atol=1e-6)


def test_lowlight_is_the_gamma_curve():
    x = real_batch(2, 24)
    ours = D.lowlight(x, [1.5, 3.7]).double().numpy()
    ref = _q8(x.double().numpy() ** np.array([1.5, 3.7])[:, None, None, None])
    np.testing.assert_allclose(ours, ref, atol=1e-6)
