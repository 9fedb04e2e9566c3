"""Dense CRF post-processing (placeholder: the op lands with the dense_crf native code)."""
from __future__ import annotations

from ..errors import BackendUnavailable


def dense_crf(image, prob, *, iterations=5, sxy_gaussian=3, compat_gaussian=3,
              sxy_bilateral=80, srgb=13, compat_bilateral=10, roi=None):
    raise BackendUnavailable("dense_crf is not built yet")
