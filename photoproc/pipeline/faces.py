"""Face detection and the geometry of face crops.

Two detectors, both from OpenCV:

* **YuNet** (``cv2.FaceDetectorYN``): more accurate (it also finds the drawn face in the
  shared anime photo, which Haar misses), ~60 ms on a 12 MP photo; needs a 230 KB ONNX file
  (found, cached or downloaded by :func:`yunet_path`).
* **Haar** (``haarcascade_frontalface_default.xml``): ships inside opencv-python, so it
  always works offline; frontal faces only, prone to false faces.

Both run on a copy whose longest side is at most ``max_side`` (640): Haar on full-size
photos took 0.6-2.2 s and found faces in textures, the 640 px copy ~0.13 s and was clean.
Boxes are mapped back to full-image coordinates.

The crop helpers never shift a box to keep it inside the image: the face stays where the
caller asked for it and the part of the box outside the image is padding
(:func:`crop_padded` says which pixels are real).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from ..errors import InvalidOptionsError, ModelNotAvailableError
from .models import models_home, offline_mode
from .types import Face

__all__ = [
    "DETECTORS",
    "YUNET_FILENAME",
    "YUNET_SHA256",
    "YUNET_URL",
    "crop_box",
    "crop_padded",
    "detect_faces",
    "resize_to",
    "yunet_cache_path",
    "yunet_path",
]

log = logging.getLogger(__name__)

DETECTORS = ("auto", "yunet", "haar")

# The 2026may release (229,738 bytes), not 2023mar (232,589 bytes, sha256 8f2383e4…): it is
# the file in ../shared/models that the tests exercise. It still finds a face that fills a
# 640 px frame (a 400x525 px astronaut face, measured).
YUNET_FILENAME = "face_detection_yunet_2026may.onnx"
YUNET_URL = (
    "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/" + YUNET_FILENAME
)
YUNET_SHA256 = "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"

#: seconds a download may take before we give up and fall back to Haar.
DOWNLOAD_TIMEOUT = 5.0
#: after a failed download, further images use Haar without retrying for this long.
_RETRY_AFTER = 300.0

# Measured on the shared photos and skimage.data: real faces score 0.89-0.96 (an anime
# face 0.75), the best non-face 0.62 (a motorbike); 0.7 sits between.
_YUNET_SCORE = 0.7
_YUNET_NMS = 0.3
# Tuned on the shared photos: minNeighbors 5 also finds a "face" in a T-shirt print and two
# in a dress; equalising the grey image loses a face in sunglasses; 8 keeps only real faces.
_HAAR_MIN_NEIGHBORS = 8
_HAAR_SCALE = 1.1
_HAAR_MIN_FRACTION = 0.04  # of the detection copy's longest side

# Where the face sits in a crop: the margin is kept on every side, and of the height the
# aspect ratio adds beyond that, this share goes above the face and the rest below. Below
# one half lifts the face above centre, as portraits do, leaving room for neck and shoulders.
FACE_HEADROOM = 0.4

_local = threading.local()
_download_lock = threading.Lock()
_download_failed_at: float | None = None


def yunet_cache_path() -> Path:
    """Where a downloaded YuNet file is kept."""
    return models_home() / "yunet" / YUNET_FILENAME


def yunet_path(configured: str | Path | None = None, *, download: bool = True) -> Path | None:
    """The YuNet ONNX file to use, or ``None`` when there is none (callers fall back to Haar).

    Looks at ``configured``, then ``$PHOTOPROC_YUNET_PATH``, then the cached copy; only then,
    if ``download`` and not ``PHOTOPROC_OFFLINE=1``, fetches it with pooch (sha256-pinned,
    short timeout). A failed download is remembered for a few minutes so that a batch
    without network does not wait for the timeout on every image.
    """
    global _download_failed_at
    for candidate in (configured, os.environ.get("PHOTOPROC_YUNET_PATH")):
        if candidate:
            path = Path(candidate).expanduser()
            if path.is_file():
                return path
            log.warning("YuNet file %s not found; looking for the cached copy", path)
    cached = yunet_cache_path()
    if cached.is_file():
        return cached
    if not download or offline_mode():
        return None
    with _download_lock:
        if cached.is_file():  # another thread fetched it while we waited
            return cached
        if (
            _download_failed_at is not None
            and time.monotonic() - _download_failed_at < _RETRY_AFTER
        ):
            return None
        try:
            import pooch

            fetched = pooch.retrieve(
                YUNET_URL,
                known_hash=f"sha256:{YUNET_SHA256}",
                fname=YUNET_FILENAME,
                path=cached.parent,
                downloader=pooch.HTTPDownloader(timeout=DOWNLOAD_TIMEOUT, progressbar=False),
            )
        except Exception as exc:  # network, HTTP, hash or disk: all mean "use Haar"
            _download_failed_at = time.monotonic()
            log.warning("could not download YuNet (%s); using the Haar detector", exc)
            return None
        _download_failed_at = None
        return Path(fetched)


def _not_available(reason: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        "yunet",
        f"YuNet face detector unavailable: {reason}. Set PHOTOPROC_YUNET_PATH (or the "
        f"yunet_path option) to {YUNET_FILENAME}, put it at {yunet_cache_path()}, allow the "
        "download (unset PHOTOPROC_OFFLINE), or use face_detector='haar'.",
    )


def _detector(kind: str, key: str = "") -> Any:
    """This thread's detector: cv2 detectors keep per-call state and are not thread-safe."""
    cache: dict[tuple[str, str], Any] = _local.__dict__.setdefault("detectors", {})
    detector = cache.get((kind, key))
    if detector is None:
        if kind == "haar":
            detector = cv2.CascadeClassifier(
                cv2.data.haarcascades  # type: ignore[attr-defined]  # not in OpenCV's stubs
                + "haarcascade_frontalface_default.xml"
            )
            if detector.empty():
                raise RuntimeError("OpenCV's Haar cascade file is missing (opencv-python 5.x?)")
        else:
            # The input size is set again before every detect.
            detector = cv2.FaceDetectorYN.create(key, "", (320, 320), _YUNET_SCORE, _YUNET_NMS)
        cache[(kind, key)] = detector
    return detector


