"""``process_image``: one image in, encoded cutouts / face crops out.

Order of the stages: faces are detected on the whole upright image, each face
region is cropped (padded at the image edge so the face stays centred), and
the background is removed from the *crop*. Segmenting the crop rather than the
whole photo gives the model a larger view of the person (the model input is a
fixed 320 px square, so a full photo shrinks a face to a few dozen pixels) and
costs less to upscale and encode. The pixels are decoded once.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

import cv2
import numpy as np

from ..config import usable_cores
from ..options import ProcessOptions
from . import encode as enc
from .decode import DEFAULT_MAX_PIXELS, decode
from .png import encode_cutout_png
from .types import Face, Output, Result

if TYPE_CHECKING:
    from .segment import Segmenter

__all__ = ["NO_FACE_WARNING", "configure_threads", "default_threads", "process_image", "warm_up"]

NO_FACE_WARNING = "no face detected"


def configure_threads(threads: int = 1) -> None:
    """Set up a process that runs images in parallel: OpenCV gets ``threads`` threads
    (callers run one image per core instead), and big pixel buffers go straight back
    to the system when freed, so memory stays flat over long batches."""
    from .memory import limit_heap_growth

    cv2.setNumThreads(threads)
    limit_heap_growth()


def default_threads() -> int:
    """The model's intra-op threads for one image alone: every core this process may use."""
    return usable_cores()


def warm_up(options: ProcessOptions, *, threads: int | Iterable[int] = 1) -> None:
    """Load what ``options`` will need (model sessions, face detector) in this process.

    ``threads``: the intra-op thread count(s) images will ask for — one session each.
    """
    if options.remove_bg:
        for count in dict.fromkeys([threads] if isinstance(threads, int) else threads):
            _segmenter(options, count)
    if options.crop_face:
        from .faces import detect_faces

        detect_faces(
            np.zeros((64, 64, 3), np.uint8),
            detector=options.face_detector,
            yunet_model=options.yunet_path,
        )


def _segmenter(options: ProcessOptions, threads: int) -> Segmenter:
    from .segment import get_segmenter

    return get_segmenter(options.model, options.model_path, threads=threads)


class _Clock:
    """Adds wall time per stage into ``timings`` (seconds)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self._last)
        self._last = now


def process_image(
    data: bytes,
    options: ProcessOptions | None = None,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    keep_pixels: bool = False,
    threads: int | None = None,
) -> Result:
    """Decode ``data``, crop faces and/or remove the background, encode the result(s).

    Raises :class:`~photoproc.errors.ImageError` for unreadable input and
    :class:`~photoproc.errors.ModelError` when the model cannot be loaded. Set
    ``keep_pixels`` to keep the decoded result arrays on each output (notebooks).
    ``threads`` is the model's intra-op thread count: by default every core
    (:func:`default_threads`), right for one image at a time (a notebook, a
    slider); callers that run images side by side pass their share (usually 1).
    """
    options = options or ProcessOptions()
    threads = default_threads() if threads is None else threads
    clock = _Clock()
    image = decode(data, max_pixels=max_pixels)
    pixels = image.pixels
    height, width = pixels.shape[:2]
    clock.lap("decode")

    warnings: list[str] = []
    regions: list[tuple[np.ndarray, np.ndarray | None, Face | None]]
    faces: list[Face] = []
    if options.crop_face:
        from .faces import crop_box, crop_padded, detect_faces

        faces = detect_faces(pixels, detector=options.face_detector, yunet_model=options.yunet_path)
        clock.lap("detect")
        if not faces:
            warnings.append(NO_FACE_WARNING)
            regions = [(pixels, None, None)]
        else:
            chosen = faces if options.all_faces else faces[:1]
            regions = []
            for face in chosen:
                box = crop_box(
                    face,
                    width,
                    height,
                    margin=options.face_margin,
                    aspect_ratio=options.aspect_ratio,
                )
                crop, inside = crop_padded(pixels, box)
                regions.append((crop, None if inside.all() else inside, face))
        clock.lap("crop")
    else:
        regions = [(pixels, None, None)]

    outputs = [
        _render(region, inside, face, options, clock, keep_pixels, threads)
        for region, inside, face in regions
    ]
    return Result(
        outputs=outputs,
        width=width,
        height=height,
        source_format=image.format,
        warnings=warnings,
        timings=clock.timings,
        faces=faces,
    )


def _render(
    region: np.ndarray,
    inside: np.ndarray | None,
    face: Face | None,
    options: ProcessOptions,
    clock: _Clock,
    keep_pixels: bool,
    threads: int,
) -> Output:
    bgr = region[..., :3] if region.shape[2] == 4 else region
    # What gets encoded: ``colour``, made transparent by ``alpha`` when there is one.
    colour, alpha = region, None
    if options.remove_bg:
        mask = _segmenter(options, threads).predict(bgr)
        if inside is not None:
            mask = np.minimum(mask, inside)
        clock.lap("segment")
        if options.post_process_mask:
            mask = enc.post_process_mask(mask)
        if options.only_mask:
            colour = mask
        else:
            if options.alpha_matting:
                colour, mask = enc.refine_alpha_matting(
                    bgr,
                    mask,
                    foreground_threshold=options.alpha_matting_foreground_threshold,
                    background_threshold=options.alpha_matting_background_threshold,
                    erode_size=options.alpha_matting_erode_size,
                )
                if inside is not None:
                    mask = np.minimum(mask, inside)
            alpha = mask
    elif inside is not None or region.shape[2] == 4:
        alpha = inside if inside is not None else np.full(region.shape[:2], 255, np.uint8)
    resize = face is not None and options.output_size
    height, width = colour.shape[:2]
    plain_cutout = alpha is not None and not (options.bgcolor or resize)
    if plain_cutout and alpha is not None and options.format == "png" and not keep_pixels:
        # The common case: cutout and PNG made together, strip by strip (png.py).
        clock.lap("compose")
        data = encode_cutout_png(colour, alpha)
        clock.lap("encode")
        return Output(data=data, format="png", width=width, height=height, face=face)
    result = colour if alpha is None else enc.cutout(colour, alpha)
    if alpha is not None and options.bgcolor is not None:
        result = enc.apply_background(result, options.bgcolor)
    if resize:
        from .faces import resize_to

        result = resize_to(result, options.output_size)
    clock.lap("compose")
    data = enc.encode(result, options.format)
    clock.lap("encode")
    out_h, out_w = result.shape[:2]
    return Output(
        data=data,
        format=options.format,
        width=out_w,
        height=out_h,
        face=face,
        pixels=result if keep_pixels else None,
    )
