"""photoproc — remove photo backgrounds and crop faces in bulk."""

from ._version import __version__
from .errors import (
    ImageTooLargeError,
    InvalidImageError,
    InvalidOptionsError,
    JobNotFoundError,
    ModelNotAvailableError,
    PhotoprocError,
    UnknownModelError,
)
from .options import ProcessOptions
from .server.extension import _jupyter_server_extension_points

# Heavy names (numpy, OpenCV, onnxruntime, SQLite worker) load on first use so that
# `import photoproc` — done by jupyter_server for every start — stays cheap.
_LAZY = {
    "PhotoService": "photoproc.service",
    "Settings": "photoproc.config",
    "process_image": "photoproc.pipeline.process",
    "Result": "photoproc.pipeline.types",
    "Job": "photoproc.jobs",
    "JobStatus": "photoproc.jobs",
    "Item": "photoproc.jobs",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'photoproc' has no attribute {name!r}")


__all__ = [
    "ImageTooLargeError",
    "InvalidImageError",
    "InvalidOptionsError",
    "Item",
    "Job",
    "JobNotFoundError",
    "JobStatus",
    "ModelNotAvailableError",
    "PhotoService",
    "PhotoprocError",
    "ProcessOptions",
    "Result",
    "Settings",
    "UnknownModelError",
    "__version__",
    "_jupyter_server_extension_points",
    "process_image",
]
