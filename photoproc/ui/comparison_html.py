"""A comparison as HTML: a table with a row per image and a column per variant, each cell
a preview on a checkerboard with its time, mask agreement and foreground share."""

from __future__ import annotations

import html

import cv2
import numpy as np

from ..analysis import Comparison, ComparisonCell
from .progress import format_duration
from .thumbnails import CHECKERBOARD_CSS, data_url

__all__ = ["cell_html", "comparison_html"]


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


def cell_html(cell: ComparisonCell, side: int) -> str:
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
            f'<td style="vertical-align:top">{cell_html(comparison.cell(image, v), side)}</td>'
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
