"""Face detection (Haar offline, YuNet with the shared model) and crop geometry."""

from __future__ import annotations

import hashlib
import http.server
import os
import shutil
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
import pytest
from skimage import data

from photoproc.errors import InvalidOptionsError, ModelNotAvailableError
from photoproc.options import ASPECTS
from photoproc.pipeline import faces
from photoproc.pipeline.faces import (
    YUNET_SHA256,
    crop_box,
    crop_padded,
    detect_faces,
    resize_to,
    yunet_cache_path,
    yunet_path,
)
from photoproc.pipeline.models import models_home
from photoproc.pipeline.types import Face

pytestmark = pytest.mark.timeout(60)

# The astronaut's face on skimage's 512x512 image, forehead to chin, checked by eye.
ASTRONAUT_FACE = Face(175, 62, 95, 115)


@pytest.fixture(scope="module")
def astronaut() -> np.ndarray:
    return cv2.cvtColor(data.astronaut(), cv2.COLOR_RGB2BGR)


@pytest.fixture(scope="module")
def coffee() -> np.ndarray:
    return cv2.cvtColor(data.coffee(), cv2.COLOR_RGB2BGR)


@pytest.fixture
def yunet_file(shared_dir: Path) -> Path:
    path = shared_dir / "models" / "face_detection_yunet.onnx"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    return path


@pytest.fixture(autouse=True)
def _fresh_download_state(monkeypatch):
    """A failed download is remembered process-wide; each test starts without that memory."""
    monkeypatch.setattr(faces, "_download_failed_at", None)
    monkeypatch.delenv("PHOTOPROC_YUNET_PATH", raising=False)


def iou(a: Face, b: Face) -> float:
    ix = max(0, min(a.x + a.w, b.x + b.w) - max(a.x, b.x))
    iy = max(0, min(a.y + a.h, b.y + b.h) - max(a.y, b.y))
    inter = ix * iy
    return inter / (a.area + b.area - inter)


def scaled(face: Face, k: float) -> Face:
    return Face(round(face.x * k), round(face.y * k), round(face.w * k), round(face.h * k))


# --- Haar (always offline) ---------------------------------------------------------------


def test_haar_finds_the_astronaut(astronaut):
    found = detect_faces(astronaut, detector="haar")
    assert len(found) == 1
    assert iou(found[0], ASTRONAUT_FACE) > 0.6, found


def test_auto_without_yunet_file_uses_haar(astronaut):
    assert yunet_path() is None  # offline, empty model home
    assert detect_faces(astronaut) == detect_faces(astronaut, detector="haar")


def test_detects_on_a_downscaled_copy_and_maps_back(astronaut):
    big = cv2.resize(astronaut, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    found = detect_faces(big, detector="haar")
    assert len(found) == 1
    assert iou(found[0], scaled(ASTRONAUT_FACE, 2000 / 512)) > 0.6, found


def test_non_square_image_maps_offsets_back(astronaut):
    canvas = np.full((700, 1100, 3), 90, np.uint8)
    canvas[100:612, 300:812] = astronaut
    big = cv2.resize(canvas, (3300, 2100), interpolation=cv2.INTER_CUBIC)
    found = detect_faces(big, detector="haar")
    assert len(found) == 1
    expected = scaled(Face(ASTRONAUT_FACE.x + 300, ASTRONAUT_FACE.y + 100, 95, 115), 3)
    assert iou(found[0], expected) > 0.6, found


def test_no_faces_in_coffee(coffee):
    assert detect_faces(coffee, detector="haar") == []


def test_no_faces_in_flat_or_tiny_images():
    assert detect_faces(np.full((300, 400, 3), 127, np.uint8), detector="haar") == []
    assert detect_faces(np.zeros((5, 7, 3), np.uint8), detector="haar") == []
    assert detect_faces(np.zeros((0, 7, 3), np.uint8), detector="haar") == []


def test_accepts_bgra_and_grey(astronaut):
    expected = detect_faces(astronaut, detector="haar")
    bgra = cv2.cvtColor(astronaut, cv2.COLOR_BGR2BGRA)
    bgra[:, :, 3] = 0  # alpha must be ignored, not blended
    assert detect_faces(bgra, detector="haar") == expected
    grey = cv2.cvtColor(astronaut, cv2.COLOR_BGR2GRAY)
    assert len(detect_faces(grey, detector="haar")) == 1


def test_refuses_bad_shapes_and_detector_names(astronaut):
    with pytest.raises(ValueError, match="shape"):
        detect_faces(np.zeros((10, 10, 2), np.uint8))
    with pytest.raises(InvalidOptionsError, match="face_detector"):
        detect_faces(astronaut, detector="dlib")


def test_largest_face_first(astronaut):
    # Two astronauts side by side, the right one twice as large.
    left = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)
    canvas = np.full((512, 768, 3), 200, np.uint8)
    canvas[128:384, :256] = left
    canvas[:, 256:] = astronaut
    found = detect_faces(canvas, detector="haar")
    assert len(found) == 2
    assert found[0].area > found[1].area
    assert found[0].x > 256 > found[1].x


