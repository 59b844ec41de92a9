"""Fixtures shared by every test module. Each test uses tmp_path, never the working dir."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from photoproc.pipeline.models import installed_path

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PHOTOPROC_SHARED_DIR", ROOT.parent / "shared"))
#: rembg's pinned checksum of the real u2netp weights.
U2NETP_MD5 = "8e83ca70e441ab06c318d82300c84806"
# Looked up before any test isolates the model folder: `make test` pulls u2netp there.
_USER_U2NETP = installed_path("u2netp")


@pytest.fixture(autouse=True)
def _isolated_homes(tmp_path_factory, monkeypatch):
    """No test may read or write the user's model folder or data dir."""
    home = tmp_path_factory.mktemp("rembg-home")
    monkeypatch.setenv("REMBG_HOME", str(home))
    monkeypatch.delenv("U2NET_HOME", raising=False)
    monkeypatch.setenv("PHOTOPROC_DATA_DIR", str(tmp_path_factory.mktemp("data")))
    monkeypatch.setenv("PHOTOPROC_OFFLINE", "1")
    # A test that lifts PHOTOPROC_OFFLINE may reach `models pull`'s pip fallback: no index,
    # no user pip.conf, so pip sees only the find-links folder a test gives it.
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    yield


@pytest.fixture(scope="session")
def shared_dir() -> Path:
    """../shared (test photos, YuNet, reference cutouts); skipped on a user's clone."""
    if not (SHARED / "testdata" / "photos").is_dir():
        pytest.skip(f"shared test data not found at {SHARED} (only CI and dev machines have it)")
    return SHARED


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


@pytest.fixture(scope="session")
def real_u2netp() -> Path:
    """rembg's real u2netp weights: ../shared's copy, else the one installed for this user."""
    for path in (SHARED / "models" / "u2netp.onnx", _USER_U2NETP):
        if path is not None and path.is_file() and _md5(path) == U2NETP_MD5:
            return path
    pytest.skip(
        "real u2netp weights not found (../shared/models/u2netp.onnx, or "
        "`photoproc models pull u2netp`, which `make test` runs)"
    )


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
