"""photoproc.pipeline.decode: real encoded files (built in memory) through the real decoders."""

from __future__ import annotations

import io
import os
import tracemalloc
import warnings
import zipfile
from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from PIL import Image, ImageOps, features
from support.images import (
    BLUE,
    GREEN,
    QUADRANT_COLORS,
    RED,
    WHITE,
    append_zip,
    bgr,
    encode,
    header_only,
    image_bytes,
    jpeg_bytes,
    object_on_background,
    oriented,
    pattern,
    png_bytes,
    quadrant_means,
)

from photoproc.errors import ImageTooLargeError, InvalidImageError
from photoproc.pipeline.decode import (
    DEFAULT_MAX_PIXELS,
    FORMATS,
    DecodedImage,
    decode,
    decode_reduced,
    image_size,
    sniff_format,
)

pytestmark = pytest.mark.timeout(120)

HAS_AVIF = features.check("avif")
needs_avif = pytest.mark.skipif(not HAS_AVIF, reason="this Pillow has no AVIF codec")
LOSSY = {"jpeg": 8, "heif": 12, "avif": 12}
ORIENTED_FORMATS = ["jpeg", "png", "webp", "tiff", "heif"]


def assert_quadrants(pixels: np.ndarray, tolerance: float = 2) -> None:
    """The upright "quadrants" pattern: red, green / blue, yellow (checked in BGR)."""
    for got, want in zip(quadrant_means(pixels), QUADRANT_COLORS, strict=True):
        assert np.allclose(got[:3], bgr(want), atol=tolerance), (got, bgr(want))


def mean_abs_diff(a: np.ndarray, b: np.ndarray) -> float:
    assert a.shape == b.shape
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("fmt", FORMATS)
def test_sniff_names_every_format(fmt):
    assert sniff_format(image_bytes(fmt, 16, 8)) == fmt


@needs_avif
def test_sniff_avif_is_heif():
    assert sniff_format(image_bytes("avif", 16, 8)) == "heif"


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xff\xd8",  # too short to be anything
        b"hello, world\n" * 20,
        b"BMW sells cars. " * 4,  # starts with "BM" but is no bitmap
        b"RIFF\x24\x00\x00\x00WAVEfmt ",
        b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom",  # an MP4, same box layout as HEIF
        b"%PDF-1.7\n",
        b"PK\x03\x04" + b"\x00" * 40,
    ],
    ids=["empty", "short-jpeg", "text", "bm-text", "wav", "mp4", "pdf", "zip"],
)
def test_sniff_refuses_non_images(data):
    assert sniff_format(data) is None


def test_sniff_reads_random_bytes_as_nothing():
    rng = np.random.default_rng(7)
    for _ in range(50):
        data = rng.integers(0, 256, 64, dtype=np.uint8).tobytes()
        if data[:3] != b"\xff\xd8\xff":
            assert sniff_format(data) is None


def test_sniff_jpeg_with_zip_appended_is_jpeg():
    data = append_zip(jpeg_bytes(32, 32))
    assert zipfile.is_zipfile(io.BytesIO(data))  # the fixture really is a ZIP as well
    assert sniff_format(data) == "jpeg"


def test_sniff_bigtiff_and_big_endian_tiff():
    assert sniff_format(b"II+\x00\x08\x00\x00\x00" + b"\x00" * 16) == "tiff"
    assert sniff_format(b"MM\x00*\x00\x00\x00\x08" + b"\x00" * 16) == "tiff"


# --------------------------------------------------------------------------- formats


@pytest.mark.parametrize("fmt", [*FORMATS, pytest.param("avif", marks=needs_avif)])
def test_decode_each_format_to_bgr(fmt):
    data = image_bytes(fmt, 64, 32, pattern="quadrants")
    image = decode(data)
    assert isinstance(image, DecodedImage)
    assert image.format == ("heif" if fmt == "avif" else fmt)
    assert image.pixels.dtype == np.uint8
    assert image.pixels.shape == (32, 64, 3)
    assert (image.width, image.height, image.has_alpha) == (64, 32, False)
    assert_quadrants(image.pixels, LOSSY.get(fmt, 1))
    assert image_size(data) == (64, 32)


