"""Sample photos that work offline: scikit-image's bundled images (installed with rembg).

Used by ``make run``, the notebooks and the tests, so a fresh clone without
network or ``../shared`` still has real photos to process: a portrait with a
face (astronaut), a cat, a coffee cup and a rocket.
"""

from __future__ import annotations

from pathlib import Path

import cv2

from .fsutil import write_atomic

__all__ = ["SAMPLE_NAMES", "sample_bytes", "write_samples"]

SAMPLE_NAMES = ("astronaut", "chelsea", "coffee", "rocket")


def sample_bytes(name: str, *, fmt: str = ".jpg", scale: float = 1.0) -> bytes:
    """One sample photo encoded as ``fmt`` (``.jpg`` / ``.png``), optionally rescaled."""
    import skimage.data

    if name not in SAMPLE_NAMES:
        raise ValueError(f"unknown sample {name!r}; samples: {', '.join(SAMPLE_NAMES)}")
    rgb = getattr(skimage.data, name)()
    bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)
    if scale != 1.0:
        bgr = cv2.resize(bgr, None, fx=scale, fy=scale, interpolation=cv2.INTER_CUBIC)
    ok, buf = cv2.imencode(fmt, bgr, [cv2.IMWRITE_JPEG_QUALITY, 92] if fmt == ".jpg" else [])
    if not ok:  # pragma: no cover - OpenCV always encodes these
        raise RuntimeError(f"could not encode sample {name}")
    return buf.tobytes()


def write_samples(folder: str | Path, names: tuple[str, ...] = SAMPLE_NAMES) -> list[Path]:
    """Write the sample photos as JPEGs into ``folder``; returns their paths."""
    folder = Path(folder)
    return [write_atomic(folder / f"{name}.jpg", sample_bytes(name)) for name in names]
