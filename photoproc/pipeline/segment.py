"""Segmenters: image in, foreground mask out, one cached model session per process.

Most of rembg's time per image is spent outside the network — a full-size
LANCZOS resize, float64 normalisation and a LANCZOS mask upscale, all in PIL (see
``benchmarks/RESULTS.md``). For every model whose pre- and post-processing
is plain (the U²-Net family, IS-Net, BiRefNet, BRIA, custom U²-Net-contract files)
:class:`OnnxSegmenter` does the same steps on the BGR array the pipeline already
has: rembg's own ``LANCZOS`` down to the model size (``_downscale``: the masks
depend on it), rembg's normalisation in float32 (divide by the largest pixel value,
then mean/std), rembg's min-max scaling of the first output, OpenCV's
``INTER_LINEAR`` back up (as good as ``LANCZOS`` here, and 10x cheaper). Models
with special post-processing (``u2net_cloth_seg``: argmax over clothing classes)
go through rembg's own session (:class:`RembgSegmenter`) so they stay correct.

Sessions are created once per (model, weights file, intra-op thread count) and
shared by all threads: onnxruntime's ``run()`` is thread-safe and releases the GIL,
so the caller runs N items on N threads with ``threads`` intra-op threads each, and
one image alone with every core (onnxruntime cannot change a session's thread
count, hence one session per count).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import cv2
import numpy as np
from PIL import Image

from ..errors import InvalidImageError, InvalidOptionsError, ModelNotAvailableError
from .models import CUSTOM_MODEL, OFFLINE_MODEL, ensure_available, model_info, resolve_name

__all__ = [
    "OnnxSegmenter",
    "Recipe",
    "RembgSegmenter",
    "Segmenter",
    "clear_cache",
    "get_providers",
    "get_segmenter",
    "recipe_for",
    "set_providers",
]

log = logging.getLogger(__name__)


@runtime_checkable
class Segmenter(Protocol):
    name: str

    def predict(self, bgr: np.ndarray) -> np.ndarray:
        """uint8 mask ``(H, W)`` of the input's size, 255 = foreground."""
        ...


