"""Bytes → upright pixels, the first stage of the pipeline.

The format comes from the magic bytes, never from a file name. The common case (8-bit JPEG and
PNG) is one ``cv2.imdecode`` call, because it is the hot path and OpenCV decodes straight into the
BGR(A) array every later stage wants; everything else goes through Pillow (and pillow-heif for
HEIC) and is converted to BGR(A) once (``pillow_decode.py``).

Before any pixel is decoded the header is read (``headers.py``), so that the pixel limit is
enforced without allocating the image and so that truncated JPEG/PNG files are refused with a
reason. (OpenCV 4.14 refuses truncated files without saying why; older releases, which
pyproject allows, fill the missing part of a JPEG with grey and say nothing.)

EXIF orientation is always applied here (and only here), from the tag as Pillow parses it, so a
full decode, a reduced decode and :func:`image_size` agree on what "upright" means. The pixels
carry no metadata, so the tag is dropped by construction.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from ..errors import InvalidImageError
from .headers import PNG_SIGNATURE, Header, check_limit, jpeg_header, png_header, u32le
from .orientation import orient
from .pillow_decode import (
    decode_with_pillow,
    pillow_errors,
    pillow_open,
    pillow_upright_size,
    quiet_bomb_warning,
)
from .shrink import area_resize, fit_span, jpeg_reduction, target_size

__all__ = [
    "DEFAULT_MAX_PIXELS",
    "FORMATS",
    "DecodedImage",
    "decode",
    "decode_reduced",
    "image_size",
    "sniff_format",
]

#: Above this an image is refused before decoding (80 MP ≈ 240 MB as BGR, 320 MB as BGRA).
DEFAULT_MAX_PIXELS = 80_000_000

#: Every name :func:`sniff_format` can return.
FORMATS = ("jpeg", "png", "webp", "bmp", "tiff", "gif", "heif")

_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
# OpenCV applies EXIF orientation itself unless told not to; we apply it ourselves (see above).
_CV_COLOR = cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
_CV_UNCHANGED = cv2.IMREAD_UNCHANGED | cv2.IMREAD_IGNORE_ORIENTATION
_CV_REDUCED = {
    2: cv2.IMREAD_REDUCED_COLOR_2 | cv2.IMREAD_IGNORE_ORIENTATION,
    4: cv2.IMREAD_REDUCED_COLOR_4 | cv2.IMREAD_IGNORE_ORIENTATION,
    8: cv2.IMREAD_REDUCED_COLOR_8 | cv2.IMREAD_IGNORE_ORIENTATION,
}


# --------------------------------------------------------------------------- public API


def sniff_format(data: bytes) -> str | None:
    """The image format named by the magic bytes (one of :data:`FORMATS`), else ``None``."""
    head = bytes(data[:32])
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(PNG_SIGNATURE):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    # "BM" alone starts too many text files; the DIB header size pins it down.
    if head[:2] == b"BM" and len(head) >= 18 and u32le(head, 14) in _BMP_HEADER_SIZES:
        return "bmp"
    if head[4:8] == b"ftyp" and len(head) >= 12:
        from pillow_heif import get_file_mimetype  # only ISO-BMFF files need it

        if get_file_mimetype(head):
            return "heif"
    return None


def image_size(data: bytes) -> tuple[int, int]:
    """``(width, height)`` of the upright image, read from the header without decoding pixels."""
    fmt = _require_format(data)
    if fmt == "jpeg":
        return jpeg_header(data, to_end=False).upright
    if fmt == "png":
        return png_header(data).upright
    with pillow_errors(fmt), quiet_bomb_warning():
        return pillow_upright_size(pillow_open(data, fmt))


def decode(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode *data* to upright BGR, or BGRA when the source has alpha.

    Raises :class:`ImageTooLargeError` from the header alone when the image has more than
    *max_pixels* pixels, and :class:`InvalidImageError` (with the reason) for anything that
    is not a complete image in one of :data:`FORMATS`.
    """
    fmt = _require_format(data)
    if fmt == "jpeg":
        jpeg = _whole_jpeg(data, max_pixels)
        if jpeg.opencv:
            pixels = _imdecode(data, jpeg.end, _CV_COLOR)
            if pixels is not None:
                return DecodedImage(orient(pixels, jpeg.orientation), fmt)
    elif fmt == "png":
        png = png_header(data)
        check_limit(png.upright, max_pixels)
        if not png.complete:
            raise InvalidImageError(f"truncated PNG: {png.problem}")
        if png.opencv:
            pixels = _imdecode(data, png.end, _CV_UNCHANGED if png.alpha else _CV_COLOR)
            if pixels is None:
                # libpng refuses only broken image data (bad checksum, bad deflate stream);
                # Pillow would not check and would hand back garbage.
                raise InvalidImageError("corrupt PNG: the image data does not decode")
            return DecodedImage(orient(_to_8bit(pixels), png.orientation), fmt)
    elif fmt == "webp" and len(data) < u32le(data, 4) + 8:
        raise InvalidImageError(
            f"truncated WebP: the header says {u32le(data, 4) + 8} bytes, there are {len(data)}"
        )
    # Everything else, and JPEGs OpenCV refused: Pillow either decodes it or says why.
    return DecodedImage(decode_with_pillow(data, fmt, max_pixels), fmt)


