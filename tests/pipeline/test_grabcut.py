"""The offline ``grabcut`` model: synthetic scenes, the mask contract, determinism, the
reference photos. Speed is measured by ``benchmarks/offline_quality.py``, not here."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import cv2
import numpy as np
import pytest
from support.images import object_on_background, pattern

from photoproc.errors import InvalidImageError, InvalidOptionsError
from photoproc.pipeline import segment
from photoproc.pipeline.grabcut import GrabCutSegmenter

REFERENCE = ("animal-1", "anime-girl-1", "car-1", "girl-1", "girl-2")


@pytest.fixture(scope="module")
def segmenter() -> GrabCutSegmenter:
    return GrabCutSegmenter()


def _bgr(rgb: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(rgb[..., ::-1])


def _iou(mask: np.ndarray, truth: np.ndarray) -> float:
    found = mask > 127
    return float((found & truth).sum() / (found | truth).sum())


def _ellipse(height: int, width: int, ry: float = 0.3, rx: float = 0.2) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    return ((yy - height / 2) / (height * ry)) ** 2 + ((xx - width / 2) / (width * rx)) ** 2 <= 1


def _on_gradient(width: int = 320, height: int = 180) -> tuple[np.ndarray, np.ndarray]:
    """A magenta ellipse on a background whose colour changes across the whole frame."""
    rgb = pattern(width, height, "gradient").astype(np.float32) * 0.6 + 60
    truth = _ellipse(height, width)
    rgb[truth] = (220, 40, 160)
    rgb += np.random.default_rng(0).normal(0, 3, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), truth


def _bust(width: int = 360, height: int = 270) -> tuple[np.ndarray, np.ndarray]:
    """Head, neck and shoulders cut by the bottom edge, before a sky-to-grass gradient."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
    head = ((xx - width / 2) / (0.09 * width)) ** 2 + ((yy - 0.4 * height) / (0.15 * height)) ** 2
    head = head <= 1
    neck = (yy >= 0.45 * height) & (yy < 0.53 * height) & (np.abs(xx - width / 2) <= 0.04 * width)
    shoulders = 0.14 * width + (yy - 0.52 * height) * 0.35  # half-width, growing downwards
    body = (yy >= 0.52 * height) & (np.abs(xx - width / 2) <= shoulders)
    sky, grass = np.array([200, 220, 240], np.float32), np.array([120, 150, 110], np.float32)
    rgb = sky + (grass - sky) * np.linspace(0, 1, height, dtype=np.float32)[:, None, None]
    rgb = np.broadcast_to(rgb, (height, width, 3)).copy()
    rgb[head | neck] = (210, 170, 140)
    rgb[body] = (40, 40, 60)
    rgb += np.random.default_rng(1).normal(0, 4, rgb.shape)
    return np.clip(rgb, 0, 255).astype(np.uint8), head | neck | body


@pytest.mark.parametrize(
    "scene",
    [
        {},
        {"noise": 6},
        {"shape": "rectangle", "fg": (30, 30, 30), "bg": (250, 250, 250)},
        {"shape": "rectangle", "size": 0.9, "fg": (30, 30, 30), "bg": (250, 250, 250)},
        {"shape": "blob", "fg": (40, 120, 200), "bg": (60, 60, 60), "noise": 8},
        {"size": 0.3, "width": 480, "height": 320},
        {"fg": (200, 200, 200), "bg": (235, 235, 235), "noise": 3},
    ],
    ids=["plain", "noisy", "dark-on-white", "wide", "blob-noisy", "small", "low-contrast"],
)
def test_object_on_plain_background(segmenter, scene):
    rgb, truth = object_on_background(fmt="array", **scene)
    assert _iou(segmenter.predict(_bgr(rgb)), truth) > 0.9


def test_object_on_a_background_that_changes_colour(segmenter):
    rgb, truth = _on_gradient()
    assert _iou(segmenter.predict(_bgr(rgb)), truth) > 0.9


def test_subject_cut_by_the_bottom_edge(segmenter):
    rgb, truth = _bust()
    assert _iou(segmenter.predict(_bgr(rgb)), truth) > 0.9


