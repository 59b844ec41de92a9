"""A PNG writer built for speed on large cutouts: zlib-ng level 1 over "Up"-filtered rows.

Why not libpng (OpenCV, Pillow, imagecodecs)? Those wheels compress with classic zlib,
and at 12 MP OpenCV's writer was the biggest cost after the model itself. zlib-ng's
level 1 is about three times quicker than zlib's, at the price of somewhat larger
files; the measured times and sizes are in ``benchmarks/RESULTS.md`` (issue 2). The container is the small part: signature, IHDR, one
IDAT, IEND, each chunk with its CRC.

Rows are filtered and compressed in strips of about 1 MB so the filtered bytes are
still in cache when zlib-ng reads them; both numpy and zlib-ng release the GIL, so
two threads encode two images in parallel.
"""

from __future__ import annotations

import struct
from collections.abc import Callable

import cv2
import numpy as np
from zlib_ng import zlib_ng

__all__ = ["encode_cutout_png", "encode_png"]

_Fill = Callable[[int, np.ndarray], None]

_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_COLOUR_TYPE = {1: 0, 3: 2, 4: 6}  # grey, RGB, RGBA
_TO_RGB = {3: cv2.COLOR_BGR2RGB, 4: cv2.COLOR_BGRA2RGBA}
_TO_RGBA = {3: cv2.COLOR_BGR2RGBA, 4: cv2.COLOR_BGRA2RGBA}
_FILTER_UP = 2
_STRIP_BYTES = 1 << 20


def encode_png(pixels: np.ndarray, *, level: int = 1) -> bytes:
    """Encode 8-bit grey, BGR or BGRA ``pixels`` (OpenCV channel order) as a PNG."""
    if pixels.dtype != np.uint8:
        raise ValueError(f"encode_png needs 8-bit pixels, not {pixels.dtype}")
    channels = 1 if pixels.ndim == 2 else pixels.shape[2]
    if channels not in _COLOUR_TYPE or pixels.ndim not in (2, 3):
        raise ValueError(f"encode_png needs grey, BGR or BGRA pixels, not shape {pixels.shape}")

    def fill(top: int, out: np.ndarray) -> None:
        block = pixels[top : top + len(out)]
        if channels == 1:
            out[:] = block
        else:
            _convert(block, _TO_RGB[channels], out)

    return _write(pixels.shape[1], pixels.shape[0], channels, fill, level)


def encode_cutout_png(colour: np.ndarray, alpha: np.ndarray, *, level: int = 1) -> bytes:
    """``encode_png(cutout(colour, alpha))`` without building the full-size BGRA image.

    The cutout is made strip by strip while the strip is in cache, which saves
    about a fifth of compositing plus encoding at 12 MP (83 vs 107 ms here).
    """
    if colour.dtype != np.uint8 or colour.ndim != 3 or colour.shape[2] not in (3, 4):
        raise ValueError(f"encode_cutout_png needs BGR or BGRA colour, not {colour.shape}")
    if alpha.dtype != np.uint8 or alpha.shape != colour.shape[:2]:
        raise ValueError(f"encode_cutout_png needs a uint8 alpha of shape {colour.shape[:2]}")
    to_rgba = _TO_RGBA[colour.shape[2]]

    def fill(top: int, out: np.ndarray) -> None:
        rows = slice(top, top + len(out))
        strip_alpha = alpha[rows]
        if colour.shape[2] == 4:  # a transparent source keeps its own transparency too
            strip_alpha = np.minimum(strip_alpha, colour[rows, :, 3])
        _convert(colour[rows], to_rgba, out)
        # Colour under fully transparent pixels is zeroed: it halves the file size.
        # (A threshold, not cv2.compare against 0: OpenCV takes a 1x1 array for a scalar.)
        opaque = cv2.threshold(strip_alpha, 0, 255, cv2.THRESH_BINARY)[1]
        cv2.bitwise_and(out, cv2.cvtColor(opaque, cv2.COLOR_GRAY2RGBA), dst=out)
        out[..., 3] = strip_alpha

    return _write(colour.shape[1], colour.shape[0], 4, fill, level)


def _write(width: int, height: int, channels: int, fill: _Fill, level: int) -> bytes:
    """The PNG whose rows ``fill(top, out)`` writes, RGB(A) order, into ``out`` strip by strip."""
    if not height or not width:
        raise ValueError("encode_png needs at least one pixel")
    row_bytes = width * channels
    rows_per_strip = min(height, max(1, _STRIP_BYTES // row_bytes))
    # Each filtered row is its filter-type byte followed by the row's bytes.
    strip = np.empty((rows_per_strip, row_bytes + 1), np.uint8)
    strip[:, 0] = _FILTER_UP
    # source[0] holds the row above the strip, the "Up" filter's reference; the PNG
    # spec takes the row above the first one as zeros, so every row can use "Up".
    source = np.zeros((rows_per_strip + 1, row_bytes), np.uint8)
    compressor = zlib_ng.compressobj(level)
    idat = []
    for top in range(0, height, rows_per_strip):
        count = min(rows_per_strip, height - top)
        rows = source[1 : count + 1]
        fill(top, rows if channels == 1 else rows.reshape(count, width, channels))
        np.subtract(rows, source[:count], out=strip[:count, 1:])
        idat.append(compressor.compress(strip[:count]))
        source[0] = source[count]
    idat.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, _COLOUR_TYPE[channels], 0, 0, 0)
    return b"".join(
        (_SIGNATURE, _chunk(b"IHDR", header), _chunk(b"IDAT", b"".join(idat)), _chunk(b"IEND", b""))
    )


def _convert(src: np.ndarray, code: int, out: np.ndarray) -> None:
    # OpenCV quietly allocates a new array when it cannot write into ``dst``.
    if cv2.cvtColor(src, code, dst=out) is not out:
        raise RuntimeError("OpenCV did not convert in place")


def _chunk(tag: bytes, data: bytes) -> bytes:
    crc = zlib_ng.crc32(data, zlib_ng.crc32(tag))
    return b"".join((struct.pack(">I", len(data)), tag, data, struct.pack(">I", crc)))
