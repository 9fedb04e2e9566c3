"""Fixtures for the whole suite."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def package_dir() -> dict[str, str]:
    """setup.py's ``PACKAGE_DIR`` (installed package name -> its folder in the checkout), read
    with ``ast`` (running setup.py would build)."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(isinstance(t, ast.Name) and t.id == "PACKAGE_DIR" for t in targets):
                return ast.literal_eval(node.value)
    raise AssertionError("setup.py defines no PACKAGE_DIR")
