"""``WS ws/job/{job_id}``: live job progress, one service subscription per job.

A page, a script and a benchmark's 200 watchers of one job share a single
:meth:`PhotoService.subscribe` (already throttled to about 10 events a second
and always ending with the terminal state). Each event is turned into its JSON
message once, on the executor — listing the items is a database query — and
the same text is written to every socket watching that job. Messages have the
``process-status`` shape plus ``"event": "progress" | "final"``; after the
final one the server closes the socket (code 1000). A text ``ping`` is
answered with ``pong`` (and ``{"type": "ping"}`` with ``{"type": "pong"}``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from tornado.ioloop import IOLoop
from tornado.websocket import WebSocketClosedError

from ..errors import PhotoprocError
from .handler_base import PhotoprocMixin

if TYPE_CHECKING:
    from ..jobs import Job
    from .context import ServerContext

__all__ = ["JobBroadcast", "JobBroadcasts", "JobSocketMixin"]

log = logging.getLogger("photoproc.server")
#: sockets written per IOLoop turn when a message goes out.
_BATCH = 50


class JobBroadcast:
    """The sockets watching one job and the subscription that feeds them."""

    def __init__(self, owner: JobBroadcasts, job_id: str) -> None:
        self.owner = owner
        self.job_id = job_id
        self.sockets: set[JobSocketMixin] = set()
        self.last_message: bytes | None = None
        self.ended = False
        self._loop = IOLoop.current()
        self._pending: Job | None = None
        self._pumping = False
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        # The first callback may run inside subscribe(); everything after goes
        # through the IOLoop, so ordering is the service's ordering.
        self._unsubscribe = self.owner.ctx.service.subscribe(self.job_id, self._on_job)

    def _on_job(self, job: Job) -> None:
        """From a service thread: hand the newest state to the IOLoop."""
        self._loop.add_callback(self._receive, job)

    def _receive(self, job: Job) -> None:
        if self.ended:
            return
        self._pending = job  # only the newest state matters; older ones are skipped
        if not self._pumping:
            self._pumping = True
            self._loop.add_callback(self._pump)

    async def _pump(self) -> None:
        try:
            while self._pending is not None and not self.ended:
                job, self._pending = self._pending, None
                message = await self._loop.run_in_executor(None, self.owner.message, job)
                self.last_message = message
                for count, socket in enumerate(list(self.sockets), 1):
                    socket.send_text(message, final=job.ended)
                    if count % _BATCH == 0:
                        # Let other requests in between: 200 writes take ~15 ms.
                        await asyncio.sleep(0)
                if job.ended:
                    self.finish()
        except PhotoprocError:  # the job was deleted meanwhile: nothing more to say
            self.finish()
        except Exception:
            log.exception("progress broadcast for job %s failed", self.job_id)
            self.finish()
        finally:
            self._pumping = False

    def add(self, socket: JobSocketMixin) -> None:
        self.sockets.add(socket)
        if self.last_message is not None:
            socket.send_text(self.last_message, final=False)

    def remove(self, socket: JobSocketMixin) -> None:
        if socket not in self.sockets:
            return
        self.sockets.discard(socket)
        if not self.sockets and not self.ended:
            self.finish()

    def finish(self) -> None:
        """Unsubscribe; sockets still attached are closed (nothing more will come)."""
        if self.ended:
            return
        self.ended = True
        self.owner.forget(self)
        if self._unsubscribe is not None:
            unsubscribe, self._unsubscribe = self._unsubscribe, None
            with contextlib.suppress(Exception):
                unsubscribe()
        for socket in list(self.sockets):
            socket.close_quietly()
        self.sockets.clear()


class JobBroadcasts:
    """Every job being watched through one route table, by job id."""

    def __init__(self, ctx: ServerContext) -> None:
        self.ctx = ctx
        self._by_job: dict[str, JobBroadcast] = {}

    def join(self, job_id: str, socket: JobSocketMixin) -> None:
        broadcast = self._by_job.get(job_id)
        if broadcast is None:
            broadcast = JobBroadcast(self, job_id)
            self._by_job[job_id] = broadcast
            broadcast.add(socket)
            try:
                broadcast.start()
            except PhotoprocError:  # deleted between the check and now
                broadcast.finish()
            return
        broadcast.add(socket)

    def leave(self, job_id: str, socket: JobSocketMixin) -> None:
        broadcast = self._by_job.get(job_id)
        if broadcast is not None:
            broadcast.remove(socket)

    def forget(self, broadcast: JobBroadcast) -> None:
        if self._by_job.get(broadcast.job_id) is broadcast:
            del self._by_job[broadcast.job_id]

    def message(self, job: Job) -> bytes:
        """The JSON text sent for ``job``, UTF-8 encoded once for every socket (runs on
        the executor: it lists the items)."""
        items = None
        if job.total <= self.ctx.ws_items_limit:
            items = self.ctx.service.items(job.id)
        data: dict[str, Any] = job.to_dict(items)
        data["event"] = "final" if job.ended else "progress"
        return json.dumps(data, separators=(",", ":")).encode()

    def watched(self) -> dict[str, int]:
        """Job id → number of sockets (for tests and health)."""
        return {job_id: len(b.sockets) for job_id, b in self._by_job.items()}

    def close(self) -> None:
        for broadcast in list(self._by_job.values()):
            broadcast.finish()


class JobSocketMixin(PhotoprocMixin):
    """Mixed into a ``WebSocketHandler`` (plus the host's auth) by the route table."""

    job_id: str | None = None

    # Provided by WebSocketHandler.
    write_message: Callable[..., Any]
    close: Callable[..., None]

    async def get(self, job_id: str) -> None:
        # Refuse unknown jobs with a plain 404 before the upgrade, like the REST routes.
        job_id = self.job_id_arg(job_id)
        await self.call(self.ctx.service.get, job_id)
        await super().get(job_id)  # type: ignore[misc]

    def open(self, job_id: str) -> Any:
        self.job_id = self.job_id_arg(job_id)
        result = super().open(job_id)  # type: ignore[misc]
        self.ctx.job_broadcasts().join(self.job_id, self)
        return result

    def on_message(self, message: str | bytes) -> None:
        text = message.decode("utf-8", "replace") if isinstance(message, bytes) else message
        text = text.strip()
        if text.lower() == "ping":
            self._write("pong")
            return
        with contextlib.suppress(ValueError, AttributeError):
            if json.loads(text).get("type") == "ping":
                self._write(json.dumps({"type": "pong"}))

    def on_close(self) -> None:
        if self.job_id is not None:
            self.ctx.job_broadcasts().leave(self.job_id, self)

    def send_text(self, text: str | bytes, *, final: bool) -> None:
        """Send one text frame (bytes must be UTF-8); after the final one, close."""
        if self._write(text) and final:
            self.close(1000, "job ended")

    def close_quietly(self) -> None:
        with contextlib.suppress(Exception):
            self.close(1001, "no more progress")

    def _write(self, text: str | bytes) -> bool:
        try:
            self.write_message(text)  # bytes with binary=False go out as a text frame
        except WebSocketClosedError:
            return False
        return True
