"""Every notebook in notebooks/ runs top to bottom under nbval, offline, against the real worker.

nbval runs in a subprocess (``pytest --nbval-lax``): each code cell is a test
that must not raise, and cells marked ``# NBVAL_CHECK_OUTPUT`` must print what
the notebook has stored (after ``sanitize.cfg``). The subprocess inherits this
test's isolated ``PHOTOPROC_DATA_DIR``, ``REMBG_HOME`` and ``PHOTOPROC_OFFLINE``.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SANITIZE = Path(__file__).with_name("sanitize.cfg")


def code_cells(notebook: Path) -> int:
    cells = json.loads(notebook.read_text())["cells"]
    return sum(cell["cell_type"] == "code" for cell in cells)


def checked_cells(notebook: Path) -> list[dict]:
    cells = json.loads(notebook.read_text())["cells"]
    return [cell for cell in cells if "NBVAL_CHECK_OUTPUT" in "".join(cell["source"])]


def test_the_three_notebooks_are_there():
    assert [n.name for n in NOTEBOOKS] == [
        "api_client.ipynb",
        "compare_models.ipynb",
        "photo_processor.ipynb",
    ]
    for notebook in NOTEBOOKS:
        checked = checked_cells(notebook)
        assert len(checked) >= 2, f"{notebook.name} checks nothing"
        # nbval passes a checked cell that has no stored output: each must have one.
        assert all(cell["outputs"] for cell in checked), f"{notebook.name}: outputs missing"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs_under_nbval(notebook, tmp_path):
    env = dict(os.environ)
    # Kernels must not find an outer server's settings.
    for name in ("VOILA_BASE_URL", "VOILA_KERNEL_ID", "JPY_SESSION_NAME", "PHOTOPROC_TOKEN"):
        env.pop(name, None)
    env["PHOTOPROC_WORKERS"] = "2"
    command = [
        sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
        "--nbval-lax", "--nbval-current-env", "--nbval-cell-timeout=300",
        f"--nbval-sanitize-with={SANITIZE}",
        str(notebook.relative_to(ROOT)),
    ]  # fmt: skip
    run = subprocess.run(
        command,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=840,
    )
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    passed = re.search(r"(\d+) passed", output)
    assert passed is not None, output[-3000:]
    assert int(passed.group(1)) == code_cells(notebook), output[-3000:]
