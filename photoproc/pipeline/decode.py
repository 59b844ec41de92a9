"""Bytes → upright pixels, the first stage of the pipeline.

The format comes from the magic bytes, never from a file name. The common case (8-bit JPEG and
PNG) is one ``cv2.imdecode`` call, because it is the hot path and OpenCV decodes straight into the
BGR(A) array every later stage wants; everything else goes through Pillow (and pillow-heif for
HEIC) and is converted to BGR(A) once.

Before any pixel is decoded the header is read, so that the pixel limit is enforced without
allocating the image and so that truncated JPEG/PNG files are refused with a reason. (OpenCV
4.14 refuses truncated files without saying why; older releases, which pyproject allows,
fill the missing part of a JPEG with grey and say nothing.)

EXIF orientation is always applied here (and only here), from the tag as Pillow parses it, so a
full decode, a reduced decode and :func:`image_size` agree on what "upright" means. The pixels
carry no metadata, so the tag is dropped by construction.
"""

from __future__ import annotations

import importlib
import io
import math
import re
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import ImageTooLargeError, InvalidImageError, PhotoprocError

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

_NAMES = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WebP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "gif": "GIF",
    "heif": "HEIF",
}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_BMP_HEADER_SIZES = {12, 16, 40, 52, 56, 64, 108, 124}
_AVIF_BRANDS = (b"avif", b"avis")
_ORIENTATION_TAG = 0x0112
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
    if head.startswith(_PNG_SIGNATURE):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    # "BM" alone starts too many text files; the DIB header size pins it down.
    if head[:2] == b"BM" and len(head) >= 18 and _u32le(head, 14) in _BMP_HEADER_SIZES:
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
        return _jpeg_header(data, to_end=False).upright
    if fmt == "png":
        return _png_header(data).upright
    with _pillow_errors(fmt), _quiet_bomb_warning():
        return _pillow_upright_size(_pillow_open(data, fmt))


def decode(data: bytes, *, max_pixels: int = DEFAULT_MAX_PIXELS) -> DecodedImage:
    """Decode *data* to upright BGR, or BGRA when the source has alpha.

    Raises :class:`ImageTooLargeError` from the header alone when the image has more than
    *max_pixels* pixels, and :class:`InvalidImageError` (with the reason) for anything that
    is not a complete image in one of :data:`FORMATS`.
    """
    fmt = _require_format(data)
    if fmt == "jpeg":
        jpeg = _jpeg_header(data, to_end=True)
        _check_limit(jpeg.upright, max_pixels)
        if not jpeg.complete:
            raise InvalidImageError(f"truncated JPEG: {jpeg.problem}")
        if jpeg.opencv:
            pixels = _imdecode(data, jpeg.end, _CV_COLOR)
            if pixels is not None:
                return DecodedImage(_orient(pixels, jpeg.orientation), fmt)
    elif fmt == "png":
        png = _png_header(data)
        _check_limit(png.upright, max_pixels)
        if not png.complete:
            raise InvalidImageError(f"truncated PNG: {png.problem}")
        if png.opencv:
            pixels = _imdecode(data, png.end, _CV_UNCHANGED if png.alpha else _CV_COLOR)
            if pixels is None:
                # libpng refuses only broken image data (bad checksum, bad deflate stream);
                # Pillow would not check and would hand back garbage.
                raise InvalidImageError("corrupt PNG: the image data does not decode")
            return DecodedImage(_orient(_to_8bit(pixels), png.orientation), fmt)
    elif fmt == "webp" and len(data) < _u32le(data, 4) + 8:
        raise InvalidImageError(
            f"truncated WebP: the header says {_u32le(data, 4) + 8} bytes, there are {len(data)}"
        )
    # Everything else, and JPEGs OpenCV refused: Pillow either decodes it or says why.
    return DecodedImage(_decode_with_pillow(data, fmt, max_pixels), fmt)


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
        jpeg = _jpeg_header(data, to_end=True)
        _check_limit(jpeg.upright, max_pixels)
        if not jpeg.complete:
            raise InvalidImageError(f"truncated JPEG: {jpeg.problem}")
        scale, target = _target_size(jpeg.upright, max_side)
        stored_target = target[::-1] if jpeg.orientation >= 5 else target
        k = _jpeg_reduction(jpeg.width, jpeg.height, stored_target)
        if jpeg.opencv and k > 1:
            small = _imdecode(data, jpeg.end, _CV_REDUCED[k])
            if small is not None:
                # The reduced decode is ⌈W/k⌉ wide: its last column also covers the JPEG's
                # edge padding, so it spans k·⌈W/k⌉ source pixels, not W.
                span = (small.shape[1] * k, small.shape[0] * k)
                fitted = _fit_span(small, span, (jpeg.width, jpeg.height), stored_target)
                return _orient(fitted, jpeg.orientation), scale
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
        scale, target = _target_size((self.width, self.height), max_side)
        if scale == 1.0:
            return self.pixels.copy(), 1.0
        return _area_resize(self.pixels, target), scale


