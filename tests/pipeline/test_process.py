"""process_image end to end through the real stages (offline models only)."""

from __future__ import annotations

import io

import cv2
import numpy as np
import pytest
from PIL import Image

from photoproc import InvalidImageError, InvalidOptionsError, ProcessOptions
from photoproc.pipeline.process import NO_FACE_WARNING, process_image
from photoproc.samples import sample_bytes


def _object_on_background(w: int = 480, h: int = 360) -> tuple[bytes, np.ndarray]:
    """A saturated ellipse on a plain light background, and its true mask."""
    rng = np.random.default_rng(7)
    img = np.full((h, w, 3), (225, 230, 235), np.uint8)
    img = np.clip(img + rng.normal(0, 3, img.shape), 0, 255).astype(np.uint8)
    truth = np.zeros((h, w), np.uint8)
    cv2.ellipse(truth, (w // 2, h // 2), (w // 5, h // 3), 0, 0, 360, 255, -1)
    img[truth > 0] = (30, 60, 200)
    ok, buf = cv2.imencode(".png", img)
    assert ok
    return buf.tobytes(), truth


def _open(data: bytes) -> Image.Image:
    image = Image.open(io.BytesIO(data))
    image.load()
    return image


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 127, b > 127
    return float((a & b).sum() / max(1, (a | b).sum()))


def test_grabcut_cutout_is_full_size_rgba_with_transparent_background():
    data, truth = _object_on_background()
    result = process_image(data, ProcessOptions(model="grabcut"))
    out = _open(result.output.data)
    assert out.format == "PNG" and out.mode == "RGBA"
    assert out.size == (480, 360) == (result.width, result.height)
    alpha = np.asarray(out)[..., 3]
    assert _iou(alpha, truth) > 0.85
    # fully transparent pixels carry no colour (smaller files, no halo when re-composited)
    rgba = np.asarray(out)
    assert not rgba[alpha == 0][:, :3].any()
    assert set(result.timings) >= {"decode", "segment", "encode"}


def test_bgcolor_and_jpeg_paint_the_background():
    data, truth = _object_on_background()
    red = _open(process_image(data, ProcessOptions(model="grabcut", bgcolor="#ff0000")).output.data)
    assert red.mode == "RGB"
    corner = np.asarray(red)[5, 5]
    assert tuple(corner) == (255, 0, 0)
    jpeg = process_image(data, ProcessOptions(model="grabcut", format="jpg"))
    img = _open(jpeg.output.data)
    assert img.format == "JPEG" and img.mode == "RGB"
    assert np.asarray(img)[5, 5].min() > 240  # white by default


def test_webp_and_mask_only():
    data, truth = _object_on_background()
    webp = _open(process_image(data, ProcessOptions(model="grabcut", format="webp")).output.data)
    assert webp.format == "WEBP" and webp.mode == "RGBA"
    mask = _open(process_image(data, ProcessOptions(model="grabcut", only_mask=True)).output.data)
    assert mask.mode == "L" and mask.size == (480, 360)
    assert _iou(np.asarray(mask), truth) > 0.85


def test_post_process_mask_is_binary():
    data, _ = _object_on_background()
    mask = _open(
        process_image(
            data, ProcessOptions(model="grabcut", only_mask=True, post_process_mask=True)
        ).output.data
    )
    assert set(np.unique(np.asarray(mask))) <= {0, 255}


def test_face_crop_of_astronaut_respects_aspect_and_contains_face():
    result = process_image(
        sample_bytes("astronaut"),
        ProcessOptions(remove_bg=False, crop_face=True, aspect="4:5", face_detector="haar"),
    )
    assert result.warnings == []
    face = result.output.face
    assert face is not None
    # the astronaut's face sits around x 170-260, y 70-190 of the 512 px photo
    assert 150 < face.x + face.w / 2 < 280 and 60 < face.y + face.h / 2 < 200
    out = result.output
    assert abs(out.width / out.height - 4 / 5) < 0.02
    assert out.width < 512 and out.height < 512


def test_face_crop_output_size_and_background_removed():
    result = process_image(
        sample_bytes("astronaut"),
        ProcessOptions(model="grabcut", crop_face=True, output_size=256, face_detector="haar"),
    )
    out = _open(result.output.data)
    assert out.size == (256, 256) and out.mode == "RGBA"


def test_no_face_keeps_image_uncropped_with_warning():
    result = process_image(
        sample_bytes("coffee"),
        ProcessOptions(remove_bg=False, crop_face=True, face_detector="haar"),
    )
    assert result.warnings == [NO_FACE_WARNING]
    assert (result.output.width, result.output.height) == (600, 400)


def test_face_at_the_edge_is_padded_transparent_not_shifted():
    astronaut = cv2.imdecode(np.frombuffer(sample_bytes("astronaut"), np.uint8), cv2.IMREAD_COLOR)
    cut = astronaut[40:, 150:]  # face now close to the left edge
    ok, buf = cv2.imencode(".png", cut)
    result = process_image(
        buf.tobytes(),
        ProcessOptions(remove_bg=False, crop_face=True, face_margin=1.0, face_detector="haar"),
    )
    out = np.asarray(_open(result.output.data))
    assert out.shape[2] == 4, "padding needs an alpha channel"
    assert (out[:, 0, 3] == 0).all(), "left column is padding, transparent"
    assert (out[out.shape[0] // 2, -5:, 3] == 255).all(), "right side is real pixels"


def test_all_faces_gives_one_output_per_face():
    astronaut = cv2.imdecode(np.frombuffer(sample_bytes("astronaut"), np.uint8), cv2.IMREAD_COLOR)
    pair = np.hstack([astronaut, astronaut])
    ok, buf = cv2.imencode(".png", pair)
    result = process_image(
        buf.tobytes(),
        ProcessOptions(remove_bg=False, crop_face=True, all_faces=True, face_detector="haar"),
    )
    assert len(result.outputs) == 2
    centres = sorted(o.face.x + o.face.w / 2 for o in result.outputs)
    assert centres[0] < 512 < centres[1]


def test_transparent_source_keeps_its_transparency():
    rgba = np.zeros((100, 100, 4), np.uint8)
    rgba[20:80, 20:80] = (0, 0, 255, 255)
    ok, buf = cv2.imencode(".png", rgba)
    out = np.asarray(
        _open(process_image(buf.tobytes(), ProcessOptions(model="grabcut")).output.data)
    )
    assert out[5, 5, 3] == 0


def _padded_face_png() -> bytes:
    astronaut = cv2.imdecode(np.frombuffer(sample_bytes("astronaut"), np.uint8), cv2.IMREAD_COLOR)
    return cv2.imencode(".png", astronaut[40:, 150:])[1].tobytes()


def _transparent_png() -> bytes:
    rgba = np.random.default_rng(11).integers(0, 256, (90, 120, 4), dtype=np.uint8)
    rgba[:30, :, 3] = 0
    return cv2.imencode(".png", rgba)[1].tobytes()


@pytest.mark.parametrize("make", [_padded_face_png, _transparent_png], ids=["padded", "rgba"])
def test_written_png_matches_the_kept_pixels(make) -> None:
    # Without keep_pixels the cutout is made inside the PNG writer, strip by strip;
    # with it, as a full image first. Both must write the same file.
    options = ProcessOptions(remove_bg=False, crop_face=True, face_margin=1.0, face_detector="haar")
    data = make()
    fused = process_image(data, options)
    kept = process_image(data, options, keep_pixels=True)
    assert fused.output.pixels is None
    assert fused.output.data == kept.output.data
    rgba = np.asarray(_open(fused.output.data))
    assert np.array_equal(rgba, cv2.cvtColor(kept.output.pixels, cv2.COLOR_BGRA2RGBA))
    assert (rgba[..., 3] == 0).any() and (rgba[..., 3] == 255).any()


def test_alpha_matting_refines_edges():
    data, truth = _object_on_background(160, 120)
    plain = np.asarray(_open(process_image(data, ProcessOptions(model="grabcut")).output.data))
    matted = np.asarray(
        _open(
            process_image(
                data,
                ProcessOptions(model="grabcut", alpha_matting=True, alpha_matting_erode_size=3),
            ).output.data
        )
    )
    assert matted.shape == plain.shape
    assert _iou(matted[..., 3], truth) > 0.8


def test_bad_input_and_bad_options_raise_clear_errors():
    with pytest.raises(InvalidImageError):
        process_image(b"definitely not an image", ProcessOptions(model="grabcut"))
    with pytest.raises(InvalidOptionsError, match="format"):
        ProcessOptions(format="gif")
    with pytest.raises(InvalidOptionsError, match="nothing to do"):
        ProcessOptions(remove_bg=False, crop_face=False)


def test_one_image_uses_every_core_unless_told_otherwise(tmp_path, monkeypatch):
    """Called directly (a notebook, a slider) the model gets every core; a caller running
    images side by side passes its share."""
    from support.onnx_models import make_u2net_like

    from photoproc.pipeline.process import default_threads
    from photoproc.pipeline.segment import get_segmenter

    model = str(make_u2net_like(tmp_path / "m.onnx", "center"))
    options = ProcessOptions(model="custom", model_path=model)
    calls = []
    for threads in {1, default_threads()}:
        segmenter = get_segmenter("custom", model, threads=threads)
        predict = segmenter.predict
        monkeypatch.setattr(
            segmenter, "predict", lambda bgr, t=threads, p=predict: calls.append(t) or p(bgr)
        )
    data = sample_bytes("coffee", scale=0.25)
    process_image(data, options)
    process_image(data, options, threads=1)
    assert calls == [default_threads(), 1]
