"""``photoproc app``: the notebook, Voilà's kernels and the photoproc API on one port."""

from __future__ import annotations

import json
import urllib.error

import pytest

from photoproc.cli import build_parser
from photoproc.cli.app import find_app_files

pytestmark = pytest.mark.timeout(300)


def test_app_command_options():
    args = build_parser().parse_args(["app", "--no-browser", "--port", "9999", "--data-dir", "d"])
    assert (args.port, args.host, args.data_dir, args.no_browser) == (9999, "127.0.0.1", "d", True)
    notebook, config_dir = find_app_files()
    assert notebook.name == "photo_processor.ipynb"
    assert config_dir is not None and (config_dir / "voila.json").is_file()


def test_app_serves_the_notebook_and_the_api_on_one_port(voila_app):
    assert f"photoproc app: open {voila_app.url}" in voila_app.output()
    page = voila_app.get("").decode()
    assert "voila" in page.lower()
    health = json.loads(voila_app.get("health"))
    assert health["status"] == "ok" and health["worker_alive"] is True
    info = json.loads(voila_app.get("api/processing-info"))
    assert any(m["name"] == "grabcut" for m in info["models"])
    # Voilà's own kernel routes under api/ still reach Voilà, not photoproc's JSON 404.
    with pytest.raises(urllib.error.HTTPError) as refused:
        voila_app.get("api/kernels/00000000-0000-4000-8000-000000000000")
    assert "Kernel does not exist" in json.loads(refused.value.read())["message"]
    # Unknown photoproc routes still answer with photoproc's JSON error.
    with pytest.raises(urllib.error.HTTPError) as missing:
        voila_app.get("api/process-status/not-a-job")
    assert missing.value.code == 404
    assert json.loads(missing.value.read())["error"] == "job_not_found"
