"""The fine-tuning augmentation's array helpers give what the PIL operations they replaced gave."""
import numpy as np
import pytest
from PIL import Image, ImageFilter

from ivos.video.osvos.finetune import deform_mask, square_filter


@pytest.mark.parametrize("k", [3, 5, 7])
@pytest.mark.parametrize("dilate", [True, False])
def test_square_filter_is_pil_rank_filter(k, dilate):
    rng = np.random.default_rng(k)
    mask = (rng.random((37, 53)) < 0.35).astype(np.uint8) * 255
    mask[:4] = 255  # objects on the border: PIL repeats edge pixels there
    mask[:, -2:] = 0
    pil = np.asarray(Image.fromarray(mask).filter((ImageFilter.MaxFilter if dilate else ImageFilter.MinFilter)(k)))
    ours = square_filter(mask, k, np.maximum if dilate else np.minimum)
    np.testing.assert_array_equal(ours, pil)


def test_deform_mask_shifts_and_grows_or_shrinks():
    mask = np.zeros((120, 200), np.float32)
    mask[40:80, 60:140] = 1.0
    for seed in range(8):
        out = deform_mask(mask, np.random.default_rng(seed))
        assert out.dtype == np.float32 and out.shape == mask.shape
        assert set(np.unique(out)) <= {0.0, 1.0}
        # a shift of a few pixels and a 3-7 px filter: most of the object stays covered
        assert 0.5 < out.sum() / mask.sum() < 1.6
