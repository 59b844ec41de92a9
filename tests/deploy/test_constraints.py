"""deploy/constraints.txt (the versions the image installs) agrees with pyproject.toml."""

from __future__ import annotations

import tomllib
from dockerparse import ROOT
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (ROOT / "deploy" / "constraints.txt").read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        req = Requirement(line)
        (spec,) = req.specifier
        assert spec.operator == "==", line
        pins[canonicalize_name(req.name)] = spec.version
    return pins


def test_every_requirement_of_the_image_is_pinned_compatibly():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    groups = {"dependencies": project["dependencies"]}
    groups |= {k: v for k, v in project["optional-dependencies"].items() if k != "test"}
    pins = _constraints()
    for group, requirements in groups.items():
        for text in requirements:
            req = Requirement(text)
            name = canonicalize_name(req.name)
            assert name in pins, f"{group}: {req.name} missing; run deploy/lock.py"
            assert req.specifier.contains(pins[name], prereleases=True), (
                f"{group}: {text} but constraints pin {pins[name]}; run deploy/lock.py"
            )
