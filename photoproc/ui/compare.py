"""Comparing models and parameter sets on a few images, for analysts.

:func:`compare_variants` runs :func:`~photoproc.pipeline.process.process_image`
for every image × variant in this process (a comparison is a handful of images,
and the timings should not include queueing) and measures how much each
variant's mask agrees with the first one's (intersection over union of the
``alpha > 127`` pixels). :class:`ModelComparison` shows it as a grid, a row per
image and a column per variant; :class:`LiveTuner` re-runs one image as the
thresholds move.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import ipywidgets as widgets
import numpy as np

from ..errors import PhotoprocError
from ..options import ProcessOptions
from ..pipeline.process import process_image
from .progress import format_duration
from .thumbnails import CHECKERBOARD_CSS, data_url

__all__ = [
    "Comparison",
    "ComparisonCell",
    "LiveTuner",
    "ModelComparison",
    "compare_variants",
    "iou",
]

Images = Mapping[str, bytes] | Iterable[tuple[str, bytes]]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (``> 127`` is foreground); 1.0 when both are empty."""
    fa, fb = a > 127, b > 127
    union = np.count_nonzero(fa | fb)
    return 1.0 if union == 0 else np.count_nonzero(fa & fb) / union


def _mask_of(pixels: np.ndarray | None) -> np.ndarray | None:
    if pixels is None:
        return None
    if pixels.ndim == 2:
        return pixels
    if pixels.shape[2] == 4:
        return pixels[:, :, 3]
    return None


@dataclass
class ComparisonCell:
    """One image under one variant."""

    image: str
    variant: str
    seconds: float
    #: the first output as RGBA/BGR pixels, ``None`` when it failed.
    pixels: np.ndarray | None = field(default=None, repr=False)
    #: ``alpha`` of the first output (the mask), ``None`` without alpha.
    mask: np.ndarray | None = field(default=None, repr=False)
    warnings: list[str] = field(default_factory=list)
    error: str | None = None
    #: IoU with the first variant's mask of the same image (``None``: not comparable).
    agreement: float | None = None

    @property
    def foreground(self) -> float | None:
        """Share of the pixels that are foreground (``alpha > 127``)."""
        if self.mask is None:
            return None
        return float(np.count_nonzero(self.mask > 127)) / self.mask.size


@dataclass
class Comparison:
    images: list[str]
    variants: list[str]
    cells: dict[tuple[str, str], ComparisonCell]
    originals: dict[str, bytes] = field(repr=False)

    def cell(self, image: str, variant: str) -> ComparisonCell:
        return self.cells[(image, variant)]

    def mean_seconds(self, variant: str) -> float:
        return float(np.mean([self.cells[(i, variant)].seconds for i in self.images]))

    def mean_agreement(self, variant: str) -> float | None:
        values = [self.cells[(i, variant)].agreement for i in self.images]
        known = [v for v in values if v is not None]
        return float(np.mean(known)) if known else None

    def rows(self) -> list[dict[str, Any]]:
        """One dict per cell: image, variant, seconds, foreground, agreement, error."""
        return [
            {
                "image": c.image,
                "variant": c.variant,
                "seconds": round(c.seconds, 3),
                "foreground": None if c.foreground is None else round(c.foreground, 3),
                "agreement": None if c.agreement is None else round(c.agreement, 3),
                "error": c.error,
            }
            for c in (self.cells[(i, v)] for i in self.images for v in self.variants)
        ]


def _as_options(value: ProcessOptions | Mapping[str, Any]) -> ProcessOptions:
    options = value if isinstance(value, ProcessOptions) else ProcessOptions.from_mapping(value)
    # Compare masks, not backgrounds: keep transparency, lossless output.
    return options.replace(bgcolor=None, format="png")


