"""The one route table every host mounts.

``photoproc_routes(service, base_url, flavor=…)`` returns Tornado rules for the same paths and
the same handler mixins; only the base classes differ:

* ``"standalone"`` — ``photoproc serve`` and the Voilà app: Tornado handlers with
  :class:`~photoproc.server.auth.ServerAuth` (optional token, origin policy);
* ``"jupyter"`` — the jupyter_server extension: ``APIHandler`` with every method
  wrapped in ``@web.authenticated`` (``@ws_authenticated`` for the WebSocket),
  so Jupyter's login, token and XSRF checks apply.

Paths, relative to ``ctx.base_url``::

    POST   api/upload-and-process          GET  api/jobs
    GET    api/process-status/{job_id}     DELETE api/jobs/{job_id}
    GET    api/download-results/{job_id}   GET  api/processing-info
    POST   api/cancel-job/{job_id}         GET  api/openapi.json
    GET    health                          WS   ws/job/{job_id}

and the browser page (``static/``) under ``page_url`` when given.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from tornado import web

from . import handlers as h
from .auth import ServerAuth
from .context import ServerContext
from .download_handlers import DownloadMixin
from .upload_handlers import UploadMixin
from .websocket import JobBroadcasts, JobSocketMixin

if TYPE_CHECKING:
    from ..service import PhotoService

__all__ = ["STATIC_DIR", "photoproc_routes"]

STATIC_DIR = Path(__file__).resolve().parent / "static"
Flavor = Literal["standalone", "jupyter"]

_JOB = r"([^/]+)"  # anything: a malformed id gets a JSON 404 from the handler
_HTTP_METHODS = ("get", "post", "put", "patch", "delete", "head")

# (path relative to base_url, mixin, streams its body)
_API: tuple[tuple[str, type, bool], ...] = (
    ("api/upload-and-process", UploadMixin, True),
    (f"api/process-status/{_JOB}", h.StatusMixin, False),
    (f"api/download-results/{_JOB}", DownloadMixin, False),
    (f"api/cancel-job/{_JOB}", h.CancelMixin, False),
    ("api/jobs", h.JobsMixin, False),
    (f"api/jobs/{_JOB}", h.DeleteJobMixin, False),
    ("api/processing-info", h.InfoMixin, False),
    ("api/openapi.json", h.OpenApiMixin, False),
    ("health", h.HealthMixin, False),
    (r"api(?:/.*)?", h.NotFoundMixin, False),
)


def _compose(mixin: type, base: type, *, wrap: Any = None, stream: bool = False) -> type:
    """``class X(mixin, base)``, its HTTP methods wrapped for the jupyter flavour."""
    attrs: dict[str, Any] = {"__module__": __name__}
    if wrap is not None:
        for name in _HTTP_METHODS:
            method = getattr(mixin, name, None)
            if method is not None:
                attrs[name] = wrap(method)
    name = mixin.__name__.removesuffix("Mixin") + ("Handler" if wrap is None else "JupyterHandler")
    cls = type(name, (mixin, base), attrs)
    return web.stream_request_body(cls) if stream else cls


def _bases(flavor: Flavor) -> tuple[type, type, type, Any, Any]:
    """(api base, socket base, page base, method wrapper, socket wrapper)."""
    if flavor == "jupyter":
        from jupyter_server.auth.decorator import ws_authenticated

        from .jupyter_bases import JupyterApiHandler, JupyterPageHandler, JupyterSocketHandler

        return (
            JupyterApiHandler,
            JupyterSocketHandler,
            JupyterPageHandler,
            web.authenticated,
            ws_authenticated,
        )
    from .bases import StandaloneApiHandler, StandalonePageHandler, StandaloneSocketHandler

    return StandaloneApiHandler, StandaloneSocketHandler, StandalonePageHandler, None, None


def photoproc_routes(
    service: PhotoService | ServerContext,
    base_url: str = "/",
    *,
    flavor: Flavor = "standalone",
    page_url: str | None = None,
    static_dir: Path | None = None,
    token: str | None = None,
    cors_origins: Iterable[str] = (),
    catch_all: bool = True,
) -> list[tuple[str, type, dict[str, Any]]]:
    """The rules to mount (prepend them before a host's catch-all handlers).

    ``service`` is a :class:`PhotoService` (the context is built from ``base_url``,
    ``token`` and ``cors_origins``) or a ready :class:`ServerContext`. ``page_url``
    (``"/"`` standalone, ``"…/photoproc/"`` elsewhere) serves ``static_dir``
    (default: the package's ``static/``) with ``index.html``. ``catch_all=False``
    leaves out the JSON 404 for unknown ``api/…`` paths, for hosts (Voilà) whose own
    handlers live under ``api/`` too.
    """
    if isinstance(service, ServerContext):
        ctx = service
    else:
        auth = ServerAuth.create(token, cors_origins) if flavor == "standalone" else None
        ctx = ServerContext(service, service.settings, base_url, auth)
    if ctx.broadcasts is None:  # one set per context, however many tables share it
        ctx.broadcasts = JobBroadcasts(ctx)
    api_base, socket_base, page_base, wrap, ws_wrap = _bases(flavor)
    prefix = re.escape(ctx.base_url)
    kwargs = {"ctx": ctx}
    rules: list[tuple[str, type, dict[str, Any]]] = [
        (prefix + path, _compose(mixin, api_base, wrap=wrap, stream=stream), kwargs)
        for path, mixin, stream in _API
        if catch_all or mixin is not h.NotFoundMixin
    ]
    socket = type(
        "JobSocketHandler" if ws_wrap is None else "JobSocketJupyterHandler",
        (JobSocketMixin, socket_base),
        {"__module__": __name__, **({"get": ws_wrap(JobSocketMixin.get)} if ws_wrap else {})},
    )
    rules.insert(
        len(rules) - 1 if catch_all else len(rules), (prefix + f"ws/job/{_JOB}", socket, kwargs)
    )
    if page_url is not None:
        page = page_url if page_url.endswith("/") else page_url + "/"
        static = {"path": str(static_dir or STATIC_DIR), "default_filename": "index.html"}
        if page != "/":
            redirect = _redirect_handler(flavor)
            rules.append((re.escape(page.rstrip("/")), redirect, {"url": page}))
        rules.append((re.escape(page) + "(.*)", page_base, static))
    return rules


def _redirect_handler(flavor: Flavor) -> type:
    if flavor == "jupyter":
        from .jupyter_bases import JupyterRedirectHandler

        return JupyterRedirectHandler
    return web.RedirectHandler
