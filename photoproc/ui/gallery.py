"""Originals and results side by side, a page at a time, with a larger view of one pair.

Results are drawn over a checkerboard (CSS on the ``<img>`` itself), so what
the cutout made transparent is visible. Each pair says how long the image took
and shows its warnings ("no face detected"); a failed image shows its error
where the result would be. Pairs are rebuilt only when their item changed, so
:meth:`Gallery.refresh` during a running job costs the few new thumbnails.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import ipywidgets as widgets

from ..errors import PhotoprocError
from ..fsutil import contained
from ..jobs import Item, ItemStatus
from .progress import format_duration, item_seconds
from .thumbnails import CHECKERBOARD_CSS, ThumbnailCache

if TYPE_CHECKING:
    from ..service import PhotoService

__all__ = ["Gallery"]

_PLACEHOLDER = {
    ItemStatus.PENDING: "waiting…",
    ItemStatus.PROCESSING: "processing…",
    ItemStatus.CANCELLED: "cancelled",
}


def _box(text: str, side: int, colour: str = "#777", css_class: str = "") -> str:
    return (
        f'<div class="{css_class}" style="width:{side}px;min-height:{side // 2}px;'
        f"display:flex;align-items:center;justify-content:center;text-align:center;"
        f'border:1px dashed #bbb;color:{colour};padding:6px;box-sizing:border-box">{text}</div>'
    )


def _img(url: str, side: int, title: str, *, checker: bool = False) -> str:
    style = f"max-width:{side}px;max-height:{side}px;display:block;"
    if checker:
        style += CHECKERBOARD_CSS
    return (
        f'<img src="{url}" alt="{html.escape(title)}" title="{html.escape(title)}" style="{style}">'
    )


class Gallery(widgets.VBox):
    """The items of one job, ``page_size`` pairs per page.

    :meth:`show` loads a job, :meth:`refresh` picks up new results,
    :meth:`set_page` / the arrow buttons page, :meth:`show_item` shows one pair large
    (``on_open(cb)`` is told the item index) and :meth:`hide_item` hides it again.
    """

    page: int

    def __init__(
        self, *, page_size: int = 12, thumb_side: int = 220, large_side: int = 720
    ) -> None:
        self.page_size = page_size
        self.thumb_side = thumb_side
        self.large_side = large_side
        self.thumbnails = ThumbnailCache()
        self.summary = widgets.HTML("")
        self.summary.add_class("photoproc-gallery-summary")
        self.grid = widgets.GridBox(
            layout=widgets.Layout(
                grid_template_columns=f"repeat(auto-fill, minmax({2 * thumb_side + 40}px, 1fr))",
                grid_gap="12px",
                width="100%",
            )
        )
        self.grid.add_class("photoproc-gallery-grid")
        self.prev_button = widgets.Button(description="Previous", icon="chevron-left")
        self.next_button = widgets.Button(description="Next", icon="chevron-right")
        self.page_label = widgets.HTML("")
        self.pager = widgets.HBox([self.prev_button, self.page_label, self.next_button])
        self.pager.layout.display = "none"
        self.prev_button.on_click(lambda _: self.set_page(self.page - 1))
        self.next_button.on_click(lambda _: self.set_page(self.page + 1))
        self.detail = widgets.HTML("")
        self.detail.add_class("photoproc-detail")
        self.close_button = widgets.Button(description="Close", icon="times")
        self.close_button.on_click(lambda _: self.hide_item())
        self.detail_box = widgets.VBox([self.close_button, self.detail])
        self.detail_box.layout.display = "none"
        self._open_handlers = widgets.CallbackDispatcher()
        self._lock = threading.RLock()
        self._service: PhotoService | None = None
        self._job_id: str | None = None
        self._total = 0
        self.page = 0
        self.selected: int | None = None
        #: item index → (item state key, pair widget) for the current page.
        self._pairs: dict[int, tuple[tuple, widgets.VBox]] = {}
        super().__init__([self.summary, self.pager, self.detail_box, self.grid])
        self.add_class("photoproc-gallery")

    # -- loading --------------------------------------------------------------------------

    @property
    def job_id(self) -> str | None:
        return self._job_id

    @property
    def pages(self) -> int:
        return max(1, -(-self._total // self.page_size))

    def show(self, service: PhotoService, job_id: str, *, page: int = 0) -> None:
        """Load ``job_id``'s gallery at ``page``."""
        with self._lock:
            if job_id != self._job_id:
                self._drop_pairs(self._pairs)
                self._pairs = {}
                self.hide_item()
            self._service = service
            self._job_id = job_id
            self.page = page
            self.refresh()

    def clear(self) -> None:
        with self._lock:
            self._service = None
            self._job_id = None
            self._total = 0
            self.grid.children = ()
            self._drop_pairs(self._pairs)
            self._pairs = {}
            self.summary.value = ""
            self.pager.layout.display = "none"
            self.hide_item()

    def set_page(self, page: int) -> None:
        with self._lock:
            page = min(max(0, page), self.pages - 1)
            if page != self.page:
                self.page = page
                self.refresh()

    def refresh(self) -> None:
        """Re-read the current page; only pairs whose item changed are redrawn."""
        with self._lock:
            if self._service is None or self._job_id is None:
                return
            job = self._service.get(self._job_id)
            self._total = job.total
            self.page = min(self.page, self.pages - 1)
            items = self._service.items(
                self._job_id, offset=self.page * self.page_size, limit=self.page_size
            )
            pairs: dict[int, tuple[tuple, widgets.VBox]] = {}
            for item in items:
                key = (item.status, item.updated_at, item.outputs, item.error)
                old = self._pairs.pop(item.index, None)
                if old is None:
                    pairs[item.index] = (key, self._pair(item))
                else:
                    if old[0] != key:
                        self._draw_pair(old[1], item)
                    pairs[item.index] = (key, old[1])
            stale, self._pairs = self._pairs, pairs
            self.grid.children = tuple(pair for _, pair in pairs.values())
            self._drop_pairs(stale)
            self.summary.value = self._summary_html(job.total, job.processed, job.failed)
            self.pager.layout.display = None if self.pages > 1 else "none"
            self.page_label.value = f"&nbsp;page <b>{self.page + 1}</b> of {self.pages}&nbsp;"
            self.prev_button.disabled = self.page == 0
            self.next_button.disabled = self.page >= self.pages - 1
            if self.selected is not None:
                self._render_detail(self.selected)

    # -- the larger view ------------------------------------------------------------------

    def on_open(self, callback: Callable[[int], Any], remove: bool = False) -> None:
        self._open_handlers.register_callback(callback, remove=remove)

    def show_item(self, index: int) -> None:
        """Show item ``index`` large: original and every result, timings, warnings, error."""
        with self._lock:
            self.selected = index
            self._render_detail(index)
            self.detail_box.layout.display = None
        self._open_handlers(index)

    def hide_item(self) -> None:
        self.selected = None
        self.detail.value = ""
        self.detail_box.layout.display = "none"

    # -- rendering ------------------------------------------------------------------------

    def _summary_html(self, total: int, processed: int, failed: int) -> str:
        done = processed - failed
        text = f"<b>{done}</b> of {total} image{'s' if total != 1 else ''} done"
        if failed:
            text += f', <b style="color:#b00020">{failed} failed</b>'
        return text

    def _original(self, item: Item, side: int) -> str:
        assert self._service is not None and self._job_id is not None
        try:
            path = self._service.input_path(self._job_id, item.index)
        except PhotoprocError:
            return _box("no preview (the input was not stored)", side)
        url = self.thumbnails.get_or(path, side, lambda exc: "")
        if not url:
            return _box("no preview (not a readable image)", side)
        return _img(url, side, f"original: {item.name}")

    def _output_paths(self, item: Item) -> list[Path]:
        assert self._service is not None
        paths = []
        for output in item.outputs:
            try:
                paths.append(contained(self._service.data_dir, output))
            except ValueError:  # never serve a path outside the data dir
                continue
        return paths

    def _results(self, item: Item, side: int) -> str:
        if item.status is ItemStatus.FAILED:
            return _box(
                f"<b>failed</b><br>{html.escape(item.error or 'unknown error')}",
                side,
                "#b00020",
                "photoproc-error",
            )
        if item.status is not ItemStatus.DONE:
            return _box(_PLACEHOLDER.get(item.status, item.status.value), side)
        shown = []
        for path in self._output_paths(item):
            url = self.thumbnails.get_or(path, side, lambda exc: "")
            if url:
                shown.append(_img(url, side, f"result: {path.name}", checker=True))
        if not shown:
            return _box("the result file is missing", side, "#b00020", "photoproc-error")
        return '<div style="display:flex;flex-wrap:wrap;gap:4px">' + "".join(shown) + "</div>"

    def _caption(self, item: Item) -> str:
        parts = [f"<b>{html.escape(item.name)}</b>"]
        if item.width and item.height:
            parts.append(f"{item.width}×{item.height}")
        if item.status is ItemStatus.DONE and item.timings:
            parts.append(format_duration(item_seconds(item)))
        if len(item.outputs) > 1:
            parts.append(f"{len(item.outputs)} results")
        text = " · ".join(parts)
        for warning in item.warnings:
            text += f'<br><span style="color:#b26a00">⚠ {html.escape(warning)}</span>'
        return f'<div class="photoproc-caption" style="font-size:90%">{text}</div>'

    def _pair(self, item: Item) -> widgets.VBox:
        """A new pair widget: the two pictures with a caption, and a "Larger view" button."""
        enlarge = widgets.Button(description="Larger view", icon="search-plus")
        enlarge.layout.width = "auto"
        enlarge.on_click(lambda _, index=item.index: self.show_item(index))
        pair = widgets.VBox([widgets.HTML(), enlarge])
        pair.layout.border = "1px solid #ddd"
        pair.layout.padding = "6px"
        pair.add_class("photoproc-pair")
        self._draw_pair(pair, item)
        return pair

    def _draw_pair(self, pair: widgets.VBox, item: Item) -> None:
        """Show ``item``'s current state in an existing pair (no new widgets, no new comms)."""
        body, enlarge = pair.children
        side = self.thumb_side
        body.value = (
            '<div style="display:flex;gap:8px;align-items:flex-start">'
            f'<div class="photoproc-original">{self._original(item, side)}</div>'
            f'<div class="photoproc-result">{self._results(item, side)}</div>'
            f"</div>{self._caption(item)}"
        )
        enlarge.disabled = item.status in (ItemStatus.PENDING, ItemStatus.PROCESSING)
        with pair.hold_sync():
            for status in ItemStatus:
                if status is not item.status:
                    pair.remove_class(f"photoproc-{status.value}")
            pair.add_class(f"photoproc-{item.status.value}")

    @staticmethod
    def _drop_pairs(pairs: dict[int, tuple[tuple, widgets.VBox]]) -> None:
        # Widgets no longer shown are closed, or their comms would pile up in the kernel.
        for _, pair in pairs.values():
            for child in pair.children:
                child.close()
            pair.close()

    def _render_detail(self, index: int) -> None:
        if self._service is None or self._job_id is None:
            return
        try:
            (item,) = self._service.items(self._job_id, offset=index, limit=1)
        except ValueError:
            self.detail.value = ""
            return
        side = self.large_side
        timings = ", ".join(
            f"{stage} {format_duration(sec)}" for stage, sec in item.timings.items()
        )
        facts = [f"status: {item.status.value}"]
        if timings:
            facts.append(f"time: {timings}")
        if item.attempts > 1:
            facts.append(f"attempts: {item.attempts}")
        self.detail.value = (
            f"<h4 style='margin:4px 0'>{index + 1}. {html.escape(item.name)}</h4>"
            f"<div style='font-size:90%'>{html.escape(' · '.join(facts))}</div>"
            '<div style="display:flex;gap:12px;flex-wrap:wrap;align-items:flex-start">'
            f"<div>{self._original(item, side)}</div><div>{self._results(item, side)}</div>"
            f"</div>{self._caption(item)}"
        )
