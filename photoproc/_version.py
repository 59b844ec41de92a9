"""The package version, in one place: ``pyproject.toml`` reads it (hatch) and so do
``photoproc --version`` and the OpenAPI document."""

__version__ = "0.1.0"
