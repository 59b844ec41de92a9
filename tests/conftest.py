"""Fixtures shared by every test module. Each test uses tmp_path, never the working dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOTOPROC_SHARED_DIR", ROOT.parent / "shared"))


@pytest.fixture(autouse=True)
def _isolated_homes(tmp_path_factory, monkeypatch):
    """No test may read or write the user's model folder or data dir."""
    home = tmp_path_factory.mktemp("rembg-home")
    monkeypatch.setenv("REMBG_HOME", str(home))
    monkeypatch.delenv("U2NET_HOME", raising=False)
    monkeypatch.setenv("PHOTOPROC_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("PHOTOPROC_OFFLINE", "1")
    yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (test photos, YuNet, reference cutouts); skipped on a user's clone."""
    if not (SHARED / "testdata" / "photos").is_dir():
        pytest.skip(f"shared test data not found at {SHARED} (only CI and dev machines have it)")
    return SHARED


@pytest.fixture
def network_attempts(monkeypatch) -> list[str]:
    """Every name lookup or outgoing connection this process tries, refused and recorded.

    "Fails fast offline" is asserted as "never touched the network", not as a time.
    """
    import socket

    tried: list[str] = []

    def lookup(host, *args, **kwargs):
        tried.append(f"lookup {host}")
        raise socket.gaierror(socket.EAI_NONAME, "network disabled by the test")

    def connect(self, address):
        tried.append(f"connect {address}")
        raise ConnectionRefusedError("network disabled by the test")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect)
    return tried
