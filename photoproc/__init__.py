"""photoproc — remove photo backgrounds and crop faces in bulk."""

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

__version__ = "0.1.0"

__all__ = [
    "ImageTooLargeError",
    "InvalidImageError",
    "InvalidOptionsError",
    "JobNotFoundError",
    "ModelNotAvailableError",
    "PhotoprocError",
    "ProcessOptions",
    "UnknownModelError",
    "__version__",
]
