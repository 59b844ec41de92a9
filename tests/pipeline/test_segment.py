"""Segmenters on tiny generated ONNX models: masks, caching, errors, parity with rembg."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest
from support.onnx_models import install_rembg_model, make_cloth_like, make_u2net_like

from photoproc.errors import (
    InvalidImageError,
    InvalidOptionsError,
    ModelNotAvailableError,
    UnknownModelError,
)
from photoproc.pipeline import models, segment
from photoproc.pipeline.segment import (
    OnnxSegmenter,
    RembgSegmenter,
    Segmenter,
    get_segmenter,
    recipe_for,
)


@pytest.fixture(autouse=True)
def _fresh_cache():
    segment.clear_cache()
    yield
    segment.clear_cache()


@pytest.fixture
def home() -> Path:
    return Path(os.environ["REMBG_HOME"])


def _square_on_black(height: int, width: int) -> np.ndarray:
    """Black image with a white rectangle over the middle half of each side."""
    image = np.zeros((height, width, 3), np.uint8)
    image[height // 4 : height - height // 4, width // 4 : width - width // 4] = 255
    return image


def _inner(mask: np.ndarray) -> np.ndarray:
    """The middle half of each side, shrunk by 10 % to stay clear of the soft edge."""
    h, w = mask.shape
    return mask[int(h * 0.3) : int(h * 0.7), int(w * 0.3) : int(w * 0.7)]


def _corners(mask: np.ndarray) -> list[int]:
    return [int(mask[0, 0]), int(mask[0, -1]), int(mask[-1, 0]), int(mask[-1, -1])]


# -- masks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(333, 517, 3), (1000, 40, 3), (240, 320, 4), (300, 300)])
def test_custom_center_model_mask_has_input_size(tmp_path, shape):
    segmenter = get_segmenter("custom", str(make_u2net_like(tmp_path / "c.onnx", "center")))
    image = np.full(shape, 90, np.uint8)
    mask = segmenter.predict(image)
    assert mask.shape == shape[:2] and mask.dtype == np.uint8
    assert (_inner(mask) == 255).all()
    assert _corners(mask) == [0, 0, 0, 0]


def test_left_model_marks_the_left_half(tmp_path):
    segmenter = get_segmenter("custom", str(make_u2net_like(tmp_path / "l.onnx", "left")))
    mask = segmenter.predict(np.zeros((200, 400, 3), np.uint8))
    assert (mask[:, :190] == 255).all() and (mask[:, 210:] == 0).all()


def test_bright_model_follows_the_image(tmp_path):
    segmenter = get_segmenter("custom", str(make_u2net_like(tmp_path / "b.onnx", "bright")))
    image = _square_on_black(600, 800)
    mask = segmenter.predict(image)
    assert (_inner(mask) > 250).all()
    assert (mask[:100] < 5).all() and (mask[:, :150] < 5).all()
    # Inverting the picture inverts the mask: the model really reads the pixels.
    assert (_inner(segmenter.predict(255 - image)) < 5).all()


def test_flat_prediction_gives_an_empty_mask_not_garbage(tmp_path):
    segmenter = get_segmenter("custom", str(make_u2net_like(tmp_path / "f.onnx", "flat")))
    mask = segmenter.predict(np.full((50, 60, 3), 128, np.uint8))
    assert mask.shape == (50, 60) and not mask.any()


def test_out_size_gives_a_full_size_mask_from_a_reduced_image(tmp_path):
    segmenter = get_segmenter("custom", str(make_u2net_like(tmp_path / "c.onnx", "center")))
    mask = segmenter.predict(np.zeros((150, 200, 3), np.uint8), out_size=(800, 600))
    assert mask.shape == (600, 800)
    assert (_inner(mask) == 255).all()


def test_birefnet_recipe_applies_the_sigmoid(tmp_path, home):
    install_rembg_model(home, "birefnet-general", kind="bright", size=1024, logits=True)
    segmenter = get_segmenter("birefnet")
    assert isinstance(segmenter, OnnxSegmenter)
    assert segmenter.recipe.sigmoid and segmenter.input_size == (1024, 1024)
    mask = segmenter.predict(_square_on_black(400, 400))
    assert (_inner(mask) > 250).all() and _corners(mask) == [0, 0, 0, 0]


def test_dynamic_input_uses_the_recipe_size(tmp_path):
    path = make_u2net_like(tmp_path / "d.onnx", "bright", dynamic=True)
    segmenter = get_segmenter("custom", str(path))
    assert segmenter.input_size == (320, 320)
    assert (_inner(segmenter.predict(_square_on_black(480, 640))) > 250).all()


@pytest.mark.parametrize(
    ("name", "size", "mean", "std", "sigmoid"),
    [
        ("u2net", 320, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False),
        ("silueta", 320, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False),
        ("isnet-general-use", 1024, (0.5, 0.5, 0.5), (1.0, 1.0, 1.0), False),
        ("isnet-anime", 1024, (0.485, 0.456, 0.406), (1.0, 1.0, 1.0), False),
        ("birefnet-portrait", 1024, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), True),
        ("bria-rmbg", 1024, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), False),
    ],
)
def test_recipes_match_rembg(name, size, mean, std, sigmoid):
    assert recipe_for(name) == segment.Recipe(size, mean, std, sigmoid)


def test_cloth_model_has_no_fast_recipe():
    assert recipe_for("u2net_cloth_seg") is None


def test_normalisation_is_rembgs_in_float32(tmp_path):
    """x / max(x) - mean, / std, RGB order, NCHW — on a picture whose max is not 255."""
    segmenter = get_segmenter("custom", str(make_u2net_like(tmp_path / "c.onnx")))
    rng = np.random.default_rng(1)
    small = rng.integers(0, 200, (320, 320, 3), dtype=np.uint8)
    tensor = segmenter.tensor(small)
    assert tensor.dtype == np.float32 and tensor.shape == (1, 3, 320, 320)
    rgb = small[:, :, ::-1] / small.max()
    expected = (rgb - (0.485, 0.456, 0.406)) / (0.229, 0.224, 0.225)
    np.testing.assert_allclose(tensor[0].transpose(1, 2, 0), expected, atol=1e-5)


# -- named models, installed or not -----------------------------------------------------------


def test_imported_u2netp_works_offline(tmp_path, monkeypatch):
    tiny = make_u2net_like(tmp_path / "u2netp.onnx", "center")
    digest = hashlib.md5(tiny.read_bytes()).hexdigest()
    info = dataclasses.replace(models.REGISTRY["u2netp"], checksum=f"md5:{digest}")
    monkeypatch.setitem(models.REGISTRY, "u2netp", info)
    path = models.import_model("u2netp", tiny)
    segmenter = get_segmenter("u2netp")
    assert isinstance(segmenter, Segmenter) and segmenter.name == "u2netp"
    assert segmenter.path == path
    assert (_inner(segmenter.predict(np.zeros((90, 120, 3), np.uint8))) == 255).all()


def test_missing_named_model_fails_fast_offline(network_attempts):
    with pytest.raises(ModelNotAvailableError, match="photoproc models pull u2net"):
        get_segmenter("u2net")
    assert network_attempts == []


def test_unknown_model():
    with pytest.raises(UnknownModelError):
        get_segmenter("u3net")


def test_corrupt_installed_file_names_the_fix(home):
    target = home / "models" / "u2netp" / "u2netp.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"not an onnx file")
    with pytest.raises(ModelNotAvailableError, match="photoproc models pull u2netp"):
        get_segmenter("u2netp")


# -- custom files -----------------------------------------------------------------------------


def test_custom_needs_a_path():
    with pytest.raises(InvalidOptionsError, match="model_path"):
        get_segmenter("custom")


def test_custom_missing_file(tmp_path):
    with pytest.raises(ModelNotAvailableError, match="does not exist"):
        get_segmenter("custom", str(tmp_path / "nope.onnx"))


def test_custom_garbage_file(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(InvalidOptionsError) as caught:
        get_segmenter("custom", str(path))
    assert caught.value.field == "model_path" and str(path) in str(caught.value)


def test_custom_wrong_contract(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 32, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 32, 32])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "g", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)])
    model.ir_version = 8
    path = tmp_path / "grey.onnx"
    onnx.save(model, str(path))
    with pytest.raises(InvalidOptionsError, match=r"\[1, 3, H, W\]"):
        get_segmenter("custom", str(path))


def test_named_model_with_a_path_uses_that_file_and_its_recipe(tmp_path):
    path = make_u2net_like(tmp_path / "mine.onnx", "bright", size=1024)
    segmenter = get_segmenter("isnet-general-use", str(path))
    assert segmenter.recipe == recipe_for("isnet-general-use") and segmenter.path == path


def test_bad_image_input(tmp_path):
    segmenter = get_segmenter("custom", str(make_u2net_like(tmp_path / "c.onnx")))
    with pytest.raises(InvalidImageError):
        segmenter.predict(np.zeros((10, 10, 3), np.float32))
    with pytest.raises(InvalidImageError):
        segmenter.predict(np.zeros((0, 10, 3), np.uint8))


@pytest.mark.parametrize("threads", [0, -1, 1.5, True])
def test_bad_threads(tmp_path, threads):
    with pytest.raises(InvalidOptionsError, match="threads"):
        get_segmenter("custom", str(make_u2net_like(tmp_path / "c.onnx")), threads=threads)


# -- the cache --------------------------------------------------------------------------------


def test_session_is_reused_per_model_and_path(tmp_path):
    center = str(make_u2net_like(tmp_path / "c.onnx", "center"))
    left = str(make_u2net_like(tmp_path / "l.onnx", "left"))
    first = get_segmenter("custom", center)
    assert get_segmenter("custom", center) is first
    assert get_segmenter("CUSTOM", str(tmp_path / "." / "c.onnx")) is first
    assert get_segmenter("custom", left) is not first


def test_one_session_per_thread_count(tmp_path):
    center = str(make_u2net_like(tmp_path / "c.onnx", "center"))
    one, two = get_segmenter("custom", center), get_segmenter("custom", center, threads=2)
    assert one is not two and get_segmenter("custom", center, threads=2) is two
    assert one.session.get_session_options().intra_op_num_threads == 1
    assert two.session.get_session_options().intra_op_num_threads == 2


def test_replaced_file_gets_a_fresh_session(tmp_path):
    path = tmp_path / "m.onnx"
    make_u2net_like(path, "center")
    first = get_segmenter("custom", str(path))
    make_u2net_like(path, "left")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    second = get_segmenter("custom", str(path))
    assert second is not first
    mask = second.predict(np.zeros((100, 100, 3), np.uint8))
    assert mask[50, 10] == 255 and mask[50, 90] == 0


def test_two_threads_share_one_session_and_agree(tmp_path):
    path = str(make_u2net_like(tmp_path / "b.onnx", "bright"))
    barrier = threading.Barrier(2)
    got: list = [None, None]
    images = [_square_on_black(300, 400), 255 - _square_on_black(300, 400)]

    def work(i: int) -> None:
        barrier.wait()
        segmenter = get_segmenter("custom", path)
        got[i] = (segmenter, [segmenter.predict(images[j % 2]) for j in range(i, i + 6)])

    threads = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got[0][0] is got[1][0]
    alone = [got[0][0].predict(image) for image in images]
    for i, (_, masks) in enumerate(got):
        for j, mask in enumerate(masks, start=i):
            np.testing.assert_array_equal(mask, alone[j % 2])


def test_set_providers(tmp_path):
    with pytest.raises(InvalidOptionsError, match="NoSuchExecutionProvider"):
        segment.set_providers(["NoSuchExecutionProvider"])
    try:
        segment.set_providers(["CPUExecutionProvider"])
        segmenter = get_segmenter("custom", str(make_u2net_like(tmp_path / "c.onnx")))
        assert segmenter.session.get_providers() == ["CPUExecutionProvider"]
    finally:
        segment.set_providers(None)
    assert segment.get_providers()[-1] == "CPUExecutionProvider"


def test_grabcut_is_built_lazily_and_cached():
    segmenter = get_segmenter("grabcut")
    assert segmenter is get_segmenter("offline")
    assert isinstance(segmenter, Segmenter)
    with pytest.raises(InvalidOptionsError):
        get_segmenter("grabcut", "/some/file.onnx")


# -- against rembg itself ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def rembg_new_session():
    from rembg import new_session  # importing rembg takes seconds: once per module

    return new_session


def _rembg_mask(session, bgr: np.ndarray, **kwargs) -> np.ndarray:
    from PIL import Image

    masks = session.predict(Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB)), **kwargs)
    return np.asarray(masks[0])


def _photo(shared_dir: Path | None, size: tuple[int, int]) -> np.ndarray:
    if shared_dir is not None:
        image = cv2.imread(str(shared_dir / "testdata" / "photos" / "girl-1.jpg"))
        return cv2.resize(image, size, interpolation=cv2.INTER_CUBIC)
    # A smooth synthetic picture with a bright blob when ../shared is absent.
    yy, xx = np.mgrid[0 : size[1], 0 : size[0]]
    blob = np.exp(
        -(((xx - size[0] / 2) / (size[0] / 5)) ** 2 + ((yy - size[1] / 2) / (size[1] / 4)) ** 2)
    )
    return np.dstack([(blob * 230 + 10).astype(np.uint8)] * 3)


@pytest.fixture
def photo(request) -> np.ndarray:
    try:
        shared = request.getfixturevalue("shared_dir")
    except pytest.skip.Exception:
        shared = None
    return _photo(shared, (900, 600))


@pytest.mark.parametrize(
    ("name", "size", "logits"),
    [("u2net", 320, False), ("u2net_human_seg", 320, False), ("birefnet-general-lite", 1024, True)],
)
def test_fast_path_matches_rembg(name, size, logits, home, photo, rembg_new_session):
    install_rembg_model(home, name, kind="bright", size=size, logits=logits)
    ours = get_segmenter(name).predict(photo)
    theirs = _rembg_mask(rembg_new_session(name), photo)
    assert ours.shape == theirs.shape
    # Same input resampling; INTER_LINEAR vs LANCZOS for the mask differs only at soft edges.
    assert ((ours > 127) == (theirs > 127)).mean() > 0.99
    assert np.abs(ours.astype(int) - theirs).mean() < 3


def test_cloth_goes_through_rembg(home, photo, rembg_new_session):
    install_rembg_model(home, "u2net_cloth_seg")
    segmenter = get_segmenter("u2net_cloth_seg")
    assert isinstance(segmenter, RembgSegmenter)
    assert get_segmenter("u2net-cloth-seg") is segmenter
    image = _square_on_black(300, 400)
    mask = segmenter.predict(image)
    assert mask.shape == (300, 400)
    assert (_inner(mask) == 255).all() and _corners(mask) == [0, 0, 0, 0]
    theirs = _rembg_mask(rembg_new_session("u2net_cloth_seg"), photo, cc="attire")
    np.testing.assert_array_equal(segmenter.predict(photo), theirs)


def test_cloth_with_a_model_path_is_refused(tmp_path):
    path = make_cloth_like(tmp_path / "cloth.onnx")
    with pytest.raises(InvalidOptionsError, match="photoproc models import"):
        get_segmenter("u2net_cloth_seg", str(path))


@pytest.mark.parametrize(
    ("shape", "size"), [((600, 900, 3), (320, 320)), ((500, 700, 4), (1024, 1024))]
)
def test_model_input_is_resampled_exactly_as_rembg_does(shape, size, photo):
    """rembg: ``img.convert("RGB").resize(size, LANCZOS)``; ours works on BGR(A)."""
    from PIL import Image

    image = cv2.resize(photo, shape[1::-1], interpolation=cv2.INTER_CUBIC)
    if shape[2] == 4:
        image = cv2.cvtColor(image, cv2.COLOR_BGR2BGRA)
        image[..., 3] = 7  # alpha plays no part, as in rembg's convert("RGB")
    rgb = Image.fromarray(cv2.cvtColor(image[..., :3], cv2.COLOR_BGR2RGB))
    theirs = np.asarray(rgb.resize(size, Image.Resampling.LANCZOS))
    ours = segment._downscale(segment._as_bgr(image), size)
    np.testing.assert_array_equal(ours[..., ::-1], theirs)


def test_corrupt_cloth_file_names_the_fix(home, rembg_new_session):
    target = home / "models" / "u2net_cloth_seg" / "u2net_cloth_seg.onnx"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"truncated download")
    with pytest.raises(ModelNotAvailableError, match="photoproc models pull u2net_cloth_seg"):
        get_segmenter("u2net_cloth_seg")