def compare_variants(
    images: Images, variants: Mapping[str, ProcessOptions | Mapping[str, Any]]
) -> Comparison:
    """Run every image under every variant; the first variant is the reference for agreement.

    A variant that fails on an image (model not installed, unreadable image) gets
    a cell with the error instead of stopping the comparison.
    """
    pairs = list(images.items()) if isinstance(images, Mapping) else list(images)
    options = {name: _as_options(value) for name, value in variants.items()}
    if not pairs or not options:
        raise ValueError("compare_variants needs at least one image and one variant")
    cells: dict[tuple[str, str], ComparisonCell] = {}
    reference = next(iter(options))
    for image, data in pairs:
        for variant, opts in options.items():
            start = time.perf_counter()
            try:
                result = process_image(data, opts, keep_pixels=True)
            except PhotoprocError as exc:
                cells[(image, variant)] = ComparisonCell(
                    image, variant, time.perf_counter() - start, error=str(exc)
                )
                continue
            seconds = time.perf_counter() - start
            pixels = result.outputs[0].pixels
            cells[(image, variant)] = ComparisonCell(
                image,
                variant,
                seconds,
                pixels=pixels,
                mask=_mask_of(pixels),
                warnings=list(result.warnings),
            )
        ref = cells[(image, reference)].mask
        for variant in options:
            cell = cells[(image, variant)]
            if ref is not None and cell.mask is not None and cell.mask.shape == ref.shape:
                cell.agreement = iou(ref, cell.mask)
    return Comparison(
        images=[name for name, _ in pairs],
        variants=list(options),
        cells=cells,
        originals=dict(pairs),
    )


def _preview(pixels: np.ndarray, side: int) -> str:
    """BGR/BGRA/L pixels → a PNG/JPEG data URL no larger than ``side``."""
    height, width = pixels.shape[:2]
    scale = min(1.0, side / max(height, width))
    if scale < 1.0:
        pixels = cv2.resize(
            pixels, (max(1, round(width * scale)), max(1, round(height * scale))),
            interpolation=cv2.INTER_AREA,
        )  # fmt: skip
    if (pixels.ndim == 3 and pixels.shape[2] == 4) or pixels.ndim == 2:
        ok, buf = cv2.imencode(".png", pixels)
        return data_url(buf.tobytes(), "image/png") if ok else ""
    ok, buf = cv2.imencode(".jpg", pixels, [cv2.IMWRITE_JPEG_QUALITY, 82])
    return data_url(buf.tobytes(), "image/jpeg") if ok else ""


def _decode(data: bytes) -> np.ndarray | None:
    return cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)


def _cell_html(cell: ComparisonCell, side: int) -> str:
    if cell.error is not None:
        body = (
            f'<div style="width:{side}px;color:#b00020;border:1px dashed #bbb;padding:4px">'
            f"{html.escape(cell.error)}</div>"
        )
    elif cell.pixels is not None:
        body = (
            f'<img src="{_preview(cell.pixels, side)}" '
            f'style="max-width:{side}px;max-height:{side}px;{CHECKERBOARD_CSS}">'
        )
    else:
        body = ""
    facts = [format_duration(cell.seconds)]
    if cell.agreement is not None:
        facts.append(f"IoU {cell.agreement:.2f}")
    if cell.foreground is not None:
        facts.append(f"fg {100 * cell.foreground:.0f}%")
    notes = "".join(
        f'<br><span style="color:#b26a00">⚠ {html.escape(w)}</span>' for w in cell.warnings
    )
    return f'{body}<div style="font-size:85%">{" · ".join(facts)}{notes}</div>'


