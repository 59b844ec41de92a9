"""Keep a long batch's memory flat.

glibc raises its mmap threshold each time a large block is freed (up to 32 MB), so
after the first few images the multi-megabyte pixel arrays come from the heap
arenas of each thread instead of fresh mappings, and freed space there is
rarely handed back: peak RSS creeps up with the number of images. Pinning the
threshold makes every array above 1 MB its own mapping, returned to the system
as soon as it is freed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools

__all__ = ["limit_heap_growth"]

_M_MMAP_THRESHOLD = -3


@functools.cache
def limit_heap_growth(threshold: int = 1 << 20) -> bool:
    """Pin glibc's mmap threshold (once per process); ``False`` where there is no glibc."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_MMAP_THRESHOLD, threshold))
    except (OSError, AttributeError):
        return False
