"""Model registry, rembg's folder rules, pull, import and ensure_available — all offline."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import http.server
import importlib.util
import re
import socket
import threading
from pathlib import Path

import pytest
from support.onnx_models import make_u2net_like

from photoproc.errors import InvalidOptionsError, ModelNotAvailableError, UnknownModelError
from photoproc.pipeline import models
from photoproc.pipeline.models import (
    OFFLINE_MODEL,
    ensure_available,
    import_model,
    installed_path,
    list_models,
    model_info,
    models_home,
    pull,
    resolve_name,
)

REMBG_LOCAL_NAMES = {
    "u2net",
    "u2netp",
    "u2net_human_seg",
    "u2net_cloth_seg",
    "silueta",
    "isnet-general-use",
    "isnet-anime",
    "birefnet-general",
    "birefnet-general-lite",
    "birefnet-general-fp16",
    "birefnet-portrait",
    "birefnet-dis",
    "birefnet-hrsod",
    "birefnet-cod",
    "birefnet-massive",
    "bria-rmbg",
}
_PROXY_VARS = ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "all_proxy")


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _with_entry(monkeypatch, name: str, **changes) -> models.ModelInfo:
    info = dataclasses.replace(models.REGISTRY[name], **changes)
    monkeypatch.setitem(models.REGISTRY, name, info)
    return info


def _rembg_sessions_dir() -> Path:
    spec = importlib.util.find_spec("rembg")
    assert spec is not None and spec.submodule_search_locations
    return Path(next(iter(spec.submodule_search_locations))) / "sessions"


# -- names ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("siluette", "silueta"),
        ("SILUETA", "silueta"),
        (" u2netp ", "u2netp"),
        ("u2net-human-seg", "u2net_human_seg"),
        ("isnet_general_use", "isnet-general-use"),
        ("Bria", "bria-rmbg"),
        ("grabcut", OFFLINE_MODEL),
        ("custom", "custom"),
    ],
)
def test_resolve_name_forgives_case_separators_and_aliases(given, expected):
    assert resolve_name(given) == expected


def test_unknown_name_lists_the_known_ones():
    with pytest.raises(UnknownModelError) as caught:
        resolve_name("u3net")
    message = str(caught.value)
    assert "u3net" in message
    for name in ("u2net", "silueta", "bria-rmbg", "grabcut", "birefnet-general"):
        assert name in message


def test_list_models_has_every_rembg_model_and_grabcut():
    statuses = {s.info.name: s for s in list_models()}
    assert set(statuses) == REMBG_LOCAL_NAMES | {OFFLINE_MODEL}
    assert statuses["grabcut"].installed and statuses["grabcut"].path is None
    assert statuses["grabcut"].info.family == "classical"
    assert not statuses["u2net"].installed and statuses["u2net"].path is None
    assert "non-commercial" in statuses["bria-rmbg"].info.licence
    assert statuses["u2net_cloth_seg"].info.family == "cloth"
    assert statuses["u2netp"].info.size_bytes < statuses["u2net"].info.size_bytes


def test_registry_covers_rembgs_local_models():
    """A new rembg release that adds a downloadable model makes this fail."""
    names = set()
    for source in _rembg_sessions_dir().glob("*.py"):
        text = source.read_text()
        if "pooch.retrieve" in text or "download_models" in text:
            names.update(
                re.findall(r'def name\(cls[^)]*\):\s*(?:"""[\s\S]*?"""\s*)?return "([^"]+)"', text)
            )
    skipped = {"sam", "u2net_custom", "dis_custom", "ben_custom", "withoutbg", "atlascloud", ""}
    assert names - skipped == REMBG_LOCAL_NAMES


@pytest.mark.parametrize("name", sorted(REMBG_LOCAL_NAMES - {"birefnet-general-fp16"}))
def test_url_and_checksum_are_rembgs(name):
    info = model_info(name)
    texts = "\n".join(p.read_text() for p in _rembg_sessions_dir().glob("*.py"))
    assert f'"{info.url}"' in texts
    assert f'"{info.checksum}"' in texts
    assert info.filename == f"{name}.onnx"


# -- where models live ------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rembg_base():
    from rembg.sessions.u2netp import U2netpSession  # importing rembg takes seconds

    return U2netpSession


@pytest.mark.parametrize("layout", ["rembg_home", "xdg", "u2net_home"])
def test_models_home_follows_rembgs_rules(layout, tmp_path, monkeypatch, rembg_base):
    if layout == "rembg_home":
        monkeypatch.setenv("REMBG_HOME", str(tmp_path / "r"))
    elif layout == "xdg":
        monkeypatch.delenv("REMBG_HOME")
        monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "x"))
    else:
        monkeypatch.setenv("U2NET_HOME", str(tmp_path / "u"))
    assert models_home() == Path(rembg_base.rembg_home())
    assert models.legacy_home() == Path(rembg_base.legacy_home())
    assert models.model_dir("u2netp") == Path(rembg_base.model_dir())


def test_installed_path_in_the_new_layout(tmp_path, monkeypatch, rembg_base):
    monkeypatch.setenv("REMBG_HOME", str(tmp_path))
    assert installed_path("u2netp") is None
    target = make_u2net_like(tmp_path / "models" / "u2netp" / "u2netp.onnx")
    assert installed_path("u2netp") == target
    assert Path(rembg_base.resolve_existing("u2netp.onnx")) == target
    assert {s.info.name: s for s in list_models()}["u2netp"].installed


def test_installed_path_in_u2net_home_legacy_flat_layout(tmp_path, monkeypatch, rembg_base):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    target = make_u2net_like(tmp_path / "u2netp.onnx")
    assert installed_path("siluette") is None
    assert installed_path("u2netp") == target
    assert Path(rembg_base.resolve_existing("u2netp.onnx")) == target


def test_installed_path_under_u2net_home_models(tmp_path, monkeypatch):
    monkeypatch.setenv("U2NET_HOME", str(tmp_path))
    target = make_u2net_like(tmp_path / "models" / "u2netp" / "u2netp.onnx")
    assert installed_path("u2netp") == target
    assert ensure_available("u2netp") == target


# -- import -----------------------------------------------------------------------------------


def test_import_refuses_a_checksum_mismatch(tmp_path):
    tiny = make_u2net_like(tmp_path / "mine.onnx")
    with pytest.raises(InvalidOptionsError) as caught:
        import_model("u2netp", tiny)
    message = str(caught.value)
    assert "u2netp.onnx" in message and _md5(tiny) in message
    assert "8e83ca70e441ab06c318d82300c84806" in message
    assert installed_path("u2netp") is None
    assert list(models.model_dir("u2netp").iterdir()) == []  # no temp file left behind


def test_import_accepts_a_matching_file_atomically(tmp_path, monkeypatch):
    tiny = make_u2net_like(tmp_path / "download" / "u2netp.onnx")
    _with_entry(monkeypatch, "u2netp", checksum=f"md5:{_md5(tiny)}")
    path = import_model("u2netp", tiny)
    assert path == installed_path("u2netp") == models.model_dir("u2netp") / "u2netp.onnx"
    assert path.read_bytes() == tiny.read_bytes()
    assert sorted(p.name for p in path.parent.iterdir()) == [
        "u2netp.onnx",
        "u2netp.onnx.source.json",
    ]
    assert models.source_of(path) == f"imported from {tiny.resolve()}"
    assert ensure_available("u2netp") == path


def test_import_sha256_entry(tmp_path, monkeypatch):
    tiny = make_u2net_like(tmp_path / "bria.onnx", size=64)
    digest = hashlib.sha256(tiny.read_bytes()).hexdigest()
    _with_entry(monkeypatch, "bria-rmbg", checksum=f"sha256:{digest}")
    assert import_model("bria", tiny) == installed_path("bria-rmbg")


def test_forced_import_installs_own_weights(tmp_path):
    tiny = make_u2net_like(tmp_path / "finetune.onnx")
    path = import_model("u2net", tiny, force=True)
    assert installed_path("u2net") == path
    assert path.read_bytes() == tiny.read_bytes()


@pytest.mark.parametrize("name", ["grabcut", "custom"])
def test_import_refuses_weightless_names(name, tmp_path):
    with pytest.raises(InvalidOptionsError):
        import_model(name, make_u2net_like(tmp_path / "x.onnx"))


def test_import_missing_file(tmp_path):
    with pytest.raises(InvalidOptionsError, match="does not exist"):
        import_model("u2netp", tmp_path / "nope.onnx")


# -- ensure_available and pull ----------------------------------------------------------------


def _assert_names_the_fixes(message: str, name: str = "u2net"):
    assert f"photoproc models pull {name}" in message
    assert f"photoproc models import {name}" in message
    assert "U2NET_HOME" in message
    assert f"{name}.onnx" in message


def test_ensure_available_offline_fails_fast_with_the_fix(network_attempts):
    with pytest.raises(ModelNotAvailableError) as caught:
        ensure_available("u2net")
    assert network_attempts == []
    message = str(caught.value)
    assert message.startswith("model 'u2net' is not installed and could not be downloaded (")
    assert "PHOTOPROC_OFFLINE" in message
    _assert_names_the_fixes(message)


def test_ensure_available_online_but_unreachable_fails_fast(monkeypatch):
    monkeypatch.delenv("PHOTOPROC_OFFLINE")
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    # .invalid never resolves (RFC 2606), with or without internet.
    _with_entry(monkeypatch, "u2net", url="https://photoproc-test.invalid/u2net.onnx")
    with pytest.raises(ModelNotAvailableError) as caught:
        ensure_available("u2net")
    assert "photoproc-test.invalid" in str(caught.value)
    _assert_names_the_fixes(str(caught.value))
    assert installed_path("u2net") is None


def test_pull_refused_offline():
    with pytest.raises(ModelNotAvailableError, match="PHOTOPROC_OFFLINE"):
        pull("u2netp", progress=False)


def test_ensure_available_grabcut_needs_nothing():
    assert ensure_available("grabcut") is None


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # keep test output clean
        pass


@pytest.fixture
def file_server(tmp_path, monkeypatch):
    """A real HTTP server on 127.0.0.1 serving tmp_path/www."""
    monkeypatch.delenv("PHOTOPROC_OFFLINE")
    for var in _PROXY_VARS:
        monkeypatch.delenv(var, raising=False)
    root = tmp_path / "www"
    root.mkdir()
    handler = functools.partial(_QuietHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pull_downloads_and_verifies(file_server, monkeypatch):
    root, base = file_server
    tiny = make_u2net_like(root / "u2netp-remote.onnx")
    _with_entry(
        monkeypatch, "u2netp", url=f"{base}/u2netp-remote.onnx", checksum=f"md5:{_md5(tiny)}"
    )
    path = pull("u2netp", progress=False, timeout=5)
    assert path == installed_path("u2netp")
    assert path.read_bytes() == tiny.read_bytes()
    # ensure_available downloads on its own when allowed.
    path.unlink()
    assert ensure_available("u2netp") == path and path.is_file()


def test_pull_rejects_a_corrupt_download(file_server, monkeypatch):
    root, base = file_server
    make_u2net_like(root / "u2netp.onnx")
    _with_entry(monkeypatch, "u2netp", url=f"{base}/u2netp.onnx", checksum="md5:" + "0" * 32)
    with pytest.raises(ModelNotAvailableError) as caught:
        ensure_available("u2netp")
    _assert_names_the_fixes(str(caught.value), "u2netp")
    assert installed_path("u2netp") is None
    assert not any(models.model_dir("u2netp").glob("*")), "temp file left behind"


def test_pull_http_error_and_refused_connection(file_server, monkeypatch):
    _root, base = file_server
    _with_entry(monkeypatch, "u2netp", url=f"{base}/missing.onnx")
    with pytest.raises(ModelNotAvailableError, match="404"):
        pull("u2netp", progress=False, timeout=5)
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    _with_entry(monkeypatch, "u2netp", url=f"http://127.0.0.1:{port}/u2netp.onnx")
    with pytest.raises(ModelNotAvailableError, match="could not be downloaded"):
        ensure_available("u2netp")


@pytest.mark.parametrize(
    ("value", "expected"), [("1", True), ("yes", True), ("0", False), ("", False)]
)
def test_offline_mode(value, expected, monkeypatch):
    monkeypatch.setenv("PHOTOPROC_OFFLINE", value)
    assert models.offline_mode() is expected


# -- the default model ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("installed", "expected"),
    [
        ((), "grabcut"),
        (("u2netp",), "u2netp"),
        (("u2netp", "isnet-general-use"), "isnet-general-use"),
        (("u2netp", "isnet-general-use", "u2net"), "u2net"),
        (("silueta", "birefnet-general"), "grabcut"),  # not in the rule: never picked silently
    ],
)
def test_best_installed_model_follows_the_rule(installed, expected, tmp_path):
    for name in installed:
        import_model(name, make_u2net_like(tmp_path / f"{name}.onnx"), force=True)
    assert models.best_installed_model() == expected
    assert models.best_installed_model(list_models()) == expected
    assert models.default_rule() == "u2net > isnet-general-use > u2netp > grabcut"