def test_letterbox_bars_are_background_and_do_not_fool_the_model(segmenter):
    rgb, truth = _on_gradient()
    boxed = np.zeros((truth.shape[0] + 80, truth.shape[1], 3), np.uint8)
    boxed[40:-40] = rgb
    expected = np.zeros(boxed.shape[:2], bool)
    expected[40:-40] = truth
    mask = segmenter.predict(_bgr(boxed))
    assert _iou(mask, expected) > 0.9
    assert not mask[:40].any() and not mask[-40:].any()


def test_large_image_edges_follow_the_object(segmenter):
    rgb, truth = object_on_background(1600, 1200, fmt="array", noise=4)
    assert _iou(segmenter.predict(_bgr(rgb)), truth) > 0.97


@pytest.mark.parametrize(
    "shape", [(37, 53, 3), (53, 37, 4), (40, 60), (4, 4, 3), (1000, 20, 3), (21, 700, 3)]
)
def test_mask_has_the_input_size_and_uint8(segmenter, shape):
    image = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    mask = segmenter.predict(image)
    assert mask.shape == shape[:2]
    assert mask.dtype == np.uint8


@pytest.mark.parametrize("value", [0, 128, 255])
def test_uniform_image_does_not_crash(segmenter, value):
    mask = segmenter.predict(np.full((120, 160, 3), value, np.uint8))
    assert mask.shape == (120, 160) and mask.dtype == np.uint8


def test_accepts_a_non_contiguous_view(segmenter):
    rgb, truth = object_on_background(fmt="array")
    view = rgb[..., ::-1]  # BGR as a negative-stride view, no copy
    assert not view.flags.c_contiguous
    assert _iou(segmenter.predict(view), truth) > 0.9


def test_deterministic_across_calls_instances_and_threads():
    images = [_bgr(_on_gradient()[0]), _bgr(_bust()[0])]
    images += [_bgr(object_on_background(fmt="array", noise=n, seed=n)[0]) for n in (4, 8)]
    first = [GrabCutSegmenter().predict(im) for im in images]
    shared = GrabCutSegmenter()
    again = [shared.predict(im) for im in images]
    with ThreadPoolExecutor(4) as pool:
        threaded = list(pool.map(shared.predict, images * 2))
    for i, expected in enumerate(first):
        assert np.array_equal(again[i], expected)
        assert np.array_equal(threaded[i], expected)
        assert np.array_equal(threaded[i + len(images)], expected)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((10, 10, 3), np.float32),
        np.zeros((10, 10, 2), np.uint8),
        np.zeros((0, 10, 3), np.uint8),
        [[0, 1], [2, 3]],
    ],
    ids=["float", "two-channels", "empty", "list"],
)
def test_rejects_what_is_not_an_image(segmenter, image):
    with pytest.raises(InvalidImageError):
        segmenter.predict(image)


@pytest.mark.parametrize(
    "kwargs",
    [{"work_side": 10}, {"iterations": -1}, {"saliency_side": 2.5}, {"work_side": True}],
)
def test_rejects_bad_settings(kwargs):
    with pytest.raises(InvalidOptionsError):
        GrabCutSegmenter(**kwargs)


def test_registry_serves_it_under_its_name():
    segment.clear_cache()
    try:
        model = segment.get_segmenter("grabcut")
        assert isinstance(model, GrabCutSegmenter) and model.name == "grabcut"
    finally:
        segment.clear_cache()


def test_reference_photos_mean_iou(shared_dir, segmenter):
    """The bar from the brief: mean IoU >= 0.8 against u2net's cutouts (alpha > 127)."""
    scores = {}
    for name in REFERENCE:
        photo = cv2.imread(str(shared_dir / "testdata" / "photos" / f"{name}.jpg"))
        ref = cv2.imread(
            str(shared_dir / "testdata" / "reference" / f"{name}.u2net.png"), cv2.IMREAD_UNCHANGED
        )
        scores[name] = round(_iou(segmenter.predict(photo), ref[..., 3] > 127), 3)
    assert np.mean(list(scores.values())) >= 0.8, scores