# --------------------------------------------------------------------------- headers


@dataclass(frozen=True)
class _Header:
    """What the pipeline needs to know before decoding; sizes as stored, before orientation."""

    width: int
    height: int
    orientation: int = 1
    #: OpenCV decodes this file correctly (else Pillow is used).
    opencv: bool = True
    #: decode with IMREAD_UNCHANGED to keep the alpha channel (PNG).
    alpha: bool = False
    #: offset just past the image's last byte (EOI / IEND); trailing data is ignored.
    end: int = 0
    #: every byte the image needs is present.
    complete: bool = True
    #: why it is not complete.
    problem: str = ""

    @property
    def upright(self) -> tuple[int, int]:
        return _upright((self.width, self.height), self.orientation)


_JPEG_SOF = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}
# The next marker after entropy-coded data: 0xFF not followed by a stuffed 0x00, a restart
# marker (which belongs to the scan) or another 0xFF (fill byte).
_JPEG_NEXT_MARKER = re.compile(rb"\xff[^\x00\xd0-\xd7\xff]")


def _jpeg_header(data: bytes, *, to_end: bool) -> _Header:
    """Walk the JPEG markers: frame size, EXIF orientation and (with *to_end*) the EOI.

    Segments are skipped by their length and scans by searching for the next marker, so an
    EXIF thumbnail's own EOI or a ZIP appended after the image cannot be mistaken for the end.
    Truncation after the frame header is reported in the result, so that the pixel limit
    can be checked first; before it there is no size, so it raises.
    """
    n = len(data)
    pos = 2
    frame: tuple[int, int, int] | None = None  # width, height, components
    orientation = 1
    problem = ""
    while True:
        if pos + 2 > n:
            problem = f"data ends at byte {n} before the end-of-image marker"
            break
        if data[pos] != 0xFF:
            # Stray bytes between segments: libjpeg skips them with a warning, so do we.
            pos = data.find(b"\xff", pos)
            if pos < 0:
                raise InvalidImageError("corrupt JPEG: no end-of-image marker after the header")
            continue
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte before a marker
            pos += 1
            continue
        pos += 2
        if marker == 0xD9:  # EOI
            break
        if 0xD0 <= marker <= 0xD7 or marker in (0x01, 0xD8):
            continue  # no length field
        if pos + 2 > n:
            problem = f"data ends at byte {n} inside a segment header"
            break
        end = pos + int.from_bytes(data[pos : pos + 2], "big")
        if end > n:
            problem = f"segment 0xFF{marker:02X} at byte {pos - 2} needs {end - n} more bytes"
            break
        if marker in _JPEG_SOF and frame is None and end - pos >= 8:
            height = int.from_bytes(data[pos + 3 : pos + 5], "big")
            width = int.from_bytes(data[pos + 5 : pos + 7], "big")
            frame = (width, height, data[pos + 7])
            if width == 0 or height == 0:
                raise InvalidImageError(f"unsupported JPEG: frame size {width}x{height}")
        elif marker == 0xE1 and orientation == 1 and data[pos + 2 : pos + 8] == b"Exif\x00\x00":
            orientation = _exif_orientation(data[pos + 2 : end])
        elif marker == 0xDA:  # SOS: entropy-coded data follows
            if frame is None:
                raise InvalidImageError("corrupt JPEG: scan before the frame header")
            if not to_end:
                break
            found = _JPEG_NEXT_MARKER.search(data, end)
            if found is None:
                problem = f"image data ends without an end-of-image marker ({n} bytes)"
                break
            pos = found.start()
            continue
        pos = end
    if frame is None:
        raise InvalidImageError(
            f"truncated JPEG: {problem}" if problem else "corrupt JPEG: no frame header"
        )
    width, height, components = frame
    # 4-component (CMYK/YCCK) JPEGs go to Pillow, which knows Adobe's inverted CMYK.
    return _Header(
        width,
        height,
        orientation,
        opencv=components in (1, 3),
        end=pos,
        complete=not problem,
        problem=problem,
    )


