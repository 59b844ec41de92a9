"""Background processing: :class:`Worker` (the parent) and the child-side task code.

See :mod:`photoproc.worker.runner` for how claims, leases, timeouts and
crashes are handled, and :mod:`photoproc.worker.child` for what runs in the
pipeline processes.
"""

from __future__ import annotations

from .child import ItemTask, output_names, run_item
from .runner import Worker

__all__ = ["ItemTask", "Worker", "output_names", "run_item"]
