"""Every photoproc module imports on its own in a fresh interpreter, and no module imports
another that (directly or not) imports it back — inside functions included, so cycles
cannot hide behind late imports. Only ``if TYPE_CHECKING:`` blocks are left out: they
never run."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "photoproc"

pytestmark = pytest.mark.timeout(240)


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


MODULES = {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _type_checking_only(tree: ast.Module) -> set[int]:
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.id if isinstance(test, ast.Name) else getattr(test, "attr", None)
            if name == "TYPE_CHECKING":
                skipped.update(id(n) for sub in node.body for n in ast.walk(sub))
    return skipped


def _imports(name: str, path: Path) -> set[str]:
    """The photoproc modules ``name`` imports anywhere in its code."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped = _type_checking_only(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = parts[: len(parts) - node.level + 1] + ([node.module] if node.module else [])
                target = ".".join(base)
            else:
                target = node.module or ""
            for alias in node.names:
                # `from . import handlers` imports the submodule, not the package's names
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in MODULES else target)
    return {m for m in found if m in MODULES and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*stack[stack.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node, [])
    return found


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == [["a", "b", "c", "a"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_photoproc_module_is_part_of_an_import_cycle():
    graph = {name: _imports(name, path) for name, path in MODULES.items()}
    assert "photoproc.server.handler_base" in graph["photoproc.server.websocket"]  # sanity
    assert _cycles(graph) == []


def test_the_server_package_never_imports_the_top_package():
    for name, path in MODULES.items():
        if name.startswith("photoproc.server"):
            assert "photoproc" not in _imports(name, path), name


# A fresh interpreter loads the heaviest third-party packages once (never a photoproc
# module), then forks one child per module: each child starts from that state and imports
# one photoproc module, so what is checked is photoproc's own import order. Forking is safe
# only without threads; the script refuses to go on if an import started one.
_IMPORT_EACH = r"""
import importlib, json, os, sys, threading, traceback
for heavy in ("numpy", "cv2", "PIL.Image", "tornado.web", "jupyter_server.serverapp",
              "voila.app", "ipywidgets"):
    importlib.import_module(heavy)
assert threading.active_count() == 1, threading.enumerate()
assert not any(m.startswith("photoproc") for m in sys.modules)
failed = {}
for name in sys.argv[1:]:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            message = b""
        except BaseException:
            message = traceback.format_exc().encode()
        os.write(write, message[:60000])
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        message = pipe.read()
    os.waitpid(pid, 0)
    if message:
        failed[name] = message.decode()
print(json.dumps(failed))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork() for one clean child each")
def test_every_module_imports_on_its_own_in_a_fresh_interpreter():
    names = sorted(n for n in MODULES if n != "photoproc.__main__")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, *names, "photoproc._not_a_module"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=220,
    )
    assert proc.returncode == 0, proc.stderr
    failed = json.loads(proc.stdout.strip().splitlines()[-1])
    # the one name that cannot import shows that a failure is seen
    assert "ModuleNotFoundError" in failed.pop("photoproc._not_a_module")
    assert failed == {}, "\n".join(f"{k}:\n{v}" for k, v in failed.items())
    assert len(names) > 50
