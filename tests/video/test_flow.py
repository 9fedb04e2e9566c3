"""Optical-flow warping of the previous mask (``ivos.video.flow``): a moved object's mask follows it."""
import numpy as np
import pytest

pytest.importorskip("cv2", reason="flow warping needs OpenCV (pip install 'ivos[video]')")

from ivos.video.flow import MaskWarper  # noqa: E402


def _scene(dx, dy, seed=0):
    rng = np.random.default_rng(seed)
    h, w = 120, 160
    base = rng.integers(0, 255, (h // 4, w // 4, 3), dtype=np.uint8)
    frame = np.kron(base, np.ones((4, 4, 1), np.uint8))     # textured background, blocks of 4 px
    mask = np.zeros((h, w), np.uint8)
    mask[40 + dy:80 + dy, 50 + dx:100 + dx] = 1
    obj = np.kron(rng.integers(0, 255, (10, 13, 3), dtype=np.uint8), np.ones((4, 4, 1), np.uint8))[:40, :50]
    frame[40 + dy:80 + dy, 50 + dx:100 + dx] = obj
    return frame, mask


def test_warped_mask_follows_the_object():
    warper = MaskWarper()
    f0, m0 = _scene(0, 0)
    f1, m1 = _scene(6, 4)
    sampling = warper.flow(warper.grey(f1), warper.grey(f0), f1.shape[:2])
    warped = warper.warp(m0, sampling)

    def iou(a, b):
        return (a & b).sum() / (a | b).sum()

    assert warped.dtype == np.uint8 and set(np.unique(warped)) <= {0, 1}
    assert iou(warped, m1) > iou(m0, m1) + 0.1
    # no motion: the identity map
    still = warper.flow(warper.grey(f0), warper.grey(f0), f0.shape[:2])
    assert iou(warper.warp(m0, still), m0) > 0.97
