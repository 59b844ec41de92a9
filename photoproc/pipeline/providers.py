"""Where the models run: ``--device cpu|cuda|auto`` → onnxruntime execution providers.

rembg's most common complaint is a GPU install that quietly runs on the CPU:
``onnxruntime-gpu`` lists ``CUDAExecutionProvider`` whenever its shim is
installed, and a session asked for CUDA falls back to CPU with one log line
when the CUDA or cuDNN libraries, or the GPU itself, are missing. So the
choice is checked once per process with a real (tiny) session:

* ``cpu``  — CPU only;
* ``cuda`` — CUDA, or a :class:`DeviceUnavailableError` naming what is missing
  (no onnxruntime-gpu, no CUDA provider in the onnxruntime in use, no GPU
  visible, a CUDA/cuDNN library that does not load) — never a silent CPU run;
* ``auto`` — CUDA when that check passes, else CPU (the reason is logged).

The choice travels in the ``PHOTOPROC_DEVICE`` environment variable: the CLI
sets it once validated (:func:`use_device`), and the worker's spawned children,
the Voilà kernels and Dask workers started with it all inherit or are given it,
without any signature between them having to carry it.

CUDA sessions get ``cudnn_conv_algo_search=HEURISTIC``: onnxruntime's default,
``EXHAUSTIVE``, benchmarks every convolution algorithm for every new input
shape, which rembg users report as first runs taking minutes.
"""

from __future__ import annotations

import contextlib
import ctypes
import io
import logging
import os
import sys
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from ..errors import InvalidOptionsError, PhotoprocError

__all__ = [
    "CUDA_OPTIONS",
    "DEVICES",
    "DEVICE_ENV",
    "DeviceUnavailableError",
    "Selection",
    "cuda_problem",
    "providers_in_use",
    "requested_device",
    "select",
    "session_providers",
    "use_device",
]

log = logging.getLogger(__name__)

DEVICES = ("auto", "cpu", "cuda")
DEVICE_ENV = "PHOTOPROC_DEVICE"
CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"
CUDA_OPTIONS: Mapping[str, str] = {"cudnn_conv_algo_search": "HEURISTIC"}

# The smallest valid ONNX model (opset 13, one Identity node on a float[1]),
# serialised by onnx 1.23: the probe needs a session, and photoproc does not
# depend on the onnx package. tests/deploy/test_providers.py rebuilds it with onnx.
_PROBE_MODEL = (
    b'\x08\x08\x12\x00:7\n\x10\n\x01x\x12\x01y"\x08Identity\x12\x01pZ\x0f\n\x01x\x12\n\n'
    b"\x08\x08\x01\x12\x04\n\x02\x08\x01b\x0f\n\x01y\x12\n\n\x08\x08\x01\x12\x04\n\x02\x08"
    b"\x01B\x04\n\x00\x10\r"
)


class DeviceUnavailableError(PhotoprocError):
    """The device asked for cannot be used; the message names the missing piece."""

    def __init__(self, device: str, reason: str) -> None:
        self.device = device
        self.reason = reason
        super().__init__(f"--device {device}: {reason}")


@dataclass(frozen=True)
class Selection:
    """What a ``--device`` resolved to in this process."""

    device: str
    #: provider names sessions get, in preference order.
    providers: tuple[str, ...]
    #: why ``auto`` did not take CUDA (empty otherwise).
    reason: str = ""
    options: Mapping[str, Mapping[str, str]] = field(default_factory=dict)

    def session_providers(self) -> list[str | tuple[str, dict[str, str]]]:
        """The ``providers=`` argument of ``onnxruntime.InferenceSession``."""
        return [(p, dict(self.options[p])) if p in self.options else p for p in self.providers]


_CPU_ONLY = (CPU,)
_selected: dict[str, Selection] = {}
_lock = threading.Lock()


def requested_device(env: Mapping[str, str] | None = None) -> str:
    """``PHOTOPROC_DEVICE`` (default ``auto``), validated."""
    env = os.environ if env is None else env
    device = (env.get(DEVICE_ENV) or "auto").strip().lower()
    if device not in DEVICES:
        raise InvalidOptionsError(DEVICE_ENV, f"{device!r} is not one of {', '.join(DEVICES)}")
    return device


def select(device: str | None = None) -> Selection:
    """Resolve ``device`` (default: ``PHOTOPROC_DEVICE``) once per process.

    ``cuda`` raises :class:`DeviceUnavailableError` when a session would not run on
    CUDA; the check creates one tiny session, so it costs well under a second.
    """
    device = requested_device() if device is None else device.strip().lower()
    if device not in DEVICES:
        raise InvalidOptionsError("device", f"{device!r} is not one of {', '.join(DEVICES)}")
    with _lock:
        cached = _selected.get(device)
        if cached is None:
            cached = _selected[device] = _resolve(device)
    return cached


def use_device(device: str | None) -> Selection:
    """Validate ``device`` now (fail at start, not on the first image) and make it the
    choice of this process and of every process it starts."""
    selection = select(device)
    if device is not None:  # None: the environment already says it (or nothing: auto)
        os.environ[DEVICE_ENV] = selection.device
    return selection


