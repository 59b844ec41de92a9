"""Refresh the reference outputs nbval compares against, after editing a notebook.

    PHOTOPROC_OFFLINE=1 REMBG_HOME=$(mktemp -d) PHOTOPROC_DATA_DIR=$(mktemp -d) \\
        python tests/notebooks/store_outputs.py notebooks/*.ipynb

Runs each notebook top to bottom (offline, an empty model folder: only the
offline model, as on a fresh machine) and keeps the outputs of the
``# NBVAL_CHECK_OUTPUT`` cells only: other outputs (widgets, images, timings)
would bloat the file and mean nothing without a kernel. Run metadata goes too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
from nbclient import NotebookClient


def store(path: Path) -> None:
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook,
        timeout=600,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    client.execute()
    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
        if cell.cell_type != "code" or "NBVAL_CHECK_OUTPUT" in cell.source:
            continue
        cell.outputs = []
        cell.execution_count = None
    notebook.metadata.pop("widgets", None)
    nbformat.write(notebook, path)


def main(paths: list[str]) -> None:
    for name in paths:
        store(Path(name))
        print("stored", name)


if __name__ == "__main__":
    main(sys.argv[1:])
