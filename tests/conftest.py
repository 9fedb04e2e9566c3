"""Fixtures for the whole suite."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
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


def make_clip(n=6, h=40, w=56, seed=0):
    """(frames (n, h, w, 3) uint8, masks (n, h, w) uint8): a bright square moving right."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 80, (n, h, w, 3), dtype=np.uint8)
    masks = np.zeros((n, h, w), np.uint8)
    for t in range(n):
        masks[t, 10:26, 8 + 3 * t:24 + 3 * t] = 1
    frames[masks.astype(bool)] = (230, 120, 40)
    return frames, masks


@pytest.fixture(name="make_clip")
def make_clip_fixture():
    """The ``make_clip`` function (test modules cannot import conftest in importlib mode)."""
    return make_clip