def _png_header(data: bytes) -> _Header:
    """Walk the PNG chunks (headers only): size, colour type, tRNS, eXIf and the IEND."""
    n = len(data)
    if n < 33 or data[12:16] != b"IHDR":
        raise InvalidImageError(f"truncated PNG: no image header ({n} bytes)")
    width, height = _u32be(data, 16), _u32be(data, 20)
    color_type = data[25]
    if width == 0 or height == 0:
        raise InvalidImageError(f"corrupt PNG: image size {width}x{height}")
    transparency = has_data = False
    orientation = 1
    pos = 8
    problem = ""
    while True:
        if pos + 8 > n:
            problem = f"no end chunk; data ends at byte {n}"
            break
        length, kind = _u32be(data, pos), data[pos + 4 : pos + 8]
        end = pos + 12 + length
        if end > n:
            problem = f"chunk {kind.decode('latin-1')!r} at byte {pos} needs {end - n} more bytes"
            break
        if kind == b"IEND":
            pos = end
            if not has_data:
                problem = "no image data before the end chunk"
            break
        if kind == b"IDAT":
            has_data = True
        elif kind == b"tRNS":
            transparency = True
        elif kind == b"eXIf":
            orientation = _exif_orientation(data[pos + 8 : end - 4])
        pos = end
    # OpenCV drops the tRNS of a grey PNG; Pillow keeps it.
    opencv = not (transparency and color_type == 0)
    alpha = color_type in (4, 6) or (transparency and color_type in (2, 3))
    return _Header(
        width, height, orientation, opencv, alpha, end=pos, complete=not problem, problem=problem
    )


def _exif_orientation(exif: bytes) -> int:
    """The orientation tag (1–8) of a raw EXIF block; 1 when absent or unreadable."""
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        return _valid_orientation(parsed.get(_ORIENTATION_TAG))
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1


# --------------------------------------------------------------------------- Pillow path


def _decode_with_pillow(data: bytes, fmt: str, max_pixels: int) -> np.ndarray:
    with _pillow_errors(fmt), _quiet_bomb_warning():
        image = _pillow_open(data, fmt)
        # The pixel count does not depend on orientation, so check before anything is decoded.
        _check_limit(image.size, max_pixels)
        try:
            image.load()
        except Image.DecompressionBombError:
            # Only reachable when max_pixels is above twice Pillow's own limit.
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            raise ImageTooLargeError(image.width, image.height, min(max_pixels, limit)) from None
        # Read after load: Pillow's TIFF plugin applies the tag itself while loading and drops
        # it; every other plugin leaves it for us.
        return _orient(_pillow_to_bgr(image), _pillow_orientation(image))


def _pillow_upright_size(image: Any) -> tuple[int, int]:
    """The upright size of an opened, not yet loaded, Pillow image."""
    tags = getattr(image, "tag_v2", None)
    if tags is not None and 256 in tags and 257 in tags:
        # TIFF: Pillow may already report the rotated size; the IFD holds the stored one.
        return _upright((int(tags[256]), int(tags[257])), _valid_orientation(tags.get(274)))
    return _upright(image.size, _pillow_orientation(image))


def _pillow_open(data: bytes, fmt: str) -> Any:
    """Open lazily (header only) with the plugin for *fmt*.

    The plugin class is used directly rather than ``Image.open``, which would apply Pillow's
    decompression-bomb check before we can apply ours and raise without telling the size.
    """
    errors: list[Exception] = []
    for plugin in _pillow_plugins(fmt, data):
        try:
            return plugin(io.BytesIO(data))
        except PhotoprocError:
            raise
        except Exception as exc:
            errors.append(exc)
    raise errors[0]