@dataclass(frozen=True)
class Recipe:
    """rembg's pre/post-processing for one model: input side, mean, std, sigmoid."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    #: BiRefNet outputs logits; rembg applies a sigmoid before min-max scaling.
    sigmoid: bool = False


_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)
_ONE = (1.0, 1.0, 1.0)
_U2NET = Recipe(320, _IMAGENET_MEAN, _IMAGENET_STD)

# Copied from rembg 2.0.86's sessions/*.py predict() calls.
_RECIPES = {
    "isnet-general-use": Recipe(1024, (0.5, 0.5, 0.5), _ONE),
    "isnet-anime": Recipe(1024, _IMAGENET_MEAN, _ONE),
    "bria-rmbg": Recipe(1024, _IMAGENET_MEAN, _IMAGENET_STD),
}
_FAMILY_RECIPES = {
    "u2net": _U2NET,
    "custom": _U2NET,
    "birefnet": Recipe(1024, _IMAGENET_MEAN, _IMAGENET_STD, sigmoid=True),
}


def recipe_for(model: str) -> Recipe | None:
    """The fast path's recipe for ``model``; ``None`` when rembg's own code must run."""
    info = model_info(model)
    return _RECIPES.get(info.name) or _FAMILY_RECIPES.get(info.family)


# -- onnxruntime sessions --------------------------------------------------------------------

_providers: tuple[str, ...] | None = None  # None: pick automatically


def set_providers(providers: Sequence[str] | None) -> None:
    """Choose onnxruntime execution providers (``None``: CUDA when usable, else CPU).

    Sessions already created keep theirs, so the cache is cleared.
    """
    global _providers
    if providers is not None:
        import onnxruntime as ort

        available = ort.get_available_providers()
        unknown = [p for p in providers if p not in available]
        if unknown or not providers:
            raise InvalidOptionsError(
                "providers",
                f"{', '.join(unknown) or 'nothing'} not available; "
                f"this onnxruntime has {', '.join(available)}",
            )
        providers = tuple(providers)
    _providers = providers
    clear_cache()


def get_providers() -> list[str | tuple[str, dict[str, str]]]:
    """The providers (with options) new sessions get, in preference order: those of
    :func:`set_providers`, else the ``--device`` choice (:mod:`.providers`)."""
    if _providers is not None:
        return list(_providers)
    from .providers import session_providers

    return session_providers()


def _session_options(threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    # Spinning worker threads burn cores that the other items' threads need.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3  # errors only: no provider chatter on stderr
    return opts


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:300] if text else type(exc).__name__


class OnnxSegmenter:
    """The fast path: OpenCV resizes and float32 maths around one onnxruntime session."""

    def __init__(self, name: str, path: str | Path, recipe: Recipe, *, threads: int = 1) -> None:
        import onnxruntime as ort

        self.name = name
        self.path = Path(path)
        self.recipe = recipe
        try:
            self.session = ort.InferenceSession(
                str(self.path), sess_options=_session_options(threads), providers=get_providers()
            )
        except Exception as exc:  # onnxruntime raises its own pybind classes
            raise self._unusable(f"onnxruntime cannot load it: {_first_line(exc)}") from exc
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        shape = list(inputs[0].shape) if inputs else []
        channels = shape[1] if len(shape) == 4 else None
        if len(inputs) != 1 or len(shape) != 4 or (isinstance(channels, int) and channels != 3):
            raise self._unusable(
                f"expected one float input [1, 3, H, W], found "
                f"{[(i.name, i.shape) for i in inputs]}"
            )
        if not outputs or len(outputs[0].shape or []) not in (3, 4):
            raise self._unusable("expected a mask output [1, 1, H, W]")
        self.input_name = inputs[0].name
        self.output_name = outputs[0].name
        # Take the size baked into the file; symbolic dims fall back to rembg's size.
        height, width = shape[2], shape[3]
        self.input_size = (
            width if isinstance(width, int) and width > 0 else recipe.size,
            height if isinstance(height, int) and height > 0 else recipe.size,
        )
        std = np.asarray(recipe.std, np.float32)
        # rembg: (x / max - mean) / std == x * (1 / (max * std)) - mean / std, per RGB channel.
        self._inv_std = (1.0 / std).astype(np.float32)
        self._offset = (np.asarray(recipe.mean, np.float32) / std).astype(np.float32)

    def _unusable(self, reason: str) -> Exception:
        if self.name == CUSTOM_MODEL:
            return InvalidOptionsError(
                "model_path", f"{self.path} is not a U²-Net-contract ONNX model: {reason}"
            )
        return ModelNotAvailableError(
            self.name,
            f"the installed file for model {self.name!r} ({self.path}) is unusable: {reason}. "
            f"Fix: run `photoproc models pull {self.name}` again, or "
            f"`photoproc models import {self.name} FILE` with a good copy.",
        )

    def __repr__(self) -> str:
        return f"<OnnxSegmenter {self.name} {self.input_size[0]}px {self.path}>"

    def tensor(self, bgr: np.ndarray) -> np.ndarray:
        """The model input for ``bgr``: rembg's normalisation, in float32."""
        small = _downscale(bgr, self.input_size)
        rgb = small[:, :, 2::-1].astype(np.float32)
        rgb *= self._inv_std / max(float(small.max()), 1e-6)
        rgb -= self._offset
        return np.ascontiguousarray(rgb.transpose(2, 0, 1)[np.newaxis])

    def predict(self, bgr: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
        """uint8 mask of ``bgr``'s size, or of ``out_size`` = (width, height) when given.

        ``out_size`` lets a caller that decoded a reduced copy for the model ask for
        a mask of the full image straight away, without a second resize.
        """
        bgr = _as_bgr(bgr)
        height, width = bgr.shape[:2]
        (pred,) = self.session.run([self.output_name], {self.input_name: self.tensor(bgr)})
        pred = pred.reshape(pred.shape[-2:])
        if self.recipe.sigmoid:
            pred = 1.0 / (1.0 + np.exp(-pred))
        low, high = float(pred.min()), float(pred.max())
        if not high > low:  # rembg would divide by zero; nothing stands out from the rest
            small = np.zeros(pred.shape, np.uint8)
        else:
            scaled = (pred - low) * np.float32(255.0 / (high - low))
            # rembg truncates (astype) rather than rounds; do the same.
            small = np.clip(scaled, 0, 255).astype(np.uint8)
        size = out_size or (width, height)
        return cv2.resize(small, size, interpolation=cv2.INTER_LINEAR)


class RembgSegmenter:
    """rembg's own session and PIL-based predict(), for models with special output."""

    def __init__(self, name: str, *, threads: int = 1) -> None:
        from rembg import new_session  # deferred: importing rembg takes seconds

        self.name = name
        try:
            self.session = new_session(
                name, sess_opts=_session_options(threads), providers=get_providers()
            )
        except Exception as exc:  # a corrupt file surfaces as onnxruntime's own classes
            raise ModelNotAvailableError(
                name,
                f"rembg could not load model {name!r}: {_first_line(exc)}. "
                f"Fix: run `photoproc models pull {name}` again, or "
                f"`photoproc models import {name} FILE` with a good copy.",
            ) from exc
        # u2net_cloth_seg returns upper/lower/full masks; "attire" is their union.
        self._kwargs = {"cc": "attire"} if name == "u2net_cloth_seg" else {}

    def __repr__(self) -> str:
        return f"<RembgSegmenter {self.name}>"

    def predict(self, bgr: np.ndarray, out_size: tuple[int, int] | None = None) -> np.ndarray:
        from PIL import Image

        bgr = _as_bgr(bgr)
        height, width = bgr.shape[:2]
        image = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
        masks = self.session.predict(image, **self._kwargs)
        mask = np.maximum.reduce([np.asarray(m.convert("L")) for m in masks])
        size = out_size or (width, height)
        if mask.shape != (size[1], size[0]):
            mask = cv2.resize(mask, size, interpolation=cv2.INTER_LINEAR)
        return mask


def _downscale(bgr: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The model input: Pillow's ``LANCZOS`` resize to ``size`` = (width, height), as rembg does.

    U²-Net's masks are sensitive to how the input was resampled. With OpenCV's
    ``INTER_AREA`` here (4-10x cheaper at 12 MP) the real u2netp's masks differed from
    rembg's by IoU 0.857 on girl-1 and 0.96 on two more of the shared photos; with
    the same filter as rembg they agree to IoU >= 0.99 on all seven. Shrinking with
    ``INTER_AREA`` to 2-4x the size before the ``LANCZOS`` step was tried, and lost
    the agreement again on some photos (benchmarks/bench_parity.py, RESULTS.md). Pillow
    sees the BGR bytes as "RGB": the filter treats every channel alike, so the order
    does not matter, and its resize releases the GIL.
    """
    image = Image.fromarray(np.ascontiguousarray(bgr))
    return np.asarray(image.resize(size, Image.Resampling.LANCZOS))


def _as_bgr(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) BGR view of a BGR, BGRA or grey uint8 array."""
    if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
        raise InvalidImageError("a segmenter needs a uint8 numpy array (BGR, BGRA or grey)")
    if image.ndim == 2:
        image = cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim != 3 or image.shape[2] not in (3, 4) or 0 in image.shape:
        raise InvalidImageError(f"cannot segment an array of shape {image.shape}")
    return image[:, :, :3]


# -- the per-process cache -------------------------------------------------------------------

_cache: dict[tuple, Segmenter] = {}
_key_locks: dict[tuple, threading.Lock] = {}
_lock = threading.Lock()


def clear_cache() -> None:
    """Forget every session (frees their memory once no caller holds them)."""
    with _lock:
        _cache.clear()
        _key_locks.clear()


def _after_fork() -> None:
    # A child must not reuse the parent's sessions or a lock the parent held.
    global _lock
    _lock = threading.Lock()
    _cache.clear()
    _key_locks.clear()


os.register_at_fork(after_in_child=_after_fork)


def _file_key(path: Path) -> tuple[str, int, int]:
    # A replaced file (re-pull, re-import) gets a fresh session.
    stat = path.stat()
    return (str(path), stat.st_mtime_ns, stat.st_size)


def get_segmenter(
    model: str, model_path: str | os.PathLike[str] | None = None, *, threads: int | None = None
) -> Segmenter:
    """The shared segmenter for ``model`` (and ``model_path``), created on first use.

    ``model_path`` with ``model="custom"`` loads any U²-Net-contract ONNX file with
    our own session (rembg would refuse one outside its folder); with a named model
    it loads that file with the model's recipe. Without it, the installed weights
    are used, downloaded first unless offline. ``threads`` (intra-op threads,
    default 1): each count gets its own session, so one process can run an image
    alone on every core and, when the pool is full, one image per core.
    """
    name = resolve_name(model)
    threads = 1 if threads is None else threads
    if isinstance(threads, bool) or not isinstance(threads, int) or threads < 1:
        raise InvalidOptionsError("threads", f"{threads!r} is not a whole number >= 1")
    if name == OFFLINE_MODEL:
        if model_path:
            raise InvalidOptionsError("model_path", f"{OFFLINE_MODEL!r} takes no model file")
        return _cached((name,), _grabcut)
    if model_path:
        path = Path(model_path).expanduser().resolve()
        if not path.is_file():
            raise ModelNotAvailableError(
                name, f"model file {model_path} does not exist or is not a file"
            )
    elif name == CUSTOM_MODEL:
        raise InvalidOptionsError("model_path", f"model {CUSTOM_MODEL!r} needs model_path")
    else:
        available = ensure_available(name)
        assert available is not None  # only grabcut has no file
        path = available
    recipe = recipe_for(name)
    if recipe is None:
        if model_path:
            raise InvalidOptionsError(
                "model_path",
                f"model {name!r} loads only from rembg's model folder; "
                f"use `photoproc models import {name} FILE` instead",
            )
        return _cached(
            (name, *_file_key(path), threads), lambda: RembgSegmenter(name, threads=threads)
        )
    return _cached(
        (name, *_file_key(path), threads),
        lambda: OnnxSegmenter(name, path, recipe, threads=threads),
    )


def _grabcut() -> Segmenter:
    from .grabcut import GrabCutSegmenter  # written separately; import only when asked for

    return GrabCutSegmenter()


def _cached(key: tuple, build) -> Segmenter:
    segmenter = _cache.get(key)
    if segmenter is not None:
        return segmenter
    with _lock:
        key_lock = _key_locks.setdefault(key, threading.Lock())
    # One lock per key: loading a 1 GB model does not hold up a different one.
    with key_lock:
        segmenter = _cache.get(key)
        if segmenter is None:
            segmenter = build()
            log.debug("created %r", segmenter)
            _cache[key] = segmenter
    return segmenter
