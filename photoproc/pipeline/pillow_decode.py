"""The Pillow path of decode: every format OpenCV does not take (WebP, BMP, TIFF, GIF,
HEIC/AVIF, CMYK JPEG, grey PNG with tRNS), converted to BGR(A) once."""

from __future__ import annotations

import importlib
import io
import threading
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import cv2
import numpy as np
from PIL import Image

from ..errors import ImageTooLargeError, InvalidImageError, PhotoprocError
from .headers import check_limit, u32be
from .orientation import ORIENTATION_TAG, orient, upright, valid_orientation

__all__ = [
    "decode_with_pillow",
    "pillow_errors",
    "pillow_open",
    "pillow_upright_size",
    "quiet_bomb_warning",
]

_NAMES = {
    "jpeg": "JPEG",
    "png": "PNG",
    "webp": "WebP",
    "bmp": "BMP",
    "tiff": "TIFF",
    "gif": "GIF",
    "heif": "HEIF",
}
_AVIF_BRANDS = (b"avif", b"avis")


def decode_with_pillow(data: bytes, fmt: str, max_pixels: int) -> np.ndarray:
    with pillow_errors(fmt), quiet_bomb_warning():
        image = pillow_open(data, fmt)
        # The pixel count does not depend on orientation, so check before anything is decoded.
        check_limit(image.size, max_pixels)
        try:
            image.load()
        except Image.DecompressionBombError:
            # Only reachable when max_pixels is above twice Pillow's own limit.
            limit = 2 * (Image.MAX_IMAGE_PIXELS or 0)
            raise ImageTooLargeError(image.width, image.height, min(max_pixels, limit)) from None
        # Read after load: Pillow's TIFF plugin applies the tag itself while loading and drops
        # it; every other plugin leaves it for us.
        return orient(_pillow_to_bgr(image), _pillow_orientation(image))


def pillow_upright_size(image: Any) -> tuple[int, int]:
    """The upright size of an opened, not yet loaded, Pillow image."""
    tags = getattr(image, "tag_v2", None)
    if tags is not None and 256 in tags and 257 in tags:
        # TIFF: Pillow may already report the rotated size; the IFD holds the stored one.
        return upright((int(tags[256]), int(tags[257])), valid_orientation(tags.get(274)))
    return upright(image.size, _pillow_orientation(image))


def pillow_open(data: bytes, fmt: str) -> Any:
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
    ftyp_end = min(len(data), max(16, u32be(data, 0)))
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
        return valid_orientation(image.getexif().get(ORIENTATION_TAG))
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1


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
        bgr: np.ndarray = cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)
        return bgr
    if mode in _PILLOW_ALPHA_MODES or "transparency" in image.info:
        return cv2.cvtColor(np.asarray(image.convert("RGBA")), cv2.COLOR_RGBA2BGRA)
    if mode in ("1", "L"):
        return cv2.cvtColor(np.asarray(image.convert("L")), cv2.COLOR_GRAY2BGR)
    return cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2BGR)


@contextmanager
def pillow_errors(fmt: str) -> Iterator[None]:
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
def quiet_bomb_warning() -> Iterator[None]:
    """Silence Pillow's DecompressionBombWarning: our own limit is checked first.

    Pillow warns between 1× and 2× its ``MAX_IMAGE_PIXELS`` (which only happens when the
    caller's limit is above Pillow's) and, for GIF, while opening. ``catch_warnings`` is
    process-wide before Python 3.14, so it is kept to this fallback path, off the JPEG/PNG
    hot path.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        yield