# Sniffed format → (PIL plugin module, image class), imported only when needed.
_PILLOW_PLUGINS = {
    "jpeg": ("JpegImagePlugin", "JpegImageFile"),
    "png": ("PngImagePlugin", "PngImageFile"),
    "webp": ("WebPImagePlugin", "WebPImageFile"),
    "bmp": ("BmpImagePlugin", "BmpImageFile"),
    "tiff": ("TiffImagePlugin", "TiffImageFile"),
    "gif": ("GifImagePlugin", "GifImageFile"),
}


def _pillow_plugins(fmt: str, data: bytes) -> list[Any]:
    if fmt in _PILLOW_PLUGINS:
        module, cls = _PILLOW_PLUGINS[fmt]
        return [getattr(importlib.import_module(f"PIL.{module}"), cls)]
    # HEIF: libheif here decodes HEVC only; AV1 (AVIF) goes to Pillow's own plugin.
    plugins = [_heif_module().HeifImageFile]
    try:
        from PIL import AvifImagePlugin
    except ImportError:  # Pillow built without libavif
        return plugins
    ftyp_end = min(len(data), max(16, _u32be(data, 0)))
    if any(brand in data[8:ftyp_end] for brand in _AVIF_BRANDS):
        plugins.insert(0, AvifImagePlugin.AvifImageFile)
    else:
        plugins.append(AvifImagePlugin.AvifImageFile)
    return plugins


_heif_lock = threading.Lock()
_heif_registered = False


def _heif_module() -> Any:
    """pillow-heif, with its Image.open opener registered once (so ``Image.open`` reads HEIC)."""
    global _heif_registered
    import pillow_heif

    if not _heif_registered:
        with _heif_lock:
            if not _heif_registered:
                pillow_heif.register_heif_opener()
                _heif_registered = True
    return pillow_heif


def _pillow_orientation(image: Any) -> int:
    try:
        return _valid_orientation(image.getexif().get(_ORIENTATION_TAG))
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1


def _valid_orientation(value: Any) -> int:
    try:
        number = int(value) if value is not None else 1
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 8 else 1


_PILLOW_ALPHA_MODES = {"RGBA", "RGBa", "LA", "La", "PA"}
_PILLOW_16BIT_MODES = {"I", "I;16", "I;16L", "I;16B", "I;16N"}


def _pillow_to_bgr(image: Any) -> np.ndarray:
    """One conversion from any Pillow mode to BGR / BGRA ``uint8``."""
    mode = image.mode
    if mode in _PILLOW_16BIT_MODES or mode == "F":
        values = np.asarray(image, dtype=np.float32)
        # Scale 16-bit to 8-bit rather than clip (Pillow's convert("L") clips at 255).
        full_scale = 65535.0 if mode != "F" else (1.0 if float(values.max()) <= 1.0 else 255.0)
        grey = np.clip(values * (255.0 / full_scale) + 0.5, 0, 255).astype(np.uint8)
        return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
    if mode in _PILLOW_ALPHA_MODES or "transparency" in image.info:
        return cv2.cvtColor(np.asarray(image.convert("RGBA")), cv2.COLOR_RGBA2BGRA)
    if mode in ("1", "L"):
        return cv2.cvtColor(np.asarray(image.convert("L")), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)


@contextmanager
def _pillow_errors(fmt: str) -> Iterator[None]:
    """Any failure of a decoder on this input means the input is not a usable image."""
    name = _NAMES[fmt]
    try:
        yield
    except PhotoprocError:
        raise
    except MemoryError:
        raise
    except Image.DecompressionBombError as exc:
        raise InvalidImageError(f"{name} refused by Pillow: {exc}") from exc
    except Exception as exc:
        reason = str(exc) or type(exc).__name__
        kind = "truncated" if "truncated" in reason or isinstance(exc, EOFError) else "corrupt"
        raise InvalidImageError(f"{kind} {name}: {reason}") from exc


@contextmanager
def _quiet_bomb_warning() -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning: our own limit is checked first.

    Pillow warns between 1× and 2× its ``MAX_IMAGE_PIXELS`` (which only happens when the
    caller's limit is above Pillow's) and, for GIF, while opening. ``catch_warnings`` is
    process-wide before Python 3.14, so it is kept to this fallback path, off the JPEG/PNG
    hot path.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield


# --------------------------------------------------------------------------- pixels


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


