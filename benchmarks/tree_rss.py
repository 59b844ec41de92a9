"""Peak resident memory of a whole process tree, sampled while it runs.

``wait4``'s ``ru_maxrss`` (``common.run_measured``) is the peak of one process;
a worker's memory is spread over its parent and its pool children, whose peaks
do not happen at the same moment. So the tree's RSS is summed at each sample
(every 100 ms) and the largest sum is kept — a lower bound of the true peak,
tight for memory that stays allocated, which is what a leak or an unbounded
queue would show as.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

try:  # psutil is not a project dependency; /proc does the same on Linux.
    import psutil
except ImportError:  # pragma: no cover - depends on the environment
    psutil = None

__all__ = ["TreeRssSampler", "tree_rss_bytes"]


def _proc_children(pid: int) -> list[int]:
    children = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children.extend(int(c) for c in (task / "children").read_text().split())
        except OSError:
            continue
    return children


def _proc_rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def tree_rss_bytes(pid: int) -> tuple[int, int]:
    """``(bytes, processes)``: the RSS of ``pid`` and all its descendants now."""
    if psutil is not None:
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return 0, 0
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.NoSuchProcess:  # ended between the listing and the read
                continue
        return total, len(procs)
    pids, todo = [], [pid]
    while todo:
        current = todo.pop()
        pids.append(current)
        todo.extend(_proc_children(current))
    return sum(_proc_rss(p) for p in pids), len(pids)


class TreeRssSampler:
    """Samples :func:`tree_rss_bytes` of ``pid`` from a thread until :meth:`stop`."""

    def __init__(self, pid: int, interval: float = 0.1) -> None:
        self.pid = pid
        self.interval = interval
        self.peak_bytes = 0
        self.peak_processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="tree-rss", daemon=True)

    @property
    def method(self) -> str:
        return "psutil" if psutil is not None else "/proc VmRSS"

    def start(self) -> TreeRssSampler:
        self._thread.start()
        return self

    def stop(self) -> float:
        """Stop sampling; the peak in MB."""
        self._stop.set()
        self._thread.join()
        return self.peak_mb

    @property
    def peak_mb(self) -> float:
        return self.peak_bytes / (1 << 20)

    def _run(self) -> None:
        while not self._stop.is_set():
            total, count = tree_rss_bytes(self.pid)
            if total:
                self.samples += 1
                if total > self.peak_bytes:
                    self.peak_bytes = total
                self.peak_processes = max(self.peak_processes, count)
            self._stop.wait(self.interval)


def _self_check() -> None:  # python benchmarks/tree_rss.py: this process's tree, once
    total, count = tree_rss_bytes(os.getpid())
    print(f"{count} process(es), {total / (1 << 20):.0f} MB")


if __name__ == "__main__":
    _self_check()
