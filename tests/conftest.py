"""Fixtures for the whole suite."""
from __future__ import annotations

import ast
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]

TINY_CLICKNET = dict(widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), stem_width=8, head_width=8, skip_width=8,
                     decoder_width=8)
"""A click network of a few thousand weights: bundles in seconds, for plumbing tests."""
TINY_OSVOS_WORKING_SIZE = (64, 96)


def tiny_networks(seed: int = 0):
    """(click network, OSVOS network) with random weights from ``seed`` (torch, eval mode)."""
    import dataclasses

    import torch

    from ivos.export.models import ClickNetConfig, build_model
    from ivos.export.osvos import OSVOS_CONFIGS, build_osvos

    def click_net():
        torch.manual_seed(seed)
        return build_model(ClickNetConfig(name="tiny", **TINY_CLICKNET)).eval()

    config = dataclasses.replace(OSVOS_CONFIGS["osvos-cpu"], name="osvos-tiny", working_size=TINY_OSVOS_WORKING_SIZE)
    return click_net(), build_osvos(config, click_net()).eval()  # build_osvos takes its click network over


@pytest.fixture(scope="session")
def tiny_bundles(tmp_path_factory) -> dict[str, Path]:
    """{"click": a tiny click bundle, "osvos": a tiny OSVOS bundle}, exported once per test
    session from ``tiny_networks(0)``: the tests that use them check plumbing, I/O and
    validation, not accuracy. Skips without torch or onnxruntime."""
    pytest.importorskip("torch", reason="exporting the test bundles needs torch (pip install 'ivos[export]')")
    pytest.importorskip("onnxruntime", reason="needs onnxruntime (pip install 'ivos[cpu]')")
    from ivos.export.onnx_export import export_click_bundle
    from ivos.export.osvos_export import export_osvos_bundle
    from ivos.network_io import CLICK_SIGMA, IMAGENET_MEAN, IMAGENET_STD

    root = tmp_path_factory.mktemp("tiny-bundles")
    click, osvos = tiny_networks(0)
    export_click_bundle(click, root / "click-tiny", name="tiny", version="test", click_encoding="gaussian",
                        click_sigma=CLICK_SIGMA, click_channels=1, working_size=64, mean=IMAGENET_MEAN,
                        std=IMAGENET_STD, n_checks=2)
    export_osvos_bundle(osvos, root / "osvos-tiny", version="test", mean=IMAGENET_MEAN, std=IMAGENET_STD)
    return {"click": root / "click-tiny", "osvos": root / "osvos-tiny"}


@pytest.fixture(name="tiny_networks", scope="session")
def tiny_networks_fixture():
    """The ``tiny_networks`` function (test modules cannot import conftest in importlib mode)."""
    return tiny_networks


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