def decode_reduced(
    data: bytes, max_side: int, *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> tuple[np.ndarray, float]:
    """Like ``decode(data).reduced(max_side)``, without the full-size pixels where possible.

    For a JPEG, libjpeg decodes at 1/2, 1/4 or 1/8 scale, skipping most of the IDCT but not
    the entropy decoding: a 3 MB 12 MP JPEG to 320 px took 30 ms against 70 ms for a full
    decode. That is still slower than shrinking pixels already decoded (10–15 ms), so use this
    only when the full-size pixels are not needed (thumbnails, previews, mask-only output).
    """
    _check_side(max_side)
    fmt = _require_format(data)
    if fmt == "jpeg":
        jpeg = _whole_jpeg(data, max_pixels)
        scale, target = target_size(jpeg.upright, max_side)
        stored_target = target[::-1] if jpeg.orientation >= 5 else target
        k = jpeg_reduction(jpeg.width, jpeg.height, stored_target)
        if jpeg.opencv and k > 1:
            small = _imdecode(data, jpeg.end, _CV_REDUCED[k])
            if small is not None:
                # The reduced decode is ⌈W/k⌉ wide: its last column also covers the JPEG's
                # edge padding, so it spans k·⌈W/k⌉ source pixels, not W.
                span = (small.shape[1] * k, small.shape[0] * k)
                fitted = fit_span(small, span, (jpeg.width, jpeg.height), stored_target)
                return orient(fitted, jpeg.orientation), scale
    return decode(data, max_pixels=max_pixels).reduced(max_side)


@dataclass
class DecodedImage:
    """Upright pixels and the format they were decoded from."""

    #: ``(H, W, 3)`` BGR ``uint8``, or ``(H, W, 4)`` BGRA when the source has alpha.
    pixels: np.ndarray
    #: the sniffed format, one of :data:`FORMATS`.
    format: str

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def has_alpha(self) -> bool:
        return self.pixels.ndim == 3 and self.pixels.shape[2] == 4

    def reduced(self, max_side: int) -> tuple[np.ndarray, float]:
        """A copy whose longest side is at most *max_side* (never upscaled), and reduced/full.

        The scale is exact for the longest side; the other side is rounded to whole pixels.
        Shrinking the decoded pixels, with an integer-factor ``INTER_AREA`` pass first,
        measured cheaper than decoding the JPEG again at 1/k (12 MP, 3 MB, one thread: 15 ms to
        640 px and 10 ms to 320 px, against 30–50 ms), so every format takes this path;
        :func:`decode_reduced` is for when no full decode is wanted.
        """
        _check_side(max_side)
        scale, target = target_size((self.width, self.height), max_side)
        if scale == 1.0:
            return self.pixels.copy(), 1.0
        return area_resize(self.pixels, target), scale


# --------------------------------------------------------------------------- helpers


def _imdecode(data: bytes, end: int, flags: int) -> np.ndarray | None:
    # Only the image's own bytes: a ZIP appended to a JPEG is not OpenCV's business.
    buffer = np.frombuffer(data, dtype=np.uint8, count=end or len(data))
    pixels = cv2.imdecode(buffer, flags)
    if pixels is None or pixels.size == 0:
        return None
    return pixels


def _to_8bit(pixels: np.ndarray) -> np.ndarray:
    """BGR/BGRA ``uint8`` from what ``IMREAD_UNCHANGED`` gives (16-bit scaled, grey expanded)."""
    if pixels.dtype == np.uint16:
        pixels = cv2.convertScaleAbs(pixels, alpha=255.0 / 65535.0)
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 1:
        return cv2.cvtColor(pixels[:, :, 0], cv2.COLOR_GRAY2BGR)
    return pixels


def _whole_jpeg(data: bytes, max_pixels: int) -> Header:
    """The JPEG's header, checked against the pixel limit first, then for missing bytes."""
    jpeg = jpeg_header(data, to_end=True)
    check_limit(jpeg.upright, max_pixels)
    if not jpeg.complete:
        raise InvalidImageError(f"truncated JPEG: {jpeg.problem}")
    return jpeg


def _require_format(data: bytes) -> str:
    if not data:
        raise InvalidImageError("empty file (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImageError(
            "not a recognised image format (expected JPEG, PNG, WebP, BMP, TIFF, GIF or HEIC)"
        )
    return fmt


def _check_side(max_side: int) -> None:
    if int(max_side) < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side!r}")
