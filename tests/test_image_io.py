"""read_image_rgb / read_image_size over every common image mode."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mrcnn.data.image_io import ImageReadError, read_image_rgb, read_image_size


def _check_rgb(array: np.ndarray, shape: tuple[int, int]) -> None:
    assert array.dtype == np.uint8
    assert array.shape == (*shape, 3)
    # Writable and contiguous, as Matterport's skimage-based load_image: user code draws on it in place.
    assert array.flags.writeable and array.flags.c_contiguous


def test_rgb_png_round_trip(tmp_path: Path) -> None:
    data = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    Image.fromarray(data, "RGB").save(tmp_path / "a.png")
    out = read_image_rgb(tmp_path / "a.png")
    _check_rgb(out, (5, 7))
    np.testing.assert_array_equal(out, data)


def test_grayscale_l(tmp_path: Path) -> None:
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    out = read_image_rgb(tmp_path / "g.png")
    _check_rgb(out, (3, 4))
    for channel in range(3):
        np.testing.assert_array_equal(out[..., channel], gray)


def test_grayscale_alpha_composited_on_white(tmp_path: Path) -> None:
    la = np.zeros((2, 2, 2), dtype=np.uint8)
    la[..., 0] = 100
    la[..., 1] = [[255, 0], [128, 255]]
    Image.fromarray(la, "LA").save(tmp_path / "la.png")
    out = read_image_rgb(tmp_path / "la.png")
    _check_rgb(out, (2, 2))
    assert out[0, 0].tolist() == [100] * 3  # opaque
    assert out[0, 1].tolist() == [255] * 3  # transparent -> white
    expected = round(100 * 128 / 255 + 255 * (1 - 128 / 255))
    assert abs(int(out[1, 0, 0]) - expected) <= 1


def test_rgba_composited_on_white(tmp_path: Path) -> None:
    rgba = np.zeros((1, 2, 4), dtype=np.uint8)
    rgba[0, 0] = [10, 20, 30, 255]
    rgba[0, 1] = [10, 20, 30, 0]
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    out = read_image_rgb(tmp_path / "rgba.png")
    _check_rgb(out, (1, 2))
    assert out[0, 0].tolist() == [10, 20, 30]
    assert out[0, 1].tolist() == [255, 255, 255]


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_16_bit_scaled_by_shift(tmp_path: Path, suffix: str) -> None:
    data = np.array([[0, 256, 65535], [1000, 40000, 255]], dtype=np.uint16)
    Image.fromarray(data).save(tmp_path / f"deep{suffix}")
    with Image.open(tmp_path / f"deep{suffix}") as img:
        assert img.mode.startswith("I")
    out = read_image_rgb(tmp_path / f"deep{suffix}")
    _check_rgb(out, (2, 3))
    np.testing.assert_array_equal(out[..., 1], (data >> 8).astype(np.uint8))


def test_palette_image(tmp_path: Path) -> None:
    img = Image.new("P", (3, 2))
    img.putpalette([0, 0, 0, 255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    img.putdata([0, 1, 2, 2, 1, 0])
    img.save(tmp_path / "p.png")
    out = read_image_rgb(tmp_path / "p.png")
    _check_rgb(out, (2, 3))
    assert out[0].tolist() == [[0, 0, 0], [255, 0, 0], [0, 0, 255]]
    assert out[1].tolist() == [[0, 0, 255], [255, 0, 0], [0, 0, 0]]


def test_palette_with_transparency(tmp_path: Path) -> None:
    img = Image.new("P", (2, 1))
    img.putpalette([0, 255, 0, 9, 9, 9] + [0] * (256 * 3 - 6))
    img.putdata([0, 1])
    img.info["transparency"] = 1
    img.save(tmp_path / "pt.png", transparency=1)
    out = read_image_rgb(tmp_path / "pt.png")
    assert out[0].tolist() == [[0, 255, 0], [255, 255, 255]]


def test_cmyk_jpeg(tmp_path: Path) -> None:
    Image.new("CMYK", (8, 8), (0, 255, 255, 0)).save(tmp_path / "c.jpg", quality=100)
    out = read_image_rgb(tmp_path / "c.jpg")
    _check_rgb(out, (8, 8))
    red, green, blue = out[4, 4].astype(int)
    assert red > 200 and green < 50 and blue < 50


def test_bilevel_image(tmp_path: Path) -> None:
    img = Image.new("1", (2, 1))
    img.putdata([0, 1])
    img.save(tmp_path / "b.png")
    assert read_image_rgb(tmp_path / "b.png")[0].tolist() == [[0, 0, 0], [255, 255, 255]]


def _exif_jpeg(path: Path, orientation: int) -> np.ndarray:
    """Save a 4 (h) x 6 (w) image with a white top-left pixel block."""
    data = np.zeros((40, 60, 3), dtype=np.uint8)
    data[:10, :10] = 255
    img = Image.fromarray(data)
    exif = Image.Exif()
    exif[0x0112] = orientation
    img.save(path, exif=exif.tobytes(), quality=100)
    return data


@pytest.mark.parametrize("orientation,corner", [(6, (0, -1)), (8, (-1, 0))])
def test_exif_orientation(tmp_path: Path, orientation: int, corner: tuple[int, int]) -> None:
    path = tmp_path / f"rot{orientation}.jpg"
    _exif_jpeg(path, orientation)
    out = read_image_rgb(path)
    _check_rgb(out, (60, 40))  # displayed: portrait
    assert read_image_size(path) == (60, 40)
    # Orientation 6 = rotate 90 CW to display: stored top-left goes top-right.
    # Orientation 8 = rotate 90 CCW: stored top-left goes bottom-left.
    row, col = corner
    rows = slice(0, 10) if row == 0 else slice(-10, None)
    cols = slice(0, 10) if col == 0 else slice(-10, None)
    assert out[rows, cols].mean() > 200
    assert out.mean() < 60


def test_size_of_plain_image(tmp_path: Path) -> None:
    Image.new("RGB", (11, 7)).save(tmp_path / "s.png")
    assert read_image_size(tmp_path / "s.png") == (7, 11)


def test_missing_file_names_path(tmp_path: Path) -> None:
    path = tmp_path / "nope" / "missing.jpg"
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_image_rgb(path)
    with pytest.raises(FileNotFoundError, match="missing.jpg"):
        read_image_size(path)


def test_not_an_image_names_path(tmp_path: Path) -> None:
    path = tmp_path / "fake.jpg"
    path.write_bytes(b"this is not an image at all")
    with pytest.raises(ImageReadError, match="fake.jpg") as info:
        read_image_rgb(path)
    assert "not a recognised image format" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_truncated_image_names_path(tmp_path: Path) -> None:
    good = tmp_path / "good.png"
    noise = np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)
    Image.fromarray(noise).save(good)
    bad = tmp_path / "truncated.png"
    bad.write_bytes(good.read_bytes()[:200])
    with pytest.raises(ImageReadError, match="truncated.png"):
        read_image_rgb(bad)


def test_directory_is_not_an_image(tmp_path: Path) -> None:
    with pytest.raises(ImageReadError, match="not a regular file"):
        read_image_rgb(tmp_path)
