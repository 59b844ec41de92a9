"""Tiny and sliver images (1×1, 1×N, N×1, 2×2) through the whole pipeline, every output kind.

A 1×1 photo used to crash the cutout writer with an OpenCV size error; here each
shape is decoded from a real PNG/JPEG file and must come out as an image of the
same shape (or, never, as anything but a PhotoprocError with a plain reason).
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from photoproc import ProcessOptions
from photoproc.pipeline.process import process_image

SHAPES = [(1, 1), (1, 9), (9, 1), (2, 2)]
OPTIONS = {
    "png": {},
    "webp": {"format": "webp"},
    "jpeg": {"format": "jpeg"},
    "mask": {"only_mask": True},
    "background": {"bgcolor": "#ff0000"},
    "face crop": {"crop_face": True, "face_detector": "haar"},
    "post-processed": {"post_process_mask": True},
}


@pytest.mark.parametrize("container", [".png", ".jpg"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: f"{s[1]}x{s[0]}")
@pytest.mark.parametrize("kind", list(OPTIONS))
def test_tiny_images_process(shape: tuple[int, int], container: str, kind: str) -> None:
    pixels = np.random.default_rng(shape[0] * 10 + shape[1]).integers(0, 256, (*shape, 3), np.uint8)
    data = cv2.imencode(container, pixels)[1].tobytes()
    result = process_image(data, ProcessOptions(model="grabcut", **OPTIONS[kind]))
    assert len(result.outputs) == 1
    image = Image.open(io.BytesIO(result.outputs[0].data))
    assert image.size == (shape[1], shape[0])