def _detect_yunet(small: np.ndarray, model: Path) -> list[tuple[float, float, float, float, float]]:
    try:
        detector = _detector("yunet", str(model))
    except cv2.error as exc:
        raise _not_available(f"{model} is not a YuNet model ({str(exc).strip()[-120:]})") from exc
    detector.setInputSize((small.shape[1], small.shape[0]))
    _, found = detector.detect(small)
    if found is None:
        return []
    # Rows: x, y, w, h, five landmarks (x, y), score.
    return [(f[0], f[1], f[2], f[3], float(f[14])) for f in found]


def _detect_haar(small: np.ndarray) -> list[tuple[float, float, float, float, float]]:
    grey = cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    min_side = max(24, round(_HAAR_MIN_FRACTION * max(grey.shape)))
    boxes = _detector("haar").detectMultiScale(
        grey,
        scaleFactor=_HAAR_SCALE,
        minNeighbors=_HAAR_MIN_NEIGHBORS,
        minSize=(min_side, min_side),
    )
    # Haar gives no calibrated confidence; every kept box counts as sure.
    return [(x, y, w, h, 1.0) for x, y, w, h in boxes]


def _as_bgr(pixels: np.ndarray) -> np.ndarray:
    if pixels.ndim == 2:
        return cv2.cvtColor(pixels, cv2.COLOR_GRAY2BGR)
    if pixels.ndim == 3 and pixels.shape[2] == 4:
        return np.ascontiguousarray(pixels[:, :, :3])
    if pixels.ndim == 3 and pixels.shape[2] == 3:
        return pixels
    raise ValueError(f"expected (H,W), (H,W,3) or (H,W,4) pixels, got shape {pixels.shape}")


