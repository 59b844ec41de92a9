"""``GET api/download-results/{job_id}``: one result file, or all of them as a streamed ZIP."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

from tornado.ioloop import IOLoop
from tornado.iostream import StreamClosedError

from .errors import ApiError
from .handler_base import RESULT_MEDIA_TYPES, PhotoprocMixin, content_disposition

__all__ = ["DownloadMixin"]

_CHUNK = 256 << 10


class DownloadMixin(PhotoprocMixin):
    """``GET api/download-results/{job_id}?format=zip|individual[&item=N][&output=K][&name=…]``."""

    async def get(self, job_id: str) -> None:
        job_id = self.job_id_arg(job_id)
        fmt = (self.get_query_argument("format", "zip") or "zip").lower()
        if fmt not in ("zip", "individual"):
            raise ApiError(400, "bad_request", "format must be zip or individual")
        item = self.int_arg("item", None, 0)
        output = self.int_arg("output", None, 0)
        name = self.get_query_argument("name", None) or None
        job = await self.call(self.ctx.service.get, job_id)
        results = await self.call(self.ctx.service.results, job_id)
        if not results:
            if job.ended:
                raise ApiError(404, "no_results", f"job {job_id} has no results")
            raise ApiError(409, "no_results_yet", f"job {job_id} has no results yet")
        if fmt == "zip" and item is None and name is None:
            await self._send_zip(job_id)
        else:
            await self._send_file(self._pick(results, item, output, name))

    def _pick(self, results: list[Any], item: int | None, output: int | None, name: str | None):
        if name is not None:
            for result in results:
                if result.name == name:
                    return result
            raise ApiError(404, "result_not_found", f"no result named {name[:200]!r}")
        if item is None:
            if len(results) == 1:
                return results[0]
            raise ApiError(
                400,
                "bad_request",
                f"the job has {len(results)} results: pass item=N (or name=…), or format=zip",
            )
        of_item = [r for r in results if r.item_index == item]
        index = output or 0
        if index >= len(of_item):
            raise ApiError(404, "result_not_found", f"item {item} has no result {index}")
        return of_item[index]

    async def _send_zip(self, job_id: str) -> None:
        chunks = await self.call(self.ctx.service.results_zip, job_id)
        self.set_header("Content-Type", "application/zip")
        self.set_header("Content-Disposition", content_disposition(f"photoproc-{job_id[:8]}.zip"))
        loop = IOLoop.current()
        try:
            while True:
                chunk = await loop.run_in_executor(None, next, chunks, None)
                if chunk is None:
                    break
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return  # the client went away; nothing to answer
        finally:
            with contextlib.suppress(Exception):
                chunks.close()
        self.finish()

    async def _send_file(self, result: Any) -> None:
        if result.media_type not in RESULT_MEDIA_TYPES:
            raise ApiError(404, "result_not_found", "that result is not an image")
        root = self.ctx.settings.data_dir.resolve()
        path = Path(result.path).resolve()
        if not path.is_relative_to(root):
            raise ApiError(404, "result_not_found", "that result is not available")
        loop = IOLoop.current()
        try:
            handle = await loop.run_in_executor(None, open, path, "rb")
        except OSError:
            raise ApiError(404, "result_not_found", "that result file is gone") from None
        try:
            size = await loop.run_in_executor(None, lambda: Path(handle.name).stat().st_size)
            self.set_header("Content-Type", result.media_type)
            self.set_header("Content-Length", str(size))
            # A finished result never changes (retries write the same bytes): let the
            # page's thumbnails come from the browser cache.
            self.set_header("Cache-Control", "private, max-age=3600")
            self.set_header("Content-Disposition", content_disposition(result.name))
            while True:
                chunk = await loop.run_in_executor(None, handle.read, _CHUNK)
                if not chunk:
                    break
                self.write(chunk)
                await self.flush()
        except StreamClosedError:
            return
        finally:
            handle.close()
        self.finish()