def _orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
    """Apply EXIF orientation 1–8, as Pillow's ``ImageOps.exif_transpose`` does."""
    if orientation == 2:
        return cv2.flip(pixels, 1)
    if orientation == 3:
        return cv2.rotate(pixels, cv2.ROTATE_180)
    if orientation == 4:
        return cv2.flip(pixels, 0)
    if orientation == 5:
        return cv2.transpose(pixels)
    if orientation == 6:
        return cv2.rotate(pixels, cv2.ROTATE_90_CLOCKWISE)
    if orientation == 7:
        return cv2.flip(cv2.transpose(pixels), -1)
    if orientation == 8:
        return cv2.rotate(pixels, cv2.ROTATE_90_COUNTERCLOCKWISE)
    return pixels


def _target_size(size: tuple[int, int], max_side: int) -> tuple[float, tuple[int, int]]:
    width, height = size
    longest = max(width, height)
    if longest <= max_side:
        return 1.0, (width, height)
    scale = max_side / longest
    return scale, (max(1, round(width * scale)), max(1, round(height * scale)))


def _area_resize(pixels: np.ndarray, target: tuple[int, int]) -> np.ndarray:
    """``INTER_AREA`` down to *target*, with an integer-factor first pass when it pays.

    OpenCV's area resize has a fast path for whole-number factors (≈3× quicker at 12 MP), so
    shrink by the largest factor k that divides both sides and keeps the image above the
    target, then finish with a small general pass. When no such k exists, pad the edge to a
    multiple of k (replicating it, as a JPEG encoder does) and crop the padding afterwards.
    """
    height, width = pixels.shape[:2]
    tw, th = target
    k_max = min(width // tw, height // th)
    if k_max < 2:
        return cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
    common = math.gcd(width, height)
    k = next((d for d in range(k_max, 1, -1) if common % d == 0), 0)
    if k:
        pixels = cv2.resize(pixels, (width // k, height // k), interpolation=cv2.INTER_AREA)
        return cv2.resize(pixels, target, interpolation=cv2.INTER_AREA)
    k = k_max
    pad_w, pad_h = -width % k, -height % k
    padded = cv2.copyMakeBorder(pixels, 0, pad_h, 0, pad_w, cv2.BORDER_REPLICATE)
    span = (width + pad_w, height + pad_h)
    small = cv2.resize(padded, (span[0] // k, span[1] // k), interpolation=cv2.INTER_AREA)
    return _fit_span(small, span, (width, height), target)


def _fit_span(
    small: np.ndarray,
    span: tuple[int, int],
    size: tuple[int, int],
    target: tuple[int, int],
) -> np.ndarray:
    """Resize *small*, which shows *span* source pixels of which the first *size* are the
    image (the rest edge padding), so that the image becomes *target*; crop the padding."""
    (span_w, span_h), (width, height), (tw, th) = span, size, target
    padded_target = (max(tw, round(span_w * tw / width)), max(th, round(span_h * th / height)))
    if padded_target == (small.shape[1], small.shape[0]):
        resized = small
    else:
        resized = cv2.resize(small, padded_target, interpolation=cv2.INTER_AREA)
    return np.ascontiguousarray(resized[:th, :tw])


def _jpeg_reduction(width: int, height: int, target: tuple[int, int]) -> int:
    """The largest libjpeg scale 1/k (k = 8, 4, 2) whose output is still at least *target*."""
    for k in (8, 4, 2):
        if -(-width // k) >= target[0] and -(-height // k) >= target[1]:
            return k
    return 1


# --------------------------------------------------------------------------- small helpers


def _require_format(data: bytes) -> str:
    if not data:
        raise InvalidImageError("empty file (0 bytes)")
    fmt = sniff_format(data)
    if fmt is None:
        raise InvalidImageError(
            "not a recognised image format (expected JPEG, PNG, WebP, BMP, TIFF, GIF or HEIC)"
        )
    return fmt


def _check_limit(size: tuple[int, int], max_pixels: int) -> None:
    width, height = size
    if width * height > max_pixels:
        raise ImageTooLargeError(width, height, max_pixels)


def _check_side(max_side: int) -> None:
    if int(max_side) < 1:
        raise ValueError(f"max_side must be at least 1, not {max_side!r}")


def _upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation >= 5 else (size[0], size[1])


def _u32be(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "big")


def _u32le(data: bytes, pos: int) -> int:
    return int.from_bytes(data[pos : pos + 4], "little")