def test_threads_get_their_own_detectors(astronaut):
    expected = detect_faces(astronaut, detector="haar")
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: detect_faces(astronaut, detector="haar"), range(8)))
        ids = set(pool.map(lambda _: id(faces._detector("haar")), range(4)))
    assert all(r == expected for r in results)
    assert id(faces._detector("haar")) not in ids  # the main thread's is not shared


# --- YuNet (the shared model file) ---------------------------------------------------------


def test_yunet_finds_the_astronaut(astronaut, yunet_file):
    found = detect_faces(astronaut, detector="yunet", yunet_model=yunet_file)
    assert len(found) == 1
    assert iou(found[0], ASTRONAUT_FACE) > 0.7, found
    assert 0.7 <= found[0].score <= 1.0


def test_yunet_on_upscaled_astronaut(astronaut, yunet_file):
    big = cv2.resize(astronaut, (2000, 2000), interpolation=cv2.INTER_CUBIC)
    (face,) = detect_faces(big, detector="yunet", yunet_model=yunet_file)
    assert iou(face, scaled(ASTRONAUT_FACE, 2000 / 512)) > 0.7, face


def test_yunet_finds_a_face_filling_the_frame(astronaut, yunet_file):
    close_up = cv2.resize(astronaut[40:210, 150:290], None, fx=4, fy=4)  # face ≈ 380x460 px
    (face,) = detect_faces(close_up, detector="yunet", yunet_model=yunet_file, max_side=640)
    assert face.w > 250


@pytest.mark.parametrize(
    ("photo", "expected"),
    [
        ("girl-1.jpg", [Face(194, 152, 56, 68)]),  # arms up, sunglasses
        ("girl-2.jpg", []),  # seen from behind: no face to find
        ("cloth-1.jpg", [Face(323, 98, 80, 105)]),
    ],
)
def test_yunet_on_shared_photos(shared_dir, yunet_file, photo, expected):
    image = cv2.imread(str(shared_dir / "testdata" / "photos" / photo))
    found = detect_faces(image, detector="yunet", yunet_model=yunet_file)
    assert len(found) == len(expected), found
    for got, want in zip(found, expected, strict=True):
        assert iou(got, want) > 0.7, (got, want)


def test_yunet_no_faces_in_coffee(coffee, yunet_file):
    assert detect_faces(coffee, detector="yunet", yunet_model=yunet_file) == []