def detect_faces(
    bgr: np.ndarray,
    *,
    detector: str = "auto",
    yunet_model: str | Path | None = None,
    max_side: int = 640,
) -> list[Face]:
    """Faces in a BGR (or BGRA, or grey) image, largest first, in full-image coordinates.

    ``detector``: ``"auto"`` uses YuNet when its file is available (see :func:`yunet_path`)
    and Haar otherwise; ``"yunet"`` raises :class:`ModelNotAvailableError` instead of
    falling back; ``"haar"`` never needs a file.
    """
    if detector not in DETECTORS:
        raise InvalidOptionsError(
            "face_detector", f"{detector!r} is not one of {', '.join(DETECTORS)}"
        )
    image = _as_bgr(bgr)
    height, width = image.shape[:2]
    if height == 0 or width == 0:
        return []
    scale = min(1.0, max_side / max(height, width))
    if scale < 1.0:
        size = (max(1, round(width * scale)), max(1, round(height * scale)))
        small = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    else:
        small = image

    model = None if detector == "haar" else yunet_path(yunet_model)
    if detector == "yunet" and model is None:
        raise _not_available("no model file found" + (" (offline)" if offline_mode() else ""))
    raw: list[tuple[float, float, float, float, float]] | None = None
    if model is not None:
        try:
            raw = _detect_yunet(small, model)
        except ModelNotAvailableError:
            if detector == "yunet":
                raise
            log.warning("YuNet file %s could not be loaded; using the Haar detector", model)
    if raw is None:
        raw = _detect_haar(small)

    # Exact ratios per axis: the copy's sides were rounded separately.
    sx, sy = width / small.shape[1], height / small.shape[0]
    faces = []
    for x, y, w, h, score in raw:
        # Clip to the image: YuNet boxes of faces at the edge reach a little outside.
        x0, y0 = max(0, round(x * sx)), max(0, round(y * sy))
        x1, y1 = min(width, round((x + w) * sx)), min(height, round((y + h) * sy))
        if x1 > x0 and y1 > y0:
            faces.append(Face(x0, y0, x1 - x0, y1 - y0, round(score, 4)))
    faces.sort(key=lambda f: f.area, reverse=True)
    return faces


def crop_box(
    face: Face, image_w: int, image_h: int, *, margin: float, aspect_ratio: float | None
) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)`` of the crop around ``face``; may reach outside the image.

    The face box grows by ``margin`` × its size on every side, then the shorter dimension
    grows to ``aspect_ratio`` (width / height; ``None`` keeps the grown box). The crop is
    centred on the face horizontally; of the height added for the aspect ratio,
    :data:`FACE_HEADROOM` (40 %) goes above the face, so a tall crop puts the face a little
    above centre and shows the neck and shoulders. Near an edge the box is
    not shifted inward (that would put the face off-centre): the caller pads instead.
    ``image_w`` and ``image_h`` are accepted for callers' symmetry and future clamping.
    """
    if margin < 0:
        raise InvalidOptionsError("face_margin", f"{margin} is negative")
    if aspect_ratio is not None and not aspect_ratio > 0:
        raise InvalidOptionsError("aspect", f"ratio {aspect_ratio} is not positive")
    grown_w = face.w * (1 + 2 * margin)
    grown_h = face.h * (1 + 2 * margin)
    width, height = grown_w, grown_h
    if aspect_ratio is not None:
        if width / height < aspect_ratio:
            width = height * aspect_ratio
        else:
            height = width / aspect_ratio
    out_h = max(1, round(height))
    # Derive the width from the rounded height so the integer box keeps the ratio best.
    if aspect_ratio is not None:
        out_w = max(1, round(out_h * aspect_ratio))
    else:
        out_w = max(1, round(width))
    x0 = round(face.x + face.w / 2 - out_w / 2)
    y0 = round(face.y - margin * face.h - (out_h - grown_h) * FACE_HEADROOM)
    return x0, y0, x0 + out_w, y0 + out_h


def crop_padded(
    pixels: np.ndarray, box: tuple[int, int, int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """The pixels inside ``box``, zero-filled where it leaves the image, and a mask of which
    are real (255) and which are padding (0) — the caller makes padding transparent or
    paints the background colour, depending on the output format."""
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        raise ValueError(f"empty crop box {box}")
    height, width = pixels.shape[:2]
    crop = np.zeros((y1 - y0, x1 - x0, *pixels.shape[2:]), dtype=pixels.dtype)
    inside = np.zeros((y1 - y0, x1 - x0), dtype=np.uint8)
    sx0, sy0, sx1, sy1 = max(x0, 0), max(y0, 0), min(x1, width), min(y1, height)
    if sx1 > sx0 and sy1 > sy0:
        crop[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = pixels[sy0:sy1, sx0:sx1]
        inside[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = 255
    return crop, inside


def resize_to(pixels: np.ndarray, output_size: int | None) -> np.ndarray:
    """Scale so the longest side is ``output_size`` (``None``: unchanged).

    INTER_AREA when shrinking (no aliasing), INTER_CUBIC when enlarging (sharper than
    linear; uint8 saturates its overshoot).
    """
    if output_size is None:
        return pixels
    if output_size < 1:
        raise InvalidOptionsError("output_size", f"{output_size} is not positive")
    height, width = pixels.shape[:2]
    longest = max(height, width)
    if longest == output_size or longest == 0:
        return pixels
    scale = output_size / longest
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    return cv2.resize(pixels, size, interpolation=interpolation)