def test_decode_does_not_look_at_names_or_extensions(tmp_path):
    # A PNG saved as .jpg (the shared plants-1.jpg is one) is still a PNG.
    path = tmp_path / "photo.jpg"
    path.write_bytes(png_bytes(20, 10, color=GREEN))
    image = decode(path.read_bytes())
    assert image.format == "png"
    assert tuple(image.pixels[5, 5]) == bgr(GREEN)


def test_decode_progressive_jpeg():
    data = jpeg_bytes(320, 240, pattern="quadrants", progressive=True)
    assert data.count(b"\xff\xda") > 1  # several scans, so the end search crosses scans
    assert_quadrants(decode(data).pixels, LOSSY["jpeg"])


def test_jpeg_segment_holding_an_end_marker_is_skipped_by_length():
    # A comment (like an EXIF thumbnail) may contain FF D9: it is not the end of the image.
    data = jpeg_bytes(64, 32, pattern="quadrants", comment=b"\xff\xd9 PK\x03\x04 \xff\xd9")
    assert_quadrants(decode(data).pixels, LOSSY["jpeg"])


def test_jpeg_with_stray_bytes_between_segments_decodes_as_libjpeg_would():
    data = jpeg_bytes(64, 32, pattern="quadrants")
    table = data.find(b"\xff\xdb")
    assert_quadrants(decode(data[:table] + b"\x00junk" + data[table:]).pixels, LOSSY["jpeg"])


def test_jpeg_with_zip_appended_decodes_like_the_plain_jpeg():
    plain = jpeg_bytes(64, 48)
    both = append_zip(plain, payload=b"x" * 5000)
    assert zipfile.is_zipfile(io.BytesIO(both))
    assert np.array_equal(decode(both).pixels, decode(plain).pixels)
    assert image_size(both) == (64, 48)


# --------------------------------------------------------------------------- orientation


@pytest.mark.parametrize("orientation", range(1, 9))
def test_jpeg_exif_orientation_gives_upright_pixels(orientation):
    data = oriented(64, 32, orientation)
    image = decode(data)
    assert image.pixels.shape == (32, 64, 3)
    assert_quadrants(image.pixels, LOSSY["jpeg"])
    assert image_size(data) == (64, 32)
    # Independent oracles: Pillow's exif_transpose, and OpenCV's own orientation handling.
    with Image.open(io.BytesIO(data)) as pil:
        expected = np.asarray(ImageOps.exif_transpose(pil).convert("RGB"))[:, :, ::-1]
    assert mean_abs_diff(image.pixels, expected) < 1.5
    by_opencv = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    assert mean_abs_diff(image.pixels, by_opencv) < 0.01


@pytest.mark.parametrize(
    ("orientation", "corner"),
    [(3, "bottom-right"), (6, "top-right"), (8, "bottom-left"), (1, "top-left")],
)
def test_red_top_left_moves_where_the_tag_says(orientation, corner):
    # Stored 60×30 with red in its top-left quarter, tagged, not pre-rotated.
    data = encode(pattern(60, 30, "corner", RED), "jpeg", orientation=orientation, quality=95)
    pixels = decode(data).pixels
    swapped = orientation in (6, 8)
    assert pixels.shape[:2] == ((60, 30) if swapped else (30, 60))
    assert image_size(data) == ((30, 60) if swapped else (60, 30))
    height, width = pixels.shape[:2]
    corners = {
        "top-left": pixels[2, 2],
        "top-right": pixels[2, width - 3],
        "bottom-left": pixels[height - 3, 2],
        "bottom-right": pixels[height - 3, width - 3],
    }
    for name, value in corners.items():
        is_red = value[2] > 200 and value[0] < 60
        assert is_red == (name == corner), (name, value)


