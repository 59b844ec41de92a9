"""Choosing what to process: browser uploads (images, ZIPs) and, in JupyterLab, server paths.

A ``FileUpload`` selection travels to the kernel as *one* WebSocket message.
Over the host's message limit (``websocket_max_message_size``, 100 MiB in
photoproc's ``voila.json``; :data:`UPLOAD_MESSAGE_LIMIT` is what the page
promises) the server drops it without a word: the button still counts the files but the kernel never receives them. The
limit is therefore written next to the button, and when "Process" finds nothing
received the message says what probably happened and points to the REST upload,
which streams any size to disk.

The folder/glob field reads files *on the server*. It is meant for JupyterLab
users working on their own machine and is hidden under Voilà, where the person
at the browser is not the owner of the server's files.
"""

from __future__ import annotations

import glob
import html
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ipywidgets as widgets

from .env import api_base_url, running_in_voila

__all__ = ["ACCEPT", "UPLOAD_MESSAGE_LIMIT", "UploadBox", "format_bytes"]

#: What one upload selection may weigh, as stated on screen. ``voila.json`` sets
#: ``websocket_max_message_size`` to 100 MiB (104,857,600 bytes; standalone Voilà
#: cannot go much past it): the difference covers the message's own overhead.
UPLOAD_MESSAGE_LIMIT = 100_000_000
#: File chooser filter: common photo formats and ZIP archives (content is sniffed anyway).
ACCEPT = "image/*,.jpg,.jpeg,.png,.webp,.bmp,.tif,.tiff,.gif,.heic,.heif,.zip"


def format_bytes(size: float) -> str:
    """``1536`` → ``"1.5 KB"`` (decimal units, as file managers show them)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1000 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1000
    raise AssertionError("unreachable")


class UploadBox(widgets.VBox):
    """Upload button, optional server path field and a "Process" button.

    ``on_submit(callback)`` registers ``callback(inputs)``, called by the button
    or :meth:`submit` with a list that :meth:`PhotoService.submit` accepts:
    ``(name, bytes)`` pairs for uploaded files and :class:`~pathlib.Path` values
    for the server paths.
    """

    def __init__(
        self,
        *,
        max_message_bytes: int = UPLOAD_MESSAGE_LIMIT,
        allow_paths: bool | None = None,
        rest_url: str | None = None,
        button_text: str = "Process",
    ) -> None:
        self.max_message_bytes = max_message_bytes
        self.allow_paths = (not running_in_voila()) if allow_paths is None else allow_paths
        if rest_url is None:
            base = api_base_url()
            rest_url = f"{base}api/upload-and-process" if base else None
        self.rest_url = rest_url
        self.file_upload = widgets.FileUpload(
            accept=ACCEPT, multiple=True, description="Choose photos or ZIPs"
        )
        self.file_upload.layout.width = "auto"
        self.path = widgets.Text(
            description="Server path",
            continuous_update=False,
            placeholder="a folder, a ZIP or a glob such as ~/photos/**/*.jpg",
            layout=widgets.Layout(width="min(100%, 40em)"),
            style={"description_width": "initial"},
        )
        self.path.layout.display = None if self.allow_paths else "none"
        self.limit_note = widgets.HTML(self._limit_html())
        self.limit_note.add_class("photoproc-upload-limit")
        self.summary = widgets.HTML()
        self.summary.add_class("photoproc-upload-summary")
        self.submit_button = widgets.Button(
            description=button_text, button_style="primary", icon="play"
        )
        self.submit_button.add_class("photoproc-process")
        self._submit_handlers = widgets.CallbackDispatcher()
        self.submit_button.on_click(lambda _: self.submit())
        self.file_upload.observe(self._on_files, names="value")
        super().__init__(
            [
                widgets.HBox([self.file_upload, self.submit_button]),
                self.path,
                self.limit_note,
                self.summary,
            ]
        )
        self.add_class("photoproc-upload")

    # -- events ---------------------------------------------------------------------------

    def on_submit(self, callback: Callable[[list[Any]], Any], remove: bool = False) -> None:
        """Register ``callback(inputs)`` for the "Process" button (``remove=True`` drops it)."""
        self._submit_handlers.register_callback(callback, remove=remove)

    def submit(self) -> list[Any] | None:
        """What the button does: collect the inputs and hand them to the callbacks.

        Returns the inputs, or ``None`` (and says why on screen) when there are none.
        """
        try:
            inputs = self.inputs()
        except ValueError as exc:
            self.show_message(str(exc), error=True)
            return None
        if not inputs:
            self.show_message(self._nothing_received_html(), error=True, raw=True)
            return None
        self._submit_handlers(inputs)
        return inputs

    # -- values ---------------------------------------------------------------------------

    @property
    def uploaded(self) -> list[tuple[str, bytes]]:
        """The files received from the browser, as ``(name, bytes)``."""
        return [(str(f["name"]), bytes(f["content"])) for f in self.file_upload.value]

    def server_paths(self) -> list[Path]:
        """The server path field expanded: a folder or file as is, a glob to its matches.

        Raises :class:`ValueError` naming the pattern when nothing matches.
        """
        text = self.path.value.strip()
        if not text or not self.allow_paths:
            return []
        pattern = os.path.expanduser(text)
        if glob.has_magic(pattern):
            matches = sorted(glob.glob(pattern, recursive=True))
            files = [Path(m) for m in matches if os.path.isfile(m)]
            if not files:
                raise ValueError(f"no file matches {text}")
            return files
        path = Path(pattern)
        if not path.exists():
            raise ValueError(f"{text} does not exist on the server")
        return [path]

    def inputs(self) -> list[Any]:
        return [*self.uploaded, *self.server_paths()]

    def clear(self) -> None:
        """Forget the selection (after a job was created from it)."""
        self.file_upload.value = ()
        self.path.value = ""
        self.summary.value = ""

    def show_message(self, text: str, *, error: bool = False, raw: bool = False) -> None:
        body = text if raw else html.escape(text)
        colour = "#b00020" if error else "inherit"
        self.summary.value = f'<span style="color:{colour}">{body}</span>'

    # -- internals ------------------------------------------------------------------------

    def _on_files(self, change: dict[str, Any]) -> None:
        files = change["new"]
        if not files:
            return
        total = sum(int(f.get("size") or len(f["content"])) for f in files)
        names = ", ".join(html.escape(str(f["name"])) for f in files[:5])
        more = f" and {len(files) - 5} more" if len(files) > 5 else ""
        self.show_message(
            f"{len(files)} file{'s' if len(files) != 1 else ''} received "
            f"({format_bytes(total)}): {names}{more}",
            raw=True,
        )

    def _rest_hint(self) -> str:
        if self.rest_url:
            url = html.escape(self.rest_url)
            return f"use the REST upload (<code>POST {url}</code>, any size, streamed to disk)"
        return "use the REST upload (<code>POST …/api/upload-and-process</code> of <code>photoproc serve</code>)"

    def _limit_html(self) -> str:
        return (
            f"<small>Up to <b>{format_bytes(self.max_message_bytes)}</b> per selection: the "
            "browser sends the files in one message and the server drops a bigger one "
            f"without a word. For more, pick fewer files at a time or {self._rest_hint()}."
            "</small>"
        )

    def _nothing_received_html(self) -> str:
        return (
            "No file has been received. Choose photos or a ZIP first. If you did choose "
            f"some, the selection was probably over the {format_bytes(self.max_message_bytes)} "
            f"limit and was dropped on the way: {self._rest_hint()}."
        )
