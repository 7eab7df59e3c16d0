"""Every folder Python could import under the five rooms is a declared package, so setuptools has nothing to
ignore (its "Package would be ignored" warnings on ``make``/``pip install``) and ships the data inside."""

from __future__ import annotations

import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_every_importable_folder_is_a_declared_package():
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    declared = set(config["packages"])
    missing = []
    for package, folder in config["package-dir"].items():
        for path in sorted((REPO / folder).rglob("*")):
            parts = path.relative_to(REPO / folder).parts
            if not path.is_dir() or any(not p.isidentifier() or p == "__pycache__" for p in parts):
                continue
            if any(child.is_file() for child in path.iterdir()):  # a folder of files: a namespace package
                name = ".".join((package, *parts))
                if name not in declared:
                    missing.append(name)
    assert missing == []
    for package, patterns in config["package-data"].items():
        assert package in declared, f"package-data for undeclared {package}"