@pytest.mark.parametrize("fmt", ORIENTED_FORMATS)
@pytest.mark.parametrize("orientation", [3, 6, 7])
def test_orientation_in_every_format_that_carries_it(fmt, orientation):
    data = oriented(64, 32, orientation, fmt)
    image = decode(data)
    assert image.pixels.shape == (32, 64, 3)
    assert_quadrants(image.pixels, LOSSY.get(fmt, 1))
    assert image_size(data) == (64, 32)


# --------------------------------------------------------------------------- modes


def test_cmyk_jpeg_red_stays_red():
    data = jpeg_bytes(32, 32, color=RED, mode="CMYK")
    with Image.open(io.BytesIO(data)) as pil:
        assert pil.mode == "CMYK"
    assert b"Adobe" in data  # Adobe APP14: the CMYK values are stored inverted
    pixels = decode(data).pixels
    assert pixels.shape == (32, 32, 3)
    assert np.allclose(pixels.reshape(-1, 3).mean(axis=0), bgr(RED), atol=10)


def test_grey_jpeg_becomes_three_channels():
    pixels = decode(jpeg_bytes(16, 8, color=(90, 90, 90), mode="L")).pixels
    assert pixels.shape == (8, 16, 3)
    assert np.allclose(pixels, 90, atol=2)


def _grey_ramp_16bit(width: int = 300) -> np.ndarray:
    return np.tile(np.linspace(0, 65535, width).round().astype(np.uint16), (4, 1))


@pytest.mark.parametrize("fmt", ["png", "tiff"])
def test_16bit_grey_ramp_stays_a_full_ramp(fmt):
    data = encode(_grey_ramp_16bit(), fmt)
    with Image.open(io.BytesIO(data)) as pil:
        assert pil.mode.startswith("I")  # the fixture really is 16-bit
    pixels = decode(data).pixels
    assert pixels.shape == (4, 300, 3) and pixels.dtype == np.uint8
    row = pixels[0, :, 0].astype(int)
    assert np.all(np.diff(row) >= 0)
    assert row[0] <= 1 and row[-1] >= 254
    assert len(np.unique(row)) > 200  # scaled, not clipped to 255
    assert np.array_equal(pixels[..., 0], pixels[..., 2])


def test_16bit_rgba_png_keeps_a_scaled_alpha_ramp():
    ramp = _grey_ramp_16bit()
    ok, encoded = cv2.imencode(".png", np.dstack([ramp, ramp, ramp, ramp]))
    assert ok
    pixels = decode(encoded.tobytes()).pixels
    assert pixels.shape == (4, 300, 4) and pixels.dtype == np.uint8
    alpha = pixels[0, :, 3].astype(int)
    assert np.all(np.diff(alpha) >= 0) and alpha[0] == 0 and alpha[-1] == 255
    assert len(np.unique(alpha)) > 200


@pytest.mark.parametrize("fmt", ["png", "gif"])
def test_palette_transparency_becomes_alpha(fmt):
    palette_image = Image.new("P", (8, 6), 1)
    palette_image.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    palette_image.paste(0, (0, 0, 4, 6))  # left half: index 0, the transparent one
    image = decode(encode(palette_image, fmt, transparency=0))
    assert image.has_alpha and image.pixels.shape == (6, 8, 4)
    assert np.all(image.pixels[:, :4, 3] == 0)
    assert np.all(image.pixels[:, 4:, 3] == 255)
    assert np.all(image.pixels[:, 4:, :3] == bgr(RED))


def test_palette_without_transparency_has_no_alpha():
    image = decode(png_bytes(8, 8, color=BLUE, mode="P"))
    assert not image.has_alpha
    assert tuple(image.pixels[4, 4]) == bgr(BLUE)


def test_la_png_becomes_bgra():
    image = decode(encode(Image.new("LA", (5, 4), (100, 50)), "png"))
    assert image.pixels.shape == (4, 5, 4)
    assert np.all(image.pixels == (100, 100, 100, 50))


