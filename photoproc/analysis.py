"""Comparing models and parameter sets on a few images: timings and mask agreement.

:func:`compare_variants` runs :func:`~photoproc.pipeline.process.process_image`
for every image × variant in this process (a comparison is a handful of images,
and the timings should not include queueing) and measures how much each
variant's mask agrees with the first one's (intersection over union of the
``alpha > 127`` pixels). The notebook widgets that show it live in
:mod:`photoproc.ui.compare` and :mod:`photoproc.ui.tuner`; this module has no
widgets and works in any script.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .errors import PhotoprocError
from .options import ProcessOptions
from .pipeline.process import process_image

__all__ = [
    "Comparison",
    "ComparisonCell",
    "Images",
    "as_options",
    "compare_variants",
    "iou",
    "mask_of",
]

Images = Mapping[str, bytes] | Iterable[tuple[str, bytes]]


def iou(a: np.ndarray, b: np.ndarray) -> float:
    """Intersection over union of two masks (``> 127`` is foreground); 1.0 when both are empty."""
    fa, fb = a > 127, b > 127
    union = np.count_nonzero(fa | fb)
    return 1.0 if union == 0 else np.count_nonzero(fa & fb) / union


def mask_of(pixels: np.ndarray | None) -> np.ndarray | None:
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


def as_options(value: ProcessOptions | Mapping[str, Any]) -> ProcessOptions:
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
    options = {name: as_options(value) for name, value in variants.items()}
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
                mask=mask_of(pixels),
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
