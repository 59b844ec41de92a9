"""Small previews of originals and results for the gallery, as ``data:`` URLs.

The widgets send images to the browser inside HTML (one ``<img src="data:…">``
per picture), so a page of the gallery is one message per pair and needs no
file route. Originals become JPEG (small, no alpha); results stay PNG so their
transparency shows over the checkerboard the gallery draws behind them.
Decoding reuses the pipeline's reduced JPEG decode: a 12 MP original becomes a
240 px preview without decoding 12 MP.
"""

from __future__ import annotations

import base64
import threading
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

from ..errors import PhotoprocError
from ..pipeline.decode import decode_reduced

__all__ = ["CHECKERBOARD_CSS", "ThumbnailCache", "data_url", "thumbnail"]

#: CSS that draws a grey/white checkerboard behind an element (transparency made visible).
CHECKERBOARD_CSS = (
    "background-color:#fff;"
    "background-image:repeating-conic-gradient(#d0d0d0 0% 25%, transparent 0% 50%);"
    "background-size:16px 16px;"
)


def data_url(data: bytes, media_type: str) -> str:
    return f"data:{media_type};base64,{base64.b64encode(data).decode('ascii')}"


def thumbnail(data: bytes, max_side: int) -> tuple[bytes, str]:
    """``(encoded preview, media type)`` whose longest side is at most ``max_side``.

    Images with alpha stay PNG (the point of a cutout is its transparency);
    everything else becomes a JPEG.
    """
    pixels, _ = decode_reduced(data, max_side)
    if pixels.ndim == 2:
        pixels = cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.shape[2] == 4:
        ok, buf = cv2.imencode(".png", np.ascontiguousarray(pixels))
        media = "image/png"
    else:
        ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 82])
        media = "image/jpeg"
    if not ok:  # pragma: no cover - OpenCV encodes any uint8 array
        raise RuntimeError("could not encode a thumbnail")
    return buf.tobytes(), media


class ThumbnailCache:
    """``path, side → data URL``, bounded (least recently used goes first), thread-safe.

    Keyed by path, size on disk and modification time, so a result that is
    rewritten (an item retried) gets a fresh preview.
    """

    def __init__(self, capacity: int = 256) -> None:
        self.capacity = capacity
        self._entries: OrderedDict[tuple, str] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, path: Path, max_side: int) -> str:
        """The preview of the image file at ``path`` as a data URL.

        Raises :class:`OSError` when the file cannot be read and
        :class:`~photoproc.errors.PhotoprocError` when it is not an image.
        """
        stat = path.stat()
        key = (str(path), stat.st_size, stat.st_mtime_ns, max_side)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        url = data_url(*thumbnail(path.read_bytes(), max_side))
        with self._lock:
            self._entries[key] = url
            while len(self._entries) > self.capacity:
                self._entries.popitem(last=False)
        return url

    def get_or(self, path: Path, max_side: int, fallback: Callable[[Exception], str]) -> str:
        """Like :meth:`get`, but a missing or unreadable file gives ``fallback(exc)``."""
        try:
            return self.get(path, max_side)
        except (OSError, PhotoprocError) as exc:
            return fallback(exc)

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
