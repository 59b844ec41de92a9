"""Inputs of the service and API benchmarks: a large set of small JPEGs, the model file.

``common.make_images`` makes the 24-image set of 2/6/12 MP photos that the
process and API benchmarks share; a 1,000-image job of those would take the
better part of an hour per run, so the service benchmark uses smaller photos
(about 1, 1.5 and 2 MP) made the same way, from the same real photos.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
from common import WORK, model_files, source_photos

#: megapixels of the small set, cycled image by image.
SMALL_MEGAPIXELS = (1.0, 1.5, 2.0)


def make_small_images(folder: Path, count: int) -> list[Path]:
    """``count`` JPEGs of about 1, 1.5 and 2 MP (a third each), made once and reused.

    Image ``i`` is the same in every set, so a 50-image set is the first 50 of
    the 1,000-image one: the two jobs differ in length only.
    """
    folder.mkdir(parents=True, exist_ok=True)
    # Beside the folder, not in it: the folder is submitted whole.
    stamp = folder.with_name(folder.name + ".json")
    wanted = {"count": count, "megapixels": list(SMALL_MEGAPIXELS)}
    existing = sorted(folder.glob("*.jpg"))
    if len(existing) == count and stamp.exists() and json.loads(stamp.read_text()) == wanted:
        return existing
    for path in existing:
        path.unlink()
    photos = source_photos()
    paths = []
    for i in range(count):
        mp = SMALL_MEGAPIXELS[i % len(SMALL_MEGAPIXELS)]
        img = photos[i % len(photos)]
        h, w = img.shape[:2]
        scale = (mp * 1e6 / (w * h)) ** 0.5
        interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
        sized = cv2.resize(img, (round(w * scale), round(h * scale)), interpolation=interpolation)
        path = folder / f"img{i:04d}_{mp:g}mp.jpg"
        cv2.imwrite(str(path), sized, [cv2.IMWRITE_JPEG_QUALITY, 90])
        paths.append(path)
    stamp.write_text(json.dumps(wanted))
    return paths


def find_model(name: str) -> Path:
    """The random-weight model ``name``: ``<name>.onnx``, or ``<name>-arch.onnx`` as
    ``make_u2net_onnx.py`` names its output; otherwise ``model_files`` explains how
    to build it (and exits)."""
    folder = WORK / "models"
    for candidate in (folder / f"{name}.onnx", folder / f"{name}-arch.onnx"):
        if candidate.exists():
            return candidate
    return model_files((name,))[name]


def folder_megabytes(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.glob("*.jpg")) / 1e6
