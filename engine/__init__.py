"""ivos: interactive video object segmentation runtime.

Importing ``ivos`` loads numpy and the native extension only; torch, onnxruntime, TensorRT
and OpenCV are imported lazily where they are used.

Conventions: images are HxWx3 uint8 RGB; points are (x, y) in original pixels (x = column,
y = row; integer coordinates name pixels: ``ImagePredictor`` states the exact convention);
labels are 1 positive / 0 negative; masks are uint8 HxW in {0, 1}.
"""
import logging

from ._version import __version__
from .data_root import datasets_root
from .errors import BackendUnavailable, InvalidInput, IvosError, ModelError
from .image.predictor import ClickResult, ImagePredictor, Stroke, Timings
from .ops.clicks import render_clicks, render_clicks_cuda
from .ops.crf import dense_crf
from .runtime.build_info import build_info
from .runtime.model import Model, load
from .settings import FinetuneConfig
from .video.frames import FrameSource, open_video
from .video.predictor import VideoPredictor
from .video.results import FrameResult, FrameSuggestion, MultiFrameResult, VideoDifficulty
from .video.state import VideoState

logging.getLogger("ivos").addHandler(logging.NullHandler())



def __getattr__(name: str):
    """``ivos.Client`` (the HTTP client of ``ivos serve``) is imported on first use: it needs
    httpx (the ``serve`` extra), which ``import ivos`` must not load."""
    if name == "Client":
        from .client import Client

        return Client
    raise AttributeError(f"module 'ivos' has no attribute {name!r}")

__all__ = [
    "__version__",
    "Client",
    "ClickResult",
    "ImagePredictor",
    "Model",
    "Stroke",
    "Timings",
    "FinetuneConfig",
    "FrameResult",
    "FrameSource",
    "FrameSuggestion",
    "MultiFrameResult",
    "VideoDifficulty",
    "VideoPredictor",
    "VideoState",
    "open_video",
    "load",
    "BackendUnavailable",
    "InvalidInput",
    "IvosError",
    "ModelError",
    "build_info",
    "datasets_root",
    "dense_crf",
    "render_clicks",
    "render_clicks_cuda",
]
