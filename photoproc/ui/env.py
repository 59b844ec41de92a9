"""Where the widgets run: Voilà, a Jupyter server with the photoproc extension, or neither.

A kernel cannot ask its server for its URL, but servers tell kernels through
the environment: Voilà sets ``VOILA_BASE_URL`` (preheated kernels included),
jupyter_server sets ``JPY_SESSION_NAME`` for kernels of a notebook session, and
JupyterHub sets ``JUPYTERHUB_SERVICE_PREFIX``. ``PHOTOPROC_API_BASE_URL``
overrides the guess (a proxy, a non-default ``base_url``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from urllib.parse import quote

__all__ = ["api_base_url", "api_url", "running_in_voila"]


def running_in_voila(env: Mapping[str, str] | None = None) -> bool:
    """This kernel was started by Voilà (to render a page, or preheated for one)."""
    env = os.environ if env is None else env
    return "VOILA_BASE_URL" in env or "VOILA_KERNEL_ID" in env


def api_base_url(env: Mapping[str, str] | None = None) -> str | None:
    """The URL path under which the photoproc API (``api/…``) answers for this
    kernel's browser, ending with ``/``; ``None`` when no host is known to serve it.

    * ``PHOTOPROC_API_BASE_URL`` when set;
    * under Voilà, ``VOILA_BASE_URL``: ``photoproc app`` mounts the API beside the page;
    * in a Jupyter server (``JPY_SESSION_NAME``), the extension's
      ``{base_url}photoproc/``, the base taken from ``JUPYTERHUB_SERVICE_PREFIX``
      (``/`` elsewhere).
    """
    env = os.environ if env is None else env
    explicit = env.get("PHOTOPROC_API_BASE_URL", "").strip()
    if explicit:
        return explicit if explicit.endswith("/") else explicit + "/"
    if env.get("VOILA_BASE_URL"):
        base = env["VOILA_BASE_URL"]
        return base if base.endswith("/") else base + "/"
    if env.get("JPY_SESSION_NAME"):
        base = env.get("JUPYTERHUB_SERVICE_PREFIX") or "/"
        return (base if base.endswith("/") else base + "/") + "photoproc/"
    return None


def api_url(path: str, env: Mapping[str, str] | None = None) -> str | None:
    """``api_base_url() + path``, with ``?token=`` when the host wants one
    (``PHOTOPROC_TOKEN``, which ``photoproc app --token`` exports to its kernels:
    a browser cannot add an ``Authorization`` header to a plain link)."""
    env = os.environ if env is None else env
    base = api_base_url(env)
    if base is None:
        return None
    url = base + path.lstrip("/")
    token = env.get("PHOTOPROC_TOKEN", "").strip()
    if token:
        url += ("&" if "?" in url else "?") + "token=" + quote(token, safe="")
    return url
