"""The zlib-ng PNG writer: lossless for every shape it accepts, valid for strict readers."""

from __future__ import annotations

import io
import zlib

import cv2
import numpy as np
import pytest
from PIL import Image

from photoproc.pipeline.encode import cutout, encode
from photoproc.pipeline.png import encode_cutout_png, encode_png


def _decoded(png: bytes) -> np.ndarray:
    return cv2.imdecode(np.frombuffer(png, np.uint8), cv2.IMREAD_UNCHANGED)


@pytest.mark.parametrize(
    "shape",
    [(1, 1), (1, 1, 3), (1, 1, 4), (7, 5, 4), (3000, 1), (1, 5000, 4), (513, 777, 3), (600, 900)],
)
def test_round_trip_is_lossless(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(sum(shape)).integers(0, 256, shape, dtype=np.uint8)
    back = _decoded(encode_png(pixels))
    assert back.shape == pixels.shape
    assert np.array_equal(back, pixels)


def test_strips_meet_exactly_at_their_borders() -> None:
    # Rows wider than the 1 MB strip budget and a height that leaves a short last
    # strip: a wrong "row above" at a strip border would corrupt that row only.
    pixels = np.random.default_rng(1).integers(0, 256, (301, 70_000, 4), dtype=np.uint8)
    pixels[::7] = 0
    assert np.array_equal(_decoded(encode_png(pixels)), pixels)
    tall = np.random.default_rng(2).integers(0, 256, (1237, 2000, 3), dtype=np.uint8)
    assert np.array_equal(_decoded(encode_png(tall)), tall)


def test_views_are_read_in_place() -> None:
    base = np.random.default_rng(3).integers(0, 256, (300, 400, 4), dtype=np.uint8)
    view = base[10:200:2, 5:300]
    assert not view.flags.c_contiguous
    assert np.array_equal(_decoded(encode_png(view)), view)


def test_channels_are_written_in_png_order() -> None:
    bgra = np.zeros((4, 4, 4), np.uint8)
    bgra[..., 2] = 255  # red in OpenCV's order
    bgra[..., 3] = 128
    image = Image.open(io.BytesIO(encode_png(bgra)))
    assert image.mode == "RGBA"
    assert image.getpixel((0, 0)) == (255, 0, 0, 128)
    assert Image.open(io.BytesIO(encode_png(bgra[..., :3]))).mode == "RGB"
    assert Image.open(io.BytesIO(encode_png(bgra[..., 0]))).mode == "L"


def test_chunks_carry_valid_crcs() -> None:
    pixels = np.random.default_rng(4).integers(0, 256, (64, 64, 4), dtype=np.uint8)
    png = encode_png(pixels)
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    offset, tags = 8, []
    while offset < len(png):
        length = int.from_bytes(png[offset : offset + 4], "big")
        tag_and_data = png[offset + 4 : offset + 8 + length]
        crc = int.from_bytes(png[offset + 8 + length : offset + 12 + length], "big")
        assert zlib.crc32(tag_and_data) == crc, tag_and_data[:4]
        tags.append(tag_and_data[:4])
        offset += 12 + length
    assert tags == [b"IHDR", b"IDAT", b"IEND"]
    Image.open(io.BytesIO(png)).verify()


def test_zeroed_transparency_compresses() -> None:
    pixels = np.zeros((1000, 1000, 4), np.uint8)
    pixels[400:600, 400:600] = 200
    # zlib-ng's level 1 tops out near 100:1 on runs of zeros (fixed Huffman codes).
    assert len(encode_png(pixels)) < pixels.nbytes // 50


@pytest.mark.parametrize(
    "pixels",
    [
        np.zeros((4, 4, 4), np.uint16),
        np.zeros((4, 4, 2), np.uint8),
        np.zeros((0, 4, 4), np.uint8),
        np.zeros((4, 4, 4, 1), np.uint8),
    ],
    ids=["16-bit", "two-channels", "empty", "four-dims"],
)
def test_unsupported_pixels_are_refused(pixels: np.ndarray) -> None:
    with pytest.raises(ValueError, match="encode_png needs"):
        encode_png(pixels)


def test_encode_png_goes_through_the_writer() -> None:
    bgra = np.random.default_rng(5).integers(0, 256, (50, 60, 4), dtype=np.uint8)
    assert encode(bgra, "png") == encode_png(bgra)


@pytest.mark.parametrize("channels", [3, 4])
def test_cutout_writer_matches_cutout_then_encode(channels: int) -> None:
    rng = np.random.default_rng(channels)
    colour = rng.integers(0, 256, (777, 1500, channels), dtype=np.uint8)
    alpha = np.zeros((777, 1500), np.uint8)
    alpha[100:600, 200:1300] = rng.integers(0, 256, (500, 1100), dtype=np.uint8)
    png = encode_cutout_png(colour, alpha)
    assert png == encode_png(cutout(colour, alpha))
    rgba = np.asarray(Image.open(io.BytesIO(png)))
    assert not rgba[alpha == 0].any()  # colour under full transparency is zeroed
    visible = alpha > 0
    if channels == 4:
        visible &= colour[..., 3] > 0
    assert np.array_equal(rgba[..., 2][visible], colour[..., 0][visible])


def test_cutout_writer_refuses_mismatched_alpha() -> None:
    with pytest.raises(ValueError, match="alpha"):
        encode_cutout_png(np.zeros((4, 4, 3), np.uint8), np.zeros((4, 5), np.uint8))
    with pytest.raises(ValueError, match="colour"):
        encode_cutout_png(np.zeros((4, 4), np.uint8), np.zeros((4, 4), np.uint8))


@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("shape", [(1, 1), (1, 7), (7, 1), (2, 2), (1, 4), (4, 1)])
def test_cutout_writer_takes_tiny_and_sliver_images(shape: tuple[int, int], channels: int) -> None:
    # OpenCV reads a 1x1 array as a scalar: the 1x1 cutout used to raise cv2.error.
    rng = np.random.default_rng(sum(shape) + channels)
    colour = rng.integers(1, 256, (*shape, channels), dtype=np.uint8)
    alpha = rng.integers(0, 256, shape, dtype=np.uint8)
    alpha.flat[0] = 0
    alpha.flat[-1] = 255
    png = encode_cutout_png(colour, alpha)
    assert png == encode_png(cutout(colour, alpha))
    rgba = np.asarray(Image.open(io.BytesIO(png)))
    assert rgba.shape == (*shape, 4)
    assert not rgba[alpha == 0].any()
    visible = alpha > 0
    if channels == 4:
        visible &= colour[..., 3] > 0
    assert np.array_equal(rgba[..., 2][visible], colour[..., 0][visible])
