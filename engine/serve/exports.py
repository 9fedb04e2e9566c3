"""Exports of a propagated video session, written to a file the response streams:

* ``png-zip``: a ZIP of 8-bit 0/255 PNG masks, ``masks/<frame>.png`` with one object,
  ``masks/<obj_id>/<frame>.png`` with several (the layout of ``ivos segment``);
* ``coco``: a COCO data set JSON (``ivos.formats.annotations.write_coco_json``: compressed RLE, one
  annotation per object and frame, ``track_id`` the object);
* ``rle``: ``{"frames": [{"frame_idx", "masks": {obj_id: COCO uncompressed RLE}}]}``;
* ``sticker``: the animated sticker (objects' union over transparency; WebP, or APNG without
  WebP support), at most ``STICKER_MAX_FRAMES`` frames evenly subsampled.

Masks are overlap-resolved (``VideoPredictor.masks``); every frame must have been propagated.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from ..formats.codec import png_bytes
from .errors import ApiError

EXPORT_FORMATS = {"png-zip": ("application/zip", ".zip"), "coco": ("application/json", ".json"),
                  "rle": ("application/json", ".json"), "sticker": ("image/webp", ".webp")}
STICKER_MAX_FRAMES = 150


def _require_masks(pred: Any, state: Any) -> list[int]:
    """The annotated objects; 409 unless every frame has a mask of each."""
    obj_ids = [k for k in state.obj_ids if state.objects[k].annotations]
    missing = [k for k in obj_ids if len(state.objects[k].masks) < state.num_frames]
    if not obj_ids or missing:
        raise ApiError(409, "not_propagated", "export needs a mask on every frame: annotate a frame and run "
                       "propagation first" + (f" (objects {missing} miss frames)" if missing else ""))
    return obj_ids


def _union(per_object: dict[int, np.ndarray], shape: tuple[int, int]) -> np.ndarray:
    out = np.zeros(shape, np.uint8)
    for m in per_object.values():
        out |= m.astype(np.uint8)
    return out


def write_export(fmt: str, pred: Any, state: Any, folder: Path, *, name: str) -> tuple[Path, str]:
    """Writes export ``fmt`` of ``state`` into ``folder``; returns (file, media type)."""
    from ..formats.annotations import FrameMasks, write_coco_json
    from ..formats.mask_files import write_sticker
    from ..formats.rle import mask_bbox, rle_encode

    if fmt not in EXPORT_FORMATS:
        raise ApiError(422, "invalid_request", f"format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
    obj_ids = _require_masks(pred, state)
    names = state.video.frame_names
    shape = (state.video.height, state.video.width)
    media, suffix = EXPORT_FORMATS[fmt]
    path = folder / f"{name}{suffix}"
    if fmt == "png-zip":
        single = len(obj_ids) == 1
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as zf:  # PNGs are compressed already
            for idx, per_object in pred.masks(state):
                for k in obj_ids:
                    mask = per_object.get(k, np.zeros(shape, np.uint8))
                    arc = f"masks/{names[idx]}.png" if single else f"masks/{k}/{names[idx]}.png"
                    zf.writestr(arc, png_bytes(mask.astype(np.uint8) * np.uint8(255)))
    elif fmt == "coco":
        frames = (FrameMasks(i, names[i], objs) for i, objs in pred.masks(state))
        write_coco_json(path, frames, video=name)
    elif fmt == "rle":
        doc = {"height": shape[0], "width": shape[1], "fps": state.video.fps, "objects": obj_ids,
               "encoding": "COCO RLE, uncompressed counts, column-major, starting with background",
               "frames": [{"frame_idx": i, "name": names[i], "masks": {str(k): rle_encode(m) for k, m in objs.items()}}
                          for i, objs in pred.masks(state)]}
        path.write_text(json.dumps(doc))
    else:
        n = state.num_frames
        everywhere = np.zeros(shape, bool)
        for _, objs in pred.masks(state):
            everywhere |= _union(objs, shape).astype(bool)
        box = mask_bbox(everywhere) if everywhere.any() else [0, 0, shape[1], shape[0]]
        step = max(1, -(-n // STICKER_MAX_FRAMES))
        pairs = ((state.video[i], _union(pred.object_masks(state, i), shape)) for i in range(0, n, step))
        path = write_sticker(path, pairs, box=box, fps=state.video.fps / step)
        media = "image/webp" if path.suffix == ".webp" else "image/apng"
    return path, media
