"""Every module of the package imports: a dependency missing from pyproject.toml fails here, in CI's fresh venv."""

import importlib
import pkgutil

import pytest

import srum

MODULES = sorted(m.name for m in pkgutil.walk_packages(srum.__path__, prefix="srum."))


def test_the_package_has_modules():
    assert len(MODULES) > 40 and "srum.pipeline" in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_module_imports(name):
    importlib.import_module(name)
