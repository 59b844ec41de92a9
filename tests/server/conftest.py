"""A real photoproc server per test module, on a free 127.0.0.1 port.

The server's worker runs its pipeline in child processes, which inherit the
environment when they start: the module-scoped fixtures therefore set the same
isolation as the autouse fixture in ``tests/conftest.py`` (temporary REMBG_HOME,
PHOTOPROC_OFFLINE=1, a temporary data dir) before starting anything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from httpkit import Api, LiveServer

from photoproc.config import Settings


@pytest.fixture(scope="module")
def isolated_env(tmp_path_factory) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("REMBG_HOME", str(tmp_path_factory.mktemp("server-rembg")))
        mp.delenv("U2NET_HOME", raising=False)
        mp.setenv("PHOTOPROC_OFFLINE", "1")
        mp.setenv("PHOTOPROC_DATA_DIR", str(tmp_path_factory.mktemp("server-env-data")))
        yield


@pytest.fixture(scope="module")
def server_factory(isolated_env, tmp_path_factory) -> Iterator[Callable[..., LiveServer]]:
    """``server_factory(token=…, cors_origins=…, **settings)``: more servers for this module."""
    started: list[LiveServer] = []

    def start(*, settings: dict[str, Any] | None = None, **kwargs: Any) -> LiveServer:
        values = {"workers": 1, "item_timeout": 60.0, **(settings or {})}
        data = tmp_path_factory.mktemp("server-data")
        live = LiveServer(Settings(data_dir=data, **values), **kwargs)
        started.append(live)
        return live

    yield start
    for live in reversed(started):
        live.stop()


@pytest.fixture(scope="module")
def server(server_factory) -> LiveServer:
    """The module's default server: no token, defaults, one pipeline process."""
    return server_factory()


@pytest.fixture
def api(server) -> Api:
    return Api(server.url)
