"""pyproject.toml uses the packaging metadata setuptools keeps supporting: an SPDX licence
expression with its files (PEP 639), not the deprecated `license = {text = ...}` table that
printed a deprecation warning on every install."""
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))


def test_licence_is_an_spdx_expression_with_its_files():
    project = PROJECT["project"]
    assert project["license"] == "Apache-2.0"
    for name in project["license-files"]:
        assert (ROOT / name).is_file(), name
    assert "Apache License" in (ROOT / "LICENSE").read_text("utf-8")
    # PEP 639 metadata needs setuptools 77 or later.
    assert "setuptools>=77" in PROJECT["build-system"]["requires"]
    assert not any(c.startswith("License ::") for c in project.get("classifiers", []))
