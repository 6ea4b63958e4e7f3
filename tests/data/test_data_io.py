import numpy as np
import pytest
import torch
from PIL import Image

from mio_strategies.data import ImageReadError, embedded_image_paths, list_images, read_image, write_png


def test_embedded_images_are_rgb_photos_of_at_least_256px():
    paths = embedded_image_paths()
    assert len(paths) >= 6
    for p in paths:
        img = read_image(p)
        assert img.shape[0] == 3 and min(img.shape[1:]) >= 256
        assert img.dtype == torch.float32 and img.min() >= 0 and img.max() <= 1
        assert img.std() > 0.05  # real content, not a flat image
    assert (paths[0].parent / "LICENSE.md").is_file()


def test_png_roundtrip_is_exact_on_8bit_levels(tmp_path):
    x = torch.randint(0, 256, (3, 17, 23)).float() / 255
    write_png(x, tmp_path / "a.png")
    assert torch.equal(read_image(tmp_path / "a.png"), x)


def test_grayscale_is_replicated_to_three_channels(tmp_path):
    arr = (np.arange(64, dtype=np.uint8).reshape(8, 8) * 3)
    Image.fromarray(arr, mode="L").save(tmp_path / "g.png")
    img = read_image(tmp_path / "g.png")
    assert img.shape == (3, 8, 8)
    assert torch.equal(img[0], img[2]) and torch.allclose(img[1] * 255, torch.from_numpy(arr).float())


def test_rgba_drops_alpha(tmp_path):
    arr = np.zeros((4, 4, 4), dtype=np.uint8)
    arr[..., 0] = 200
    arr[..., 3] = 10  # nearly transparent: alpha is dropped, not composited
    Image.fromarray(arr, mode="RGBA").save(tmp_path / "a.png")
    img = read_image(tmp_path / "a.png")
    assert img.shape == (3, 4, 4)
    assert torch.allclose(img[0], torch.full((4, 4), 200 / 255))


def test_16bit_grayscale_keeps_full_precision(tmp_path):
    arr = np.array([[0, 1, 65535, 32768]], dtype=np.uint16)
    Image.fromarray(arr).save(tmp_path / "d.png")
    img = read_image(tmp_path / "d.png")
    assert img.shape == (3, 1, 4)
    assert torch.allclose(img[0, 0].double(), torch.tensor([0, 1 / 65535, 1.0, 32768 / 65535], dtype=torch.float64), atol=1e-7)


def test_corrupt_file_error_names_the_file(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    with pytest.raises(ImageReadError, match="broken.png"):
        read_image(bad)
    with pytest.raises(ImageReadError, match="missing.png"):
        read_image(tmp_path / "missing.png")


def test_write_png_leaves_no_temporary_files(tmp_path):
    write_png(torch.zeros(3, 4, 4), tmp_path / "x.png")
    assert [p.name for p in tmp_path.iterdir()] == ["x.png"]


def test_list_images_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        list_images(tmp_path / "nope")
    with pytest.raises(ValueError, match="no image files"):
        list_images(tmp_path)