def test_grey_png_with_transparent_value_becomes_bgra():
    grey = Image.new("L", (6, 4), 200)
    grey.paste(7, (0, 0, 3, 4))
    pixels = decode(encode(grey, "png", transparency=7)).pixels
    assert pixels.shape == (4, 6, 4)
    assert np.all(pixels[:, :3, 3] == 0) and np.all(pixels[:, 3:] == (200, 200, 200, 255))


@pytest.mark.parametrize("fmt", ["png", "webp", "tiff"])
def test_rgba_keeps_exact_colour_and_alpha(fmt):
    rgba = np.zeros((4, 6, 4), np.uint8)
    rgba[..., :3] = (10, 20, 30)
    rgba[:, :3, 3] = 255
    rgba[:, 3:, 3] = 128
    image = decode(encode(rgba, fmt))
    assert image.has_alpha
    assert np.array_equal(image.pixels, rgba[..., [2, 1, 0, 3]])


def test_one_bit_png():
    bits = Image.new("1", (9, 9), 0)
    bits.paste(1, (0, 0, 9, 4))
    pixels = decode(encode(bits, "png")).pixels
    assert pixels.shape == (9, 9, 3)
    assert np.all(pixels[:4] == 255) and np.all(pixels[4:] == 0)


def test_gif_first_frame_and_tiff_first_page():
    frames = [Image.new("RGB", (8, 8), color) for color in (RED, GREEN, BLUE)]
    gif, tiff = io.BytesIO(), io.BytesIO()
    frames[0].save(gif, "GIF", save_all=True, append_images=frames[1:], duration=50)
    frames[0].save(tiff, "TIFF", save_all=True, append_images=frames[1:])
    for data in (gif.getvalue(), tiff.getvalue()):
        assert np.all(decode(data).pixels == bgr(RED))


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize("cut", ["header", "half", "no-eoi", "last-byte"])
@pytest.mark.parametrize("progressive", [False, True])
def test_truncated_jpeg(cut, progressive):
    data = jpeg_bytes(160, 120, pattern="noise", progressive=progressive)
    size = {"header": 20, "half": len(data) // 2, "no-eoi": len(data) - 2}.get(cut, len(data) - 1)
    with pytest.raises(InvalidImageError, match=r"^truncated JPEG: "):
        decode(data[:size])
    with pytest.raises(InvalidImageError, match=r"^truncated JPEG: "):
        decode_reduced(data[:size], 32)


def test_truncated_jpeg_still_has_a_size():
    data = jpeg_bytes(160, 120, pattern="noise")
    assert image_size(data[: len(data) // 2]) == (160, 120)


@pytest.mark.parametrize("cut", ["signature", "header", "half", "no-iend"])
def test_truncated_png(cut):
    data = png_bytes(64, 48, pattern="noise")
    size = {"signature": 8, "header": 20, "half": len(data) // 2}.get(cut, len(data) - 12)
    with pytest.raises(InvalidImageError, match=r"^truncated PNG: "):
        decode(data[:size])


def test_png_without_image_data():
    with pytest.raises(InvalidImageError, match="no image data"):
        decode(header_only("png", 10, 10))


def test_corrupt_png_data_is_refused_not_returned_as_garbage():
    data = bytearray(png_bytes(64, 48, pattern="noise"))
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(InvalidImageError, match=r"^corrupt PNG"):
        decode(bytes(data))


@pytest.mark.parametrize("fmt", ["gif", "bmp", "tiff", "webp", "heif"])
def test_truncated_other_formats(fmt):
    data = image_bytes(fmt, 64, 48, pattern="noise")
    with pytest.raises(InvalidImageError, match=r"truncated|corrupt"):
        decode(data[: len(data) * 2 // 3])


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "empty"),
        (os.urandom(4096).replace(b"\xff\xd8\xff", b"xxx"), "not a recognised image format"),
        (b"just some text\n" * 100, "not a recognised image format"),
    ],
    ids=["empty", "random", "text"],
)
def test_non_images(data, reason):
    for call in (decode, image_size, lambda d: decode_reduced(d, 64)):
        with pytest.raises(InvalidImageError, match=reason):
            call(data)


def test_jpeg_signature_followed_by_garbage():
    with pytest.raises(InvalidImageError, match="JPEG"):
        decode(b"\xff\xd8\xff" + os.urandom(2000))


# --------------------------------------------------------------------------- pixel limit


@pytest.mark.parametrize("fmt", ["png", "jpeg", "bmp", "gif", "tiff"])
def test_over_the_limit_is_refused_from_the_header(fmt):
    data = header_only(fmt, 60_000, 50_000)  # 3 GP declared, a few hundred bytes present
    assert image_size(data) == (60_000, 50_000)
    tracemalloc.start()
    try:
        with pytest.raises(ImageTooLargeError) as caught:
            decode(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 << 20  # nothing near 9 GB was ever asked for
    error = caught.value
    assert (error.width, error.height, error.max_pixels) == (60_000, 50_000, DEFAULT_MAX_PIXELS)
    with pytest.raises(ImageTooLargeError):
        decode_reduced(data, 320)


@pytest.mark.parametrize("fmt", [*FORMATS, "jpeg-cmyk", "png-grey-trns"])
def test_limit_applies_on_every_decode_path(fmt):
    if fmt == "jpeg-cmyk":
        data = jpeg_bytes(40, 30, mode="CMYK")
    elif fmt == "png-grey-trns":
        data = encode(Image.new("L", (40, 30), 7), "png", transparency=7)
    else:
        data = image_bytes(fmt, 40, 30)
    with pytest.raises(ImageTooLargeError, match="40x30"):
        decode(data, max_pixels=40 * 30 - 1)
    assert decode(data, max_pixels=40 * 30).pixels.shape[:2] == (30, 40)


def test_pillow_bomb_warning_never_escapes_when_the_limit_is_raised():
    # 9000×10000 = 90 MP: above Pillow's MAX_IMAGE_PIXELS (≈89.5 MP), where it only warns.
    assert Image.MAX_IMAGE_PIXELS is not None
    assert Image.MAX_IMAGE_PIXELS < 90_000_000 < 2 * Image.MAX_IMAGE_PIXELS
    data = header_only("tiff", 9000, 10_000)
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(InvalidImageError, match="truncated TIFF"):
            decode(data, max_pixels=100_000_000)
    assert not [w for w in seen if issubclass(w.category, Image.DecompressionBombWarning)]
    with pytest.raises(ImageTooLargeError):
        decode(data)  # and under the default limit it is refused first


def test_pillow_bomb_error_becomes_too_large_with_pillows_limit():
    data = header_only("tiff", 20_000, 10_000)  # 200 MP: above 2× Pillow's limit
    with pytest.raises(ImageTooLargeError) as caught:
        decode(data, max_pixels=300_000_000)
    assert caught.value.max_pixels == 2 * Image.MAX_IMAGE_PIXELS


# --------------------------------------------------------------------------- reduced copies


@pytest.mark.parametrize("size", [(400, 300), (203, 101), (1001, 667), (61, 97)])
@pytest.mark.parametrize("max_side", [320, 100, 16])
def test_reduced_size_scale_and_content(size, max_side):
    width, height = size
    image = decode(png_bytes(width, height))
    small, scale = image.reduced(max_side)
    longest = max(width, height)
    assert max(small.shape[:2]) == min(max_side, longest)
    assert scale == pytest.approx(min(1.0, max_side / longest))
    assert small.shape[1] == max(1, round(width * scale))
    assert small.shape[0] == max(1, round(height * scale))
    expected = cv2.resize(image.pixels, small.shape[1::-1], interpolation=cv2.INTER_AREA)
    assert mean_abs_diff(small, expected) < 3


def test_reduced_never_upscales_and_returns_a_copy():
    image = decode(png_bytes(40, 30))
    small, scale = image.reduced(1000)
    assert scale == 1.0
    assert np.array_equal(small, image.pixels)
    assert not np.shares_memory(small, image.pixels)


def test_reduced_keeps_alpha():
    data, mask = object_on_background(200, 100, fmt="array")
    rgba = np.dstack([data, np.where(mask, 255, 0).astype(np.uint8)])
    small, _ = decode(encode(rgba, "png")).reduced(50)
    assert small.shape == (25, 50, 4)
    assert small[12, 25, 3] == 255 and small[0, 0, 3] == 0


def test_reduced_rejects_a_side_below_one():
    with pytest.raises(ValueError):
        decode(png_bytes(8, 8)).reduced(0)


@pytest.mark.parametrize("orientation", range(1, 9))
@pytest.mark.parametrize("size", [(203, 101), (64, 48)])
def test_decode_reduced_matches_full_decode_then_reduced(orientation, size):
    # Odd sizes make the reduced JPEG decode pad its last row/column; orientation moves
    # that padding to a different side of the upright image.
    data = image_bytes("jpeg", *size, orientation=orientation, quality=95)
    full = decode(data)
    for max_side in (64, 20):
        expected, scale = full.reduced(max_side)
        got, got_scale = decode_reduced(data, max_side)
        assert got.shape == expected.shape
        assert got_scale == scale
        assert mean_abs_diff(got, expected) < 4


@pytest.mark.parametrize("orientation", [1, 5, 6, 8])
def test_decode_reduced_is_upright(orientation):
    small, _ = decode_reduced(oriented(203, 101, orientation), 64)
    assert small.shape == (32, 64, 3)
    assert_quadrants(small, LOSSY["jpeg"])


def test_decode_reduced_for_other_formats_and_small_images():
    small, scale = decode_reduced(png_bytes(200, 100, pattern="quadrants"), 50)
    assert (small.shape, scale) == ((25, 50, 3), 0.25)
    assert_quadrants(small)
    same, scale = decode_reduced(jpeg_bytes(30, 20), 64)
    assert (same.shape, scale) == ((20, 30, 3), 1.0)


def test_decode_reduced_cmyk_jpeg_keeps_colour():
    small, _ = decode_reduced(jpeg_bytes(200, 100, color=RED, mode="CMYK"), 50)
    assert np.allclose(small.reshape(-1, 3).mean(axis=0), bgr(RED), atol=10)


# --------------------------------------------------------------------------- real photos


def test_shared_photos(shared_dir):
    for path in sorted((shared_dir / "testdata" / "photos").glob("*.jpg")):
        data = path.read_bytes()
        image = decode(data)
        assert image.format == sniff_format(data)
        assert image_size(data) == (image.width, image.height)
        small, scale = image.reduced(320)
        assert max(small.shape[:2]) == 320 and 0 < scale < 1
        assert small.shape[2] == image.pixels.shape[2]
    plants = decode((shared_dir / "testdata" / "photos" / "plants-1.jpg").read_bytes())
    assert (plants.format, plants.has_alpha) == ("png", True)


def test_object_on_background_helper_mask_matches_pixels():
    # The helper other tests rely on: its mask is the ground truth of its own pixels.
    data, mask = object_on_background(120, 80, fg=RED, bg=WHITE, shape="blob")
    pixels = decode(data).pixels
    is_red = (pixels[..., 2] > 200) & (pixels[..., 1] < 60)
    assert np.array_equal(is_red, mask)
    assert 0.1 < mask.mean() < 0.5


def test_concurrent_decodes_agree_with_serial_ones():
    # The pipeline decodes on worker threads: no shared state may leak between calls.
    inputs = [oriented(96, 64, o, fmt) for o in (1, 6) for fmt in ORIENTED_FORMATS]
    inputs += [jpeg_bytes(64, 48, mode="CMYK"), image_bytes("gif", 40, 30)]
    serial = [decode(data).pixels for data in inputs]
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            for got, want in zip(pool.map(lambda d: decode(d).pixels, inputs), serial, strict=True):
                assert np.array_equal(got, want)
