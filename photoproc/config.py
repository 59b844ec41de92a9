"""Settings of a photoproc installation: where the data lives, limits, concurrency.

Core classes take a :class:`Settings` (or plain keyword arguments); only the
edges read the environment, through :meth:`Settings.from_env`, so tests and
notebooks never depend on the shell they were started from.

Environment variables (all optional)::

    PHOTOPROC_DATA_DIR          data directory (database + job files)
    PHOTOPROC_WORKERS           pipeline processes per worker (default: cores)
    PHOTOPROC_ITEM_TIMEOUT      seconds one image may take before it is killed
    PHOTOPROC_MAX_ATTEMPTS      tries per image before it fails for good
    PHOTOPROC_LEASE_SECONDS     claim lease; a dead worker's items return after it
    PHOTOPROC_MAX_PIXELS        refuse bigger images
    PHOTOPROC_MAX_UPLOAD_BYTES  HTTP body limit
    PHOTOPROC_MAX_UPLOAD_FILES  images per job
    PHOTOPROC_BODY_IDLE_TIMEOUT seconds an upload body may send nothing
    PHOTOPROC_BODY_MIN_RATE     bytes/s an upload body must average over such a window
    PHOTOPROC_ITEM_FUNCTION     "module:function" replacing process_image in the workers
    PHOTOPROC_WRITE_FUNCTION    "module:function" replacing fsutil.write_atomic in the workers
    PHOTOPROC_DASK              Dask scheduler (tcp://host:8786): workers run items there
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import InvalidOptionsError
from .ingest import IngestLimits

__all__ = ["Settings", "default_data_dir", "usable_cores"]


def default_data_dir() -> Path:
    """The per-user data folder (``~/.local/share/photoproc`` on Linux)."""
    import platformdirs

    return Path(platformdirs.user_data_dir("photoproc", appauthor=False))


def usable_cores() -> int:
    """The cores this process may use, not the machine's (containers, taskset)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


# env var suffix → (field, type)
_ENV: dict[str, tuple[str, type]] = {
    "DATA_DIR": ("data_dir", Path),
    "WORKERS": ("workers", int),
    "ITEM_TIMEOUT": ("item_timeout", float),
    "MAX_ATTEMPTS": ("max_attempts", int),
    "LEASE_SECONDS": ("lease_seconds", float),
    "MAX_PIXELS": ("max_pixels", int),
    "MAX_UPLOAD_BYTES": ("max_upload_bytes", int),
    "MAX_UPLOAD_FILES": ("max_upload_files", int),
    "BODY_IDLE_TIMEOUT": ("body_idle_timeout", float),
    "BODY_MIN_RATE": ("body_min_rate", float),
    "ITEM_FUNCTION": ("item_function", str),
    "WRITE_FUNCTION": ("write_function", str),
    "DASK": ("dask", str),
}


@dataclass(frozen=True)
class Settings:
    """Everything a service, worker or server needs to know about the installation."""

    data_dir: Path
    #: pipeline child processes per worker; each runs one image at a time.
    workers: int = field(default_factory=usable_cores)
    item_timeout: float = 300.0
    max_attempts: int = 3
    lease_seconds: float = 30.0
    max_pixels: int = 80_000_000
    max_upload_bytes: int = 2 << 30
    max_upload_files: int = 10_000
    ingest: IngestLimits = field(default_factory=IngestLimits)
    #: an upload body that sends nothing for this long (s) is dropped, its spool removed…
    body_idle_timeout: float = 60.0
    #: …as is one that averages fewer bytes/s than this over any such window.
    body_min_rate: float = 1024.0
    #: ``"module:function"`` with ``process_image``'s signature, run in the worker's
    #: child processes instead of the real pipeline (tests, custom pipelines).
    item_function: str | None = None
    #: ``"module:function"`` with ``write_atomic(path, data)``'s signature.
    write_function: str | None = None
    #: how often a worker records that it is alive.
    heartbeat_seconds: float = 2.0
    #: how often idle workers and cross-process watchers look at the database.
    poll_seconds: float = 0.2
    #: address of a Dask scheduler (``tcp://host:8786``): a worker started with these
    #: settings runs its items on that cluster instead of local processes.
    dask: str | None = None

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "data_dir", Path(self.data_dir).expanduser())
        for name, minimum in (
            ("workers", 1),
            ("max_attempts", 1),
            ("max_pixels", 1),
            ("max_upload_bytes", 1),
            ("max_upload_files", 1),
        ):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
                raise InvalidOptionsError(name, f"{value!r} is not a whole number >= {minimum}")
        if not isinstance(self.body_min_rate, (int, float)) or self.body_min_rate < 0:
            raise InvalidOptionsError("body_min_rate", f"{self.body_min_rate!r} is negative")
        for name in (
            "item_timeout",
            "lease_seconds",
            "heartbeat_seconds",
            "poll_seconds",
            "body_idle_timeout",
        ):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not value > 0:
                raise InvalidOptionsError(name, f"{value!r} is not a positive number of seconds")
            set_(self, name, float(value))

    @property
    def db_path(self) -> Path:
        return self.data_dir / "photoproc.db"

    @property
    def jobs_dir(self) -> Path:
        return self.data_dir / "jobs"

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """``PHOTOPROC_*`` variables, then ``overrides`` (``None`` values are ignored).

        A malformed variable raises :class:`InvalidOptionsError` naming it, rather
        than silently falling back to a default the user did not ask for.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for suffix, (name, kind) in _ENV.items():
            raw = env.get(f"PHOTOPROC_{suffix}")
            if raw is None or raw.strip() == "":
                continue
            try:
                values[name] = kind(raw.strip())
            except ValueError:
                raise InvalidOptionsError(
                    f"PHOTOPROC_{suffix}", f"{raw!r} is not a valid {kind.__name__}"
                ) from None
        values.update({k: v for k, v in overrides.items() if v is not None})
        values.setdefault("data_dir", default_data_dir())
        return cls(**values)
