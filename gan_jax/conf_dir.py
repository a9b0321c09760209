"""Where gan-train's YAML files are: conf/ of a source checkout, else the copy installed
inside the package."""

from __future__ import annotations

from pathlib import Path


def _config_dir() -> str:
    package = Path(__file__).resolve().parent
    checkout = package.parent / "conf"
    return str(checkout if (checkout / "config.yaml").is_file() else package / "conf")


CONFIG_DIR = _config_dir()