def comparison_html(comparison: Comparison, side: int = 200) -> str:
    """The grid as one HTML table: a row per image, a column per variant."""
    head = "".join(
        f"<th>{html.escape(v)}<br><small>mean {format_duration(comparison.mean_seconds(v))}"
        + (
            f", IoU {agreement:.2f}"
            if (agreement := comparison.mean_agreement(v)) is not None and i
            else (" (reference)" if i == 0 else "")
        )
        + "</small></th>"
        for i, v in enumerate(comparison.variants)
    )
    rows = []
    for image in comparison.images:
        original = _decode(comparison.originals[image])
        first = (
            f'<img src="{_preview(original, side)}" style="max-width:{side}px;max-height:{side}px">'
            if original is not None
            else ""
        )
        cells = "".join(
            f'<td style="vertical-align:top">{_cell_html(comparison.cell(image, v), side)}</td>'
            for v in comparison.variants
        )
        rows.append(
            f'<tr><td style="vertical-align:top">{first}<div style="font-size:85%">'
            f"{html.escape(image)}</div></td>{cells}</tr>"
        )
    return (
        '<table class="photoproc-comparison" style="border-collapse:separate;border-spacing:8px">'
        f"<thead><tr><th>original</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


class ModelComparison(widgets.VBox):
    """Pick images and variants, press Compare, read the grid.

    ``images``: name → encoded bytes; ``variants``: label → options. The first
    selected variant is the reference the agreement is measured against.
    ``on_submit(cb)`` / :meth:`submit` run the comparison (``cb(comparison)``).
    """

    def __init__(
        self,
        images: Mapping[str, bytes],
        variants: Mapping[str, ProcessOptions | Mapping[str, Any]],
        *,
        side: int = 200,
    ) -> None:
        self.images = dict(images)
        self.variants = {label: _as_options(v) for label, v in variants.items()}
        self.side = side
        self.image_picker = widgets.SelectMultiple(
            options=list(self.images), value=tuple(self.images), description="Images", rows=5
        )
        self.variant_picker = widgets.SelectMultiple(
            options=list(self.variants),
            value=tuple(self.variants),
            description="Variants",
            rows=5,
            layout=widgets.Layout(width="min(100%, 28em)"),
        )
        self.run_button = widgets.Button(description="Compare", button_style="primary", icon="play")
        self.grid = widgets.HTML("")
        self.status = widgets.HTML("")
        self.comparison: Comparison | None = None
        self._handlers = widgets.CallbackDispatcher()
        self.run_button.on_click(lambda _: self.submit())
        super().__init__(
            [
                widgets.HBox([self.image_picker, self.variant_picker, self.run_button]),
                self.status,
                self.grid,
            ]
        )

    def on_submit(self, callback: Any, remove: bool = False) -> None:
        self._handlers.register_callback(callback, remove=remove)

    def submit(self) -> Comparison | None:
        images = [(name, self.images[name]) for name in self.image_picker.value]
        variants = {label: self.variants[label] for label in self.variant_picker.value}
        if not images or not variants:
            self.status.value = "<i>Select at least one image and one variant.</i>"
            return None
        self.run_button.disabled = True
        self.status.value = f"<i>Running {len(images) * len(variants)} combinations…</i>"
        try:
            self.comparison = compare_variants(images, variants)
        finally:
            self.run_button.disabled = False
        self.status.value = ""
        self.grid.value = comparison_html(self.comparison, self.side)
        self._handlers(self.comparison)
        return self.comparison


class LiveTuner(widgets.VBox):
    """One image, re-processed whenever a threshold or switch changes (on release)."""

    def __init__(
        self,
        data: bytes,
        options: ProcessOptions | Mapping[str, Any] | None = None,
        *,
        models: Sequence[str] = ("grabcut",),
        side: int = 360,
    ) -> None:
        self.data = data
        self.side = side
        base = _as_options(options or {"model": models[0]})
        self.model = widgets.Dropdown(options=list(models), value=base.model, description="Model")
        slider = {"continuous_update": False, "style": {"description_width": "initial"}}
        self.alpha_matting = widgets.Checkbox(
            value=base.alpha_matting, description="Alpha matting (first use compiles: slow)"
        )
        self.foreground = widgets.IntSlider(
            value=base.alpha_matting_foreground_threshold, min=1, max=255,
            description="Foreground threshold", **slider,
        )  # fmt: skip
        self.background = widgets.IntSlider(
            value=base.alpha_matting_background_threshold, min=0, max=254,
            description="Background threshold", **slider,
        )  # fmt: skip
        self.erode = widgets.IntSlider(
            value=base.alpha_matting_erode_size, min=0, max=40, description="Erode size", **slider
        )
        self.post_process = widgets.Checkbox(
            value=base.post_process_mask, description="Smooth mask"
        )
        self.view = widgets.HTML("")
        self.runs = 0
        self.last: ComparisonCell | None = None
        self._base = base
        for control in (
            self.model, self.alpha_matting, self.foreground, self.background, self.erode,
            self.post_process,
        ):  # fmt: skip
            control.observe(lambda _: self.run(), names="value")
        super().__init__(
            [
                widgets.HBox([self.model, self.alpha_matting, self.post_process]),
                self.foreground,
                self.background,
                self.erode,
                self.view,
            ]
        )
        self.run()

    @property
    def options(self) -> ProcessOptions:
        return self._base.replace(
            model=self.model.value,
            alpha_matting=self.alpha_matting.value,
            alpha_matting_foreground_threshold=self.foreground.value,
            alpha_matting_background_threshold=self.background.value,
            alpha_matting_erode_size=self.erode.value,
            post_process_mask=self.post_process.value,
        )

    def run(self) -> ComparisonCell:
        """Process the image with the current settings and show it."""
        try:
            options = self.options
        except PhotoprocError as exc:
            cell = ComparisonCell("image", "live", 0.0, error=str(exc))
        else:
            comparison = compare_variants([("image", self.data)], {"live": options})
            cell = comparison.cell("image", "live")
        self.runs += 1
        self.last = cell
        self.view.value = _cell_html(cell, self.side)
        return cell