def test_auto_prefers_yunet_when_configured_by_env(astronaut, yunet_file, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_YUNET_PATH", str(yunet_file))
    assert detect_faces(astronaut) == detect_faces(astronaut, detector="yunet")
    assert detect_faces(astronaut) != detect_faces(astronaut, detector="haar")


def test_yunet_unavailable_is_an_error_naming_the_fix(astronaut):
    with pytest.raises(ModelNotAvailableError, match="PHOTOPROC_YUNET_PATH") as info:
        detect_faces(astronaut, detector="yunet")
    assert info.value.name == "yunet"
    assert "haar" in str(info.value)


def test_broken_yunet_file(astronaut, tmp_path):
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx model")
    with pytest.raises(ModelNotAvailableError, match="not a YuNet model"):
        detect_faces(astronaut, detector="yunet", yunet_model=broken)
    # "auto" does not fail an image over it: Haar still crops.
    found = detect_faces(astronaut, yunet_model=broken)
    assert found == detect_faces(astronaut, detector="haar")


# --- yunet_path -------------------------------------------------------------------------


def test_yunet_path_offline_without_file_is_none_without_the_network(network_attempts):
    assert yunet_path() is None
    assert yunet_path(download=True) is None
    assert network_attempts == []


def test_yunet_path_order(tmp_path, monkeypatch):
    configured, from_env = tmp_path / "a.onnx", tmp_path / "b.onnx"
    configured.write_bytes(b"a")
    from_env.write_bytes(b"b")
    cached = yunet_cache_path()
    assert cached.parent.parent == models_home()
    assert str(cached).startswith(os.environ["REMBG_HOME"])  # the test's isolated home
    cached.parent.mkdir(parents=True)
    cached.write_bytes(b"c")
    monkeypatch.setenv("PHOTOPROC_YUNET_PATH", str(from_env))
    assert yunet_path(configured) == configured
    assert yunet_path(tmp_path / "missing.onnx") == from_env
    assert yunet_path() == from_env
    monkeypatch.delenv("PHOTOPROC_YUNET_PATH")
    assert yunet_path(str(tmp_path / "missing.onnx")) == cached


def test_cache_follows_rembg_home(tmp_path, monkeypatch):
    monkeypatch.setenv("REMBG_HOME", str(tmp_path / "rembg"))
    assert yunet_cache_path() == tmp_path / "rembg" / "yunet" / faces.YUNET_FILENAME
    monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u2net"))  # rembg: U2NET_HOME wins
    assert yunet_cache_path() == tmp_path / "u2net" / "yunet" / faces.YUNET_FILENAME


def test_shared_model_is_the_pinned_file(yunet_file):
    assert hashlib.sha256(yunet_file.read_bytes()).hexdigest() == YUNET_SHA256


class _Server:
    """A real HTTP server on 127.0.0.1 that serves one body and counts requests."""

    def __init__(self, body: bytes) -> None:
        self.body, self.requests = body, 0
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                outer.requests += 1
                self.send_response(200)
                self.send_header("Content-Length", str(len(outer.body)))
                self.end_headers()
                self.wfile.write(outer.body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/{faces.YUNET_FILENAME}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def online(monkeypatch):
    monkeypatch.delenv("PHOTOPROC_OFFLINE")
    servers: list[_Server] = []

    def serve(body: bytes) -> _Server:
        server = _Server(body)
        servers.append(server)
        monkeypatch.setattr(faces, "YUNET_URL", server.url)
        return server

    yield serve
    for server in servers:
        server.close()


def test_download_caches_the_pinned_file(online, yunet_file, astronaut):
    server = online(yunet_file.read_bytes())
    path = yunet_path()
    assert path == yunet_cache_path()
    assert hashlib.sha256(path.read_bytes()).hexdigest() == YUNET_SHA256
    assert yunet_path() == path and server.requests == 1  # cached, not fetched again
    assert len(detect_faces(astronaut, detector="yunet")) == 1


def test_download_with_wrong_hash_falls_back_and_is_not_retried(online, astronaut):
    server = online(b"something else entirely")
    assert yunet_path() is None
    assert not yunet_cache_path().exists()
    assert yunet_path() is None and server.requests == 1  # remembered, no second wait
    assert yunet_path(download=False) is None and server.requests == 1
    assert detect_faces(astronaut) == detect_faces(astronaut, detector="haar")


def test_no_download_when_told_not_to(online):
    server = online(b"x")
    assert yunet_path(download=False) is None
    assert server.requests == 0


# --- crop_box -----------------------------------------------------------------------------


def test_crop_box_margin_zero_free_is_the_face():
    face = Face(40, 30, 100, 120)
    assert crop_box(face, 500, 500, margin=0, aspect_ratio=None) == (40, 30, 140, 150)


def test_crop_box_examples():
    face = Face(200, 200, 100, 100)
    # 100 px face, margin 0.5 → 200 px square, face centred.
    assert crop_box(face, 1000, 1000, margin=0.5, aspect_ratio=1.0) == (150, 150, 350, 350)
    # 3:4 adds 67 px of height: 40 % above the face, 60 % below.
    assert crop_box(face, 1000, 1000, margin=0.5, aspect_ratio=3 / 4) == (150, 123, 350, 390)


@pytest.mark.parametrize("aspect", list(ASPECTS))
@pytest.mark.parametrize("margin", [0.0, 0.25, 0.5, 1.0])
@pytest.mark.parametrize("face", [Face(175, 62, 95, 115), Face(10, 20, 120, 60), Face(3, 5, 7, 9)])
def test_crop_box_geometry(face, margin, aspect):
    ratio = ASPECTS[aspect]
    x0, y0, x1, y1 = crop_box(face, 512, 512, margin=margin, aspect_ratio=ratio)
    w, h = x1 - x0, y1 - y0
    # Holds the face grown by the margin (± rounding).
    assert x0 <= face.x - margin * face.w + 1 and x1 >= face.x + face.w + margin * face.w - 1
    assert y0 <= face.y - margin * face.h + 1 and y1 >= face.y + face.h + margin * face.h - 1
    if ratio is not None:
        assert abs(w - h * ratio) <= 0.5 + 1e-9
    else:
        assert (w, h) == (round(face.w * (1 + 2 * margin)), round(face.h * (1 + 2 * margin)))
    # Centred across; vertically, at least as much room below the face as above it.
    assert abs((x0 + x1) / 2 - (face.x + face.w / 2)) <= 1
    assert (face.y - y0) <= (y1 - face.y - face.h) + 1


def test_crop_box_at_the_edge_is_not_shifted():
    face = Face(0, 0, 50, 50)
    x0, y0, x1, y1 = crop_box(face, 300, 300, margin=0.5, aspect_ratio=1.0)
    assert x0 < 0 and y0 < 0
    assert (x0 + x1) / 2 == 25


def test_crop_box_refuses_bad_values():
    with pytest.raises(InvalidOptionsError):
        crop_box(Face(0, 0, 10, 10), 100, 100, margin=-0.1, aspect_ratio=None)
    with pytest.raises(InvalidOptionsError):
        crop_box(Face(0, 0, 10, 10), 100, 100, margin=0.5, aspect_ratio=0)


def test_detected_crop_contains_the_face(astronaut):
    (face,) = detect_faces(astronaut, detector="haar")
    for ratio in ASPECTS.values():
        box = crop_box(face, 512, 512, margin=0.25, aspect_ratio=ratio)
        crop, inside = crop_padded(astronaut, box)
        assert inside.all()  # with this margin the crop stays inside the image
        x0, y0 = box[:2]
        assert np.array_equal(
            crop[face.y - y0 : face.y - y0 + face.h, face.x - x0 : face.x - x0 + face.w],
            astronaut[face.y : face.y + face.h, face.x : face.x + face.w],
        )


# --- crop_padded ----------------------------------------------------------------------------


def test_face_near_the_edge_is_padded(astronaut):
    shifted = np.ascontiguousarray(astronaut[60:, 175:])  # face now at the top-left corner
    (face,) = detect_faces(shifted, detector="haar")
    assert face.x < 15 and face.y < 15
    box = crop_box(face, shifted.shape[1], shifted.shape[0], margin=0.5, aspect_ratio=4 / 5)
    x0, y0, x1, y1 = box
    assert x0 < 0 and y0 < 0
    crop, inside = crop_padded(shifted, box)
    assert crop.shape == (y1 - y0, x1 - x0, 3) and inside.shape == crop.shape[:2]
    assert inside.dtype == np.uint8 and set(np.unique(inside)) == {0, 255}
    assert not inside[:-y0].any() and not inside[:, :-x0].any()
    assert inside[-y0:, -x0:].all()
    assert not crop[inside == 0].any()
    assert np.array_equal(crop[-y0:, -x0:], shifted[:y1, :x1])


@pytest.mark.parametrize("channels", [None, 3, 4])
def test_crop_padded_keeps_channels_and_dtype(channels):
    shape = (40, 60) if channels is None else (40, 60, channels)
    pixels = np.random.default_rng(1).integers(1, 256, shape, dtype=np.uint8)
    crop, inside = crop_padded(pixels, (50, -5, 70, 10))  # over the right and top edges
    assert crop.shape[:2] == (15, 20) and crop.shape[2:] == pixels.shape[2:]
    assert crop.dtype == np.uint8
    assert inside[5:, :10].all() and not inside[:5].any() and not inside[:, 10:].any()
    assert np.array_equal(crop[5:, :10], pixels[:10, 50:60])


def test_crop_padded_inside_and_outside():
    pixels = np.arange(100, dtype=np.uint8).reshape(10, 10)
    crop, inside = crop_padded(pixels, (2, 3, 5, 7))
    assert np.array_equal(crop, pixels[3:7, 2:5]) and inside.all()
    crop, inside = crop_padded(pixels, (20, 20, 25, 30))
    assert crop.shape == (10, 5) and not crop.any() and not inside.any()
    with pytest.raises(ValueError):
        crop_padded(pixels, (5, 5, 5, 8))


# --- resize_to ------------------------------------------------------------------------------


def test_resize_to(astronaut):
    assert resize_to(astronaut, None) is astronaut
    assert resize_to(astronaut, 512) is astronaut
    wide = astronaut[:256]  # 512 x 256
    assert resize_to(wide, 128).shape == (64, 128, 3)
    assert resize_to(wide, 1024).shape == (512, 1024, 3)
    tall = cv2.cvtColor(astronaut[:, :200], cv2.COLOR_BGR2BGRA)  # 200 x 512
    assert resize_to(tall, 100).shape == (100, 39, 4)
    with pytest.raises(InvalidOptionsError):
        resize_to(astronaut, 0)


def test_resize_to_uses_area_down_and_cubic_up():
    pixels = np.random.default_rng(2).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    down, up = resize_to(pixels, 15), resize_to(pixels, 90)
    for got, size, wanted, other in (
        (down, (15, 11), cv2.INTER_AREA, cv2.INTER_LINEAR),
        (up, (90, 68), cv2.INTER_CUBIC, cv2.INTER_LINEAR),
    ):
        assert got.shape == (size[1], size[0], 3)
        assert np.array_equal(got, cv2.resize(pixels, size, interpolation=wanted))
        assert not np.array_equal(got, cv2.resize(pixels, size, interpolation=other))


def test_shared_dir_copy_in_model_home_is_found(yunet_file):
    cached = yunet_cache_path()
    cached.parent.mkdir(parents=True)
    shutil.copyfile(yunet_file, cached)
    assert yunet_path() == cached
