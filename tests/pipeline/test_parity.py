"""photoproc's masks against rembg's own on the real u2netp and the shared photos.

Both load the same weights file (imported, md5-checked, into the test's model folder) and
see the same JPEG bytes: photoproc through ``process_image`` (``only_mask``), rembg through
``remove(only_mask=True)`` with ``new_session("u2netp")``. The figures per photo are in
benchmarks/RESULTS.md (benchmarks/bench_parity.py); here every photo must agree to IoU
0.99 (alpha > 127) — the masks differed visibly (IoU 0.857 on girl-1) while the model's
input was resampled with INTER_AREA instead of rembg's LANCZOS.
"""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest

from photoproc.options import ProcessOptions
from photoproc.pipeline.models import import_model
from photoproc.pipeline.process import process_image

MIN_IOU = 0.99


@pytest.fixture(scope="module")
def rembg_api():
    from rembg import new_session, remove  # importing rembg takes seconds: once per module

    return new_session, remove


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 127, b > 127
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_masks_match_rembgs_on_every_shared_photo(shared_dir, real_u2netp, rembg_api):
    from PIL import Image

    new_session, remove = rembg_api
    import_model("u2netp", real_u2netp)  # the test's own model folder; rembg reads it too
    session = new_session("u2netp")
    options = ProcessOptions(model="u2netp", only_mask=True)
    photos = sorted((shared_dir / "testdata" / "photos").glob("*.jpg"))
    assert len(photos) == 7
    agreement = {}
    for photo in photos:
        data = photo.read_bytes()
        (output,) = process_image(data, options).outputs
        ours = cv2.imdecode(np.frombuffer(output.data, np.uint8), cv2.IMREAD_GRAYSCALE)
        theirs = np.asarray(remove(Image.open(io.BytesIO(data)), session=session, only_mask=True))
        assert ours.shape == theirs.shape, photo.name
        agreement[photo.stem] = (
            _iou(ours, theirs),
            float(np.abs(ours - theirs.astype(int)).mean()),
        )
    low = {name: round(iou, 4) for name, (iou, _) in agreement.items() if iou < MIN_IOU}
    assert not low, f"IoU below {MIN_IOU} against rembg: {low} (all: {agreement})"
    # The soft edges too: under 1 grey level apart on average.
    assert all(mad < 1.0 for _, mad in agreement.values()), agreement