def session_providers() -> list[str | tuple[str, dict[str, str]]]:
    """The providers (with options) new sessions of this process get."""
    return select().session_providers()


def providers_in_use() -> list[str]:
    """Provider names the model sessions of this process use (for /health and listings)."""
    return list(select().providers)


def _forget() -> None:
    # Tests, and a child that must not trust a choice probed in its parent.
    global _cuda_problem
    with _lock:
        _selected.clear()
        _cuda_problem = _NOT_PROBED


os.register_at_fork(after_in_child=_forget)


# -- resolving -------------------------------------------------------------------------------


_NOT_PROBED = object()
_cuda_problem: Any = _NOT_PROBED


def _resolve(device: str) -> Selection:
    global _cuda_problem
    if device == "cpu":
        return Selection("cpu", _CPU_ONLY)
    if _cuda_problem is _NOT_PROBED:
        _cuda_problem = cuda_problem()
    problem = _cuda_problem
    if problem is None:
        return Selection(device, (CUDA, CPU), options={CUDA: CUDA_OPTIONS})
    if device == "cuda":
        raise DeviceUnavailableError("cuda", problem)
    log.info("device auto: using the CPU (%s)", problem)
    return Selection("auto", _CPU_ONLY, reason=problem)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def cuda_problem(ort: Any = None) -> str | None:
    """``None`` when an onnxruntime session really runs on CUDA here, else what is missing."""
    if ort is None:
        import onnxruntime

        ort = onnxruntime
    available = list(ort.get_available_providers())
    if CUDA not in available:
        gpu = _version("onnxruntime-gpu")
        if gpu is None:
            cpu = _version("onnxruntime")
            have = f"onnxruntime {cpu}" if cpu else "an onnxruntime build"
            return (
                f"onnxruntime-gpu is not installed ({have} is, with {', '.join(available)}). "
                "Install the GPU build instead: pip uninstall onnxruntime && "
                "pip install 'photoproc[gpu]' (Docker: build with --build-arg EXTRAS=gpu)"
            )
        return (
            f"onnxruntime-gpu {gpu} is installed but the onnxruntime in use "
            f"({Path(ort.__file__).parent}) has no {CUDA} (only {', '.join(available)}): "
            "onnxruntime and onnxruntime-gpu share one folder and the CPU build won. "
            "Uninstall both, then install only onnxruntime-gpu"
        )
    log_lines = _preload_cuda_libraries(ort)
    if CUDA in _probe_session_providers(ort):
        return None
    problems = []
    if sys.platform.startswith("linux") and not _nvidia_devices():
        problems.append(
            "no NVIDIA GPU is visible to this process (no /dev/nvidia0…; in Docker, "
            "run with --gpus all or the compose `gpu` profile)"
        )
    missing = _provider_library_error(ort)
    if missing:
        problems.append(
            f"the CUDA provider library does not load: {missing} — onnxruntime-gpu "
            f"{_version('onnxruntime-gpu') or ''} needs CUDA {_cuda_version(ort)} and cuDNN 9 "
            "(pip install 'photoproc[gpu]' brings them as nvidia-* wheels)"
        )
    if not problems:
        detail = f": {log_lines[-1]}" if log_lines else ""
        problems.append(f"onnxruntime could not start {CUDA}{detail} (see onnxruntime's log above)")
    return f"{CUDA} is not usable: " + "; ".join(problems)


def _preload_cuda_libraries(ort: Any) -> list[str]:
    """Load CUDA/cuDNN from the nvidia-* wheels (onnxruntime-gpu >= 1.21 finds them only
    this way); its complaints are printed, so capture them for our own message."""
    preload = getattr(ort, "preload_dlls", None)
    if preload is None:
        return []
    out = io.StringIO()
    try:
        with contextlib.redirect_stdout(out):
            preload()
    except Exception as exc:  # a broken install must still end in our message
        out.write(f"{type(exc).__name__}: {exc}\n")
    return [line for line in out.getvalue().splitlines() if line.strip()]


def _probe_session_providers(ort: Any) -> list[str]:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(
            _PROBE_MODEL, sess_options=options, providers=[(CUDA, dict(CUDA_OPTIONS)), CPU]
        )
    except Exception as exc:
        log.warning("CUDA probe session failed: %s", exc)
        return []
    return list(session.get_providers())


def _nvidia_devices() -> list[str]:
    return sorted(p.name for p in Path("/dev").glob("nvidia[0-9]*"))


def _provider_library_error(ort: Any) -> str | None:
    """The loader's complaint about onnxruntime's CUDA provider library, if any."""
    name = (
        "onnxruntime_providers_cuda.dll" if os.name == "nt" else "libonnxruntime_providers_cuda.so"
    )
    path = Path(ort.__file__).parent / "capi" / name
    if not path.is_file():
        return f"{path} is missing"
    try:
        ctypes.CDLL(str(path))
    except OSError as exc:
        text = str(exc)
        # Unresolved onnxruntime symbols mean its own dependencies did load.
        return None if "undefined symbol" in text else text
    return None


def _cuda_version(ort: Any) -> str:
    try:
        from onnxruntime.capi.onnxruntime_validation import get_package_name_and_version_info

        return get_package_name_and_version_info()[2] or "12+"
    except Exception:
        return "12+"
