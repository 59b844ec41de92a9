"""EXIF orientation: read from the tag, applied to pixels, and its effect on sizes."""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
from PIL import Image

__all__ = ["ORIENTATION_TAG", "exif_orientation", "orient", "upright", "valid_orientation"]

ORIENTATION_TAG = 0x0112


def exif_orientation(exif: bytes) -> int:
    """The orientation tag (1–8) of a raw EXIF block; 1 when absent or unreadable."""
    try:
        parsed = Image.Exif()
        parsed.load(exif)
        return valid_orientation(parsed.get(ORIENTATION_TAG))
    except Exception:  # a broken EXIF block must not make a good image unreadable
        return 1


def valid_orientation(value: Any) -> int:
    try:
        number = int(value) if value is not None else 1
    except (TypeError, ValueError):
        return 1
    return number if 1 <= number <= 8 else 1


def orient(pixels: np.ndarray, orientation: int) -> np.ndarray:
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


def upright(size: tuple[int, int], orientation: int) -> tuple[int, int]:
    return (size[1], size[0]) if orientation >= 5 else (size[0], size[1])
