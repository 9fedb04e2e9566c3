"""Export formats that annotation and editing tools read: COCO JSON, DAVIS palette PNGs,
polygons, RGBA cut-outs and a WebM (VP9) sticker with alpha.

Several objects per frame: the annotation formats take ``FrameMasks`` (a frame's index, its
name and a mapping ``object id -> mask``), so that one writer serves one object today and
several later; ``single_object`` wraps today's (frame_idx, mask) stream. Frame names (e.g.
``"00003"`` for a frame file ``00003.jpg``, ``FrameSource.frame_names``) name the files.

* ``coco.json`` (``write_coco_json``): a COCO data set. ``images``: id (frame index + 1),
  file_name (name + ``image_suffix``), width, height, frame_index. ``annotations``: one per
  object per frame where the object has pixels: id, image_id, category_id, track_id (the
  object id, the same object across frames), segmentation (COCO *compressed* RLE, the string
  form pycocotools writes), area (pixels), bbox [x, y, w, h], iscrowd 0. ``categories``: one
  per distinct object name (default name "object").
* ``palette/<name>.png`` (``write_palette_pngs``): DAVIS-style 8-bit indexed ("P") PNGs:
  index 0 background, index k object k, the DAVIS / PASCAL VOC palette (``davis_palette``).
* ``polygons.json`` (``write_polygons_json``): per frame and object the boundary contours.
  Coordinates follow COCO's convention: pixel (row r, column c) is the square [c, c+1] x
  [r, r+1], so vertices are pixel corners (0.5 px off ivos's click coordinates, whose pixel
  centres are integers) and ``pycocotools.mask.frPyObjects`` rasterises them back exactly.
  ``contours``: {points [[x, y], ...], hole, parent}: outer contours run clockwise on screen
  (y down), holes counter-clockwise, ``parent`` is the index of a hole's enclosing outer
  contour; the mask is the even-odd fill of all contours. ``coco``: COCO polygons (flat
  [x1, y1, x2, y2, ...] lists), one per outer contour with its holes joined in by zero-width
  cuts (COCO polygons cannot otherwise hold holes; pycocotools fills them back exactly).
  Contours follow the pixel edges (lossless); ``tolerance`` > 0 simplifies them
  (Douglas-Peucker, in px). Our own tracing, not ``cv2.findContours``: OpenCV's contours run
  through the boundary pixels' centres, so pycocotools rasterises them back half a pixel short
  along every edge (a 2-px-wide bar keeps IoU 0.49, a disk of radius 5 0.75; ours 1.0:
  ``python -m ivos.bench.polygons``, benchmarks/results/polygons.md).
* ``cutouts/<name>.png`` (``write_cutouts``): the frame as RGBA with the mask as alpha
  (``feather`` for a soft edge). Full frame by default, so a cut-out lies exactly over its
  frame in an editor; ``crop=True`` crops each to its object's box (grown by the feather) and
  records the box [x, y, w, h] in the PNG text chunk ``ivos:box``.
* ``sticker.webm`` (``write_sticker_webm``): the sticker (as ``write_sticker``: cropped,
  scaled, optional feather) as VP9 with alpha (libvpx-vp9, yuva420p, PyAV). The alpha plane
  travels in Matroska BlockAdditional side data: FFmpeg's native ``vp9`` decoder (PyAV's and
  ffmpeg's default) ignores it and returns yuv420p; the ``libvpx-vp9`` decoder returns
  yuva420p. ``read_webm_rgba`` decodes that way; browsers (Chrome, Firefox) show the alpha.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator, Mapping, Sequence

import numpy as np

from .._validate import describe
from ..errors import BackendUnavailable, InvalidInput
from .mask_files import BLEED_PX, check_feather, cutout_rgba, feather_radius, sticker_images
from .rle import coco_rle, mask_bbox

DEFAULT_CATEGORY = "object"
"""Category name of objects without a name of their own (COCO)."""


@dataclass(frozen=True)
class FrameMasks:
    """One frame's masks: ``index`` (frame index), ``name`` (file stem, e.g. ``"00003"``),
    ``objects`` (object id >= 1 -> (H, W) mask, nonzero = object; all the same shape)."""
    index: int
    name: str
    objects: Mapping[int, np.ndarray]


def single_object(masks: Iterable[tuple[int, np.ndarray]], names: Sequence[str], *,
                  obj_id: int = 1) -> Iterator[FrameMasks]:
    """``FrameMasks`` for one object from (frame_idx, (H, W) mask) pairs; ``names[frame_idx]``
    names each frame."""
    for idx, mask in masks:
        yield FrameMasks(int(idx), names[idx], {obj_id: mask})


def _checked(frame: FrameMasks) -> tuple[int, int]:
    """The (H, W) shared by a frame's masks; ``InvalidInput`` on bad ids or shapes."""
    if not isinstance(frame, FrameMasks):
        raise InvalidInput(f"frames must yield FrameMasks, got {describe(frame)}")
    shape = None
    for obj_id, mask in frame.objects.items():
        if isinstance(obj_id, bool) or not isinstance(obj_id, (int, np.integer)) or obj_id < 1:
            raise InvalidInput(f"object ids must be integers >= 1, got {obj_id!r} in frame {frame.name}")
        if not isinstance(mask, np.ndarray) or mask.ndim != 2:
            raise InvalidInput(f"mask of object {obj_id} in frame {frame.name} must be a 2-D (H, W) array, "
                               f"got {describe(mask)}")
        if shape is not None and mask.shape != shape:
            raise InvalidInput(f"masks in frame {frame.name} differ in shape: {shape} and {mask.shape}")
        shape = mask.shape
    if shape is None:
        raise InvalidInput(f"frame {frame.name} has no objects: give at least one (empty masks are fine)")
    return shape


# ---------------------------------------------------------------- COCO

def write_coco_json(path: Path, frames: Iterable[FrameMasks], *, video: str = "",
                    category_names: Mapping[int, str] | None = None, image_suffix: str = ".jpg") -> int:
    """Writes a COCO data set (module docstring) to ``path``; ``category_names``: object id ->
    category name (default "object"); ``image_suffix`` ends each image's file_name. Returns
    the number of annotations."""
    names = dict(category_names or {})
    images, annotations, categories = [], [], {}
    for frame in frames:
        h, w = _checked(frame)
        image_id = int(frame.index) + 1
        images.append({"id": image_id, "file_name": f"{frame.name}{image_suffix}", "width": int(w),
                       "height": int(h), "frame_index": int(frame.index)})
        for obj_id, mask in frame.objects.items():
            category = categories.setdefault(names.get(obj_id, DEFAULT_CATEGORY), len(categories) + 1)
            area = int(np.count_nonzero(mask))
            if area == 0:  # the object is not in this frame
                continue
            annotations.append({"id": len(annotations) + 1, "image_id": image_id, "category_id": category,
                                "track_id": int(obj_id), "segmentation": coco_rle(mask), "area": area,
                                "bbox": mask_bbox(mask), "iscrowd": 0})
    if not images:
        raise InvalidInput("frames is empty: nothing to write")
    doc = {"info": {"description": f"ivos segmentation of {video}".strip(), "video": video},
           "images": images, "annotations": annotations,
           "categories": [{"id": i, "name": n, "supercategory": n} for n, i in categories.items()]}
    path.write_text(json.dumps(doc) + "\n")
    return len(annotations)


# ---------------------------------------------------------------- DAVIS palette PNGs

def davis_palette() -> np.ndarray:
    """(256, 3) uint8: the DAVIS / PASCAL VOC colormap (index 1 = (128, 0, 0), 2 = (0, 128, 0),
    3 = (128, 128, 0), 4 = (0, 0, 128), ...): bit j of the index's every third bit, reversed."""
    index = np.arange(256)
    palette = np.zeros((256, 3), np.int64)
    for j in range(8):
        for c in range(3):
            palette[:, c] |= ((index >> (3 * j + c)) & 1) << (7 - j)
    return palette.astype(np.uint8)


def palette_indices(frame: FrameMasks) -> np.ndarray:
    """(H, W) uint8 label image: 0 background, the object id where the object is (ids 1..255;
    where objects overlap, the later one in ``frame.objects`` wins)."""
    shape = _checked(frame)
    labels = np.zeros(shape, np.uint8)
    for obj_id, mask in frame.objects.items():
        if obj_id > 255:
            raise InvalidInput(f"palette PNGs hold object ids 1..255, got {obj_id} in frame {frame.name}")
        labels[mask != 0] = obj_id
    return labels


def write_palette_pngs(folder: Path, frames: Iterable[FrameMasks]) -> int:
    """Writes ``<folder>/<name>.png`` per frame: mode "P", indices from ``palette_indices``,
    the DAVIS palette. Returns the count."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    palette = davis_palette().ravel().tolist()
    n = 0
    for frame in frames:
        image = Image.fromarray(palette_indices(frame))
        image.putpalette(palette)  # "L" -> "P"
        image.save(folder / f"{frame.name}.png", optimize=False)
        n += 1
    return n


# ---------------------------------------------------------------- polygons

@dataclass(frozen=True)
class Contour:
    """A closed boundary: ``points`` (N, 2) int64 [x, y] pixel corners (COCO convention, module
    docstring), ``hole`` (True for a hole's boundary), ``parent`` (a hole's enclosing outer
    contour, an index into the same list; None for outer contours)."""
    points: np.ndarray
    hole: bool
    parent: int | None = None


_STEPS = np.array([[1, 0], [0, 1], [-1, 0], [0, -1]])  # east, south, west, north as (dx, dy); y down


def _boundary_edges(mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every unit edge between an object and a background pixel, directed so the object lies
    on its right (y down): (starts (E, 2) [x, y] corners, directions (E,) indices into _STEPS)."""
    m = np.pad(np.asarray(mask) != 0, 1)
    above, below = m[:-1, 1:-1], m[1:, 1:-1]  # (H+1, W): the pixels above / below the line y = r
    left, right = m[1:-1, :-1], m[1:-1, 1:]   # (H, W+1): the pixels left / right of the line x = c
    parts = []
    for sel, direction, dx, dy in ((below & ~above, 0, 0, 0), (left & ~right, 1, 0, 0),
                                   (above & ~below, 2, 1, 0), (right & ~left, 3, 0, 1)):
        y, x = np.nonzero(sel)
        parts.append((np.stack([x + dx, y + dy], 1), np.full(len(x), direction)))
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def _edge_loops(starts: np.ndarray, directions: np.ndarray, width: int) -> list[np.ndarray]:
    """Chains the directed edges into closed loops (lists of edge indices). Where two object
    pixels touch only at a corner, the loop turns right: they get separate contours."""
    corner = starts[:, 1] * (width + 1) + starts[:, 0]
    ends = starts + _STEPS[directions]
    end_corner = ends[:, 1] * (width + 1) + ends[:, 0]
    order = np.argsort(corner, kind="stable")
    first = np.searchsorted(corner[order], end_corner)
    nxt = order[first]
    two_ways = (first + 1 < len(order)) & (corner[order[np.minimum(first + 1, len(order) - 1)]] == end_corner)
    turn_right = (directions + 1) % 4
    second = order[np.minimum(first + 1, len(order) - 1)]
    pick_second = two_ways & (directions[second] == turn_right)
    nxt = np.where(pick_second, second, nxt).tolist()
    seen = np.zeros(len(starts), bool)
    loops = []
    for e in range(len(starts)):
        if seen[e]:
            continue
        loop = []
        while not seen[e]:
            seen[e] = True
            loop.append(e)
            e = nxt[e]
        loops.append(np.asarray(loop))
    return loops


def _signed_area(points: np.ndarray) -> float:
    """Shoelace area of a closed polygon (N, 2); > 0 for clockwise on screen (y down)."""
    x, y = points[:, 0].astype(np.float64), points[:, 1].astype(np.float64)
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


def _inside(point: np.ndarray, polygon: np.ndarray) -> bool:
    """Even-odd test of ``point`` [x, y] (never on an edge) against a closed polygon (N, 2)."""
    x, y = point
    x0, y0 = polygon[:, 0], polygon[:, 1]
    if not (x0.min() < x < x0.max() and y0.min() < y < y0.max()):
        return False
    x1, y1 = np.roll(x0, -1), np.roll(y0, -1)
    crosses = (y0 > y) != (y1 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xs = x0 + (y - y0) * (x1 - x0) / (y1 - y0)
    return bool(np.count_nonzero(crosses & (xs > x)) % 2)


def _douglas_peucker(chain: np.ndarray, tolerance: float) -> np.ndarray:
    """The points of an open chain (N, 2) kept by Douglas-Peucker (end points always kept)."""
    keep = np.zeros(len(chain), bool)
    keep[[0, -1]] = True
    stack = [(0, len(chain) - 1)]
    pts = chain.astype(np.float64)
    while stack:
        i, j = stack.pop()
        if j <= i + 1:
            continue
        seg, rel = pts[j] - pts[i], pts[i + 1:j] - pts[i]
        norm = np.hypot(*seg)
        dist = (np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm) if norm > 0 else np.hypot(rel[:, 0], rel[:, 1])
        k = int(np.argmax(dist))
        if dist[k] > tolerance:
            keep[i + 1 + k] = True
            stack += [(i, i + 1 + k), (i + 1 + k, j)]
    return chain[keep]


def _simplify_closed(points: np.ndarray, tolerance: float) -> np.ndarray:
    """Douglas-Peucker on a closed polygon (split at the vertex farthest from the first)."""
    far = int(np.argmax(np.hypot(*(points - points[0]).T)))
    if far == 0 or len(points) < 4:
        return points
    a = _douglas_peucker(points[:far + 1], tolerance)
    b = _douglas_peucker(np.concatenate([points[far:], points[:1]]), tolerance)
    simplified = np.concatenate([a, b[1:-1]])
    return simplified if len(simplified) >= 3 else points


def mask_contours(mask: np.ndarray, *, tolerance: float = 0.0) -> list[Contour]:
    """Boundary contours of an (H, W) mask (nonzero = object), outer contours and holes, as
    ``Contour``s with pixel-corner vertices (COCO convention). Collinear vertices are dropped;
    ``tolerance`` > 0 (px) also simplifies (Douglas-Peucker). Pure numpy (no OpenCV)."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise InvalidInput(f"mask must be a 2-D (H, W) array, got {describe(mask)}")
    if not np.isfinite(tolerance) or tolerance < 0:
        raise InvalidInput(f"tolerance must be a number of pixels >= 0, got {tolerance!r}")
    starts, directions = _boundary_edges(mask)
    loops = _edge_loops(starts, directions, mask.shape[1])
    points = [starts[loop][directions[loop] != directions[np.roll(loop, 1)]] for loop in loops]
    areas = [_signed_area(p) for p in points]
    outers = [i for i, a in enumerate(areas) if a > 0]
    contours = []
    for loop, pts, area in zip(loops, points, areas):
        parent = None
        if area < 0:  # a hole: its parent is the smallest outer contour around an object pixel next to it
            step = _STEPS[directions[loop[0]]]
            probe = starts[loop[0]] + 0.5 * step + 0.5 * np.array([-step[1], step[0]])
            around = [i for i in outers if _inside(probe, points[i])]
            parent = min(around, key=lambda i: areas[i]) if around else None
        simplified = _simplify_closed(pts, tolerance) if tolerance > 0 else pts
        contours.append(Contour(simplified.astype(np.int64), area < 0, parent))
    return contours


def coco_polygons(contours: Sequence[Contour]) -> list[list[float]]:
    """COCO polygons (flat [x1, y1, x2, y2, ...] lists): one per outer contour, its holes
    joined in by zero-width cuts to its first vertex (pycocotools fills that back exactly)."""
    polygons = []
    for i, outer in enumerate(contours):
        if outer.hole:
            continue
        points = [outer.points]
        for hole in contours:
            if hole.hole and hole.parent == i:
                points += [outer.points[:1], hole.points, hole.points[:1], outer.points[:1]]
        polygons.append(np.concatenate(points).ravel().tolist())
    return polygons


def write_polygons_json(path: Path, frames: Iterable[FrameMasks], *, video: str = "",
                        tolerance: float = 0.0) -> int:
    """Writes ``polygons.json`` (module docstring): per frame {frame_idx, name, objects: [
    {object_id, contours: [{points, hole, parent}], coco: [flat lists]}]}. Returns the frame count."""
    out_frames, size = [], None
    for frame in frames:
        size = _checked(frame)
        objects = []
        for obj_id, mask in frame.objects.items():
            contours = mask_contours(mask, tolerance=tolerance)
            objects.append({"object_id": int(obj_id),
                            "contours": [{"points": c.points.tolist(), "hole": c.hole, "parent": c.parent}
                                         for c in contours],
                            "coco": coco_polygons(contours)})
        out_frames.append({"frame_idx": int(frame.index), "name": frame.name, "objects": objects})
    if size is None:
        raise InvalidInput("frames is empty: nothing to write")
    doc = {"video": video, "height": int(size[0]), "width": int(size[1]),
           "coordinates": "COCO: pixel (row r, column c) is the square [c, c+1] x [r, r+1]; vertices are "
                          "pixel corners; outer contours clockwise on screen, holes counter-clockwise; the "
                          "mask is the even-odd fill of all contours",
           "frames": out_frames}
    path.write_text(json.dumps(doc) + "\n")
    return len(out_frames)


# ---------------------------------------------------------------- cut-outs

def write_cutouts(folder: Path, items: Iterable[tuple[str, np.ndarray, np.ndarray]], *,
                  feather: float = 0.0, crop: bool = False) -> int:
    """Writes ``<folder>/<name>.png`` RGBA per (name, frame (H, W, 3) uint8, mask (H, W)):
    ``cutout_rgba`` (alpha = mask, ``feather`` px soft edge). ``crop``: only the mask's box
    grown by the feather (an empty mask gives one transparent pixel), the box [x, y, w, h]
    stored in the PNG text chunk ``ivos:box``; else the full frame. Returns the count."""
    from PIL import Image, PngImagePlugin

    feather = check_feather(feather)
    folder.mkdir(parents=True, exist_ok=True)
    n = 0
    for name, frame, mask in items:
        mask = np.asarray(mask)
        if not isinstance(frame, np.ndarray) or frame.ndim != 3 or frame.shape[:2] != mask.shape:
            raise InvalidInput(f"frame {name} must be (H, W, 3) with H, W those of its mask {mask.shape}, "
                               f"got {describe(frame)}")
        rgba, box = _cutout(frame, mask, feather, crop=crop)
        info = None
        if crop:
            info = PngImagePlugin.PngInfo()
            info.add_text("ivos:box", json.dumps(box))
        Image.fromarray(rgba, "RGBA").save(folder / f"{name}.png", pnginfo=info, optimize=False)
        n += 1
    return n


def _cutout(frame: np.ndarray, mask: np.ndarray, feather: float, *, crop: bool) -> tuple[np.ndarray, list[int]]:
    """(RGBA (h, w, 4) uint8, its box [x, y, w, h] in the frame) for ``write_cutouts``. Only the
    mask's box grown by the feather and the colour bleed is computed."""
    h, w = mask.shape
    x, y, bw, bh = mask_bbox(mask)
    if bw == 0:  # nothing to cut out
        return (np.zeros((1, 1, 4), np.uint8), [0, 0, 1, 1]) if crop else (np.zeros((h, w, 4), np.uint8), [0, 0, w, h])
    r = feather_radius(feather)
    m = r + BLEED_PX
    x0, y0, x1, y1 = max(0, x - m), max(0, y - m), min(w, x + bw + m), min(h, y + bh + m)
    rgba = cutout_rgba(frame[y0:y1, x0:x1], mask[y0:y1, x0:x1], feather=feather)
    if not crop:
        full = np.zeros((h, w, 4), np.uint8)
        full[y0:y1, x0:x1] = rgba
        return full, [0, 0, w, h]
    cx0, cy0, cx1, cy1 = max(0, x - r), max(0, y - r), min(w, x + bw + r), min(h, y + bh + r)
    return rgba[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], [cx0, cy0, cx1 - cx0, cy1 - cy0]


# ---------------------------------------------------------------- WebM with alpha

def _import_av():
    try:
        import av
    except ImportError:
        raise BackendUnavailable("writing WebM needs PyAV: pip install 'ivos[video]'") from None
    return av


def write_sticker_webm(path: Path, frames: Iterable[tuple[np.ndarray, np.ndarray]], *, box: Sequence[int],
                       fps: float, max_side: int = 512, feather: float = 0.0, crf: int = 30) -> int:
    """The sticker (``sticker_images``: ``box`` [x, y, w, h], ``max_side``, ``feather``) as a WebM
    with alpha: VP9 (libvpx-vp9), yuva420p, ``crf`` quality (lower is better). Odd sizes are
    padded by one transparent pixel. Returns the frame count."""
    from fractions import Fraction

    av = _import_av()
    if "libvpx-vp9" not in av.codecs_available:
        raise BackendUnavailable("this PyAV's FFmpeg has no libvpx-vp9 encoder: pip install 'ivos[video]' "
                                 "(the PyAV wheels include it)")
    n = 0
    with av.open(str(path), "w", format="webm") as container:
        stream = None
        for rgba in sticker_images(frames, box=box, max_side=max_side, feather=feather):
            h, w = rgba.shape[:2]
            if h % 2 or w % 2:
                rgba = np.pad(rgba, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
                rgba[h:, :, 3] = 0
                rgba[:, w:, 3] = 0
            if stream is None:
                stream = container.add_stream("libvpx-vp9", rate=Fraction(fps).limit_denominator(1001))
                stream.width, stream.height, stream.pix_fmt = rgba.shape[1], rgba.shape[0], "yuva420p"
                stream.options = {"crf": str(int(crf)), "b": "0", "auto-alt-ref": "0", "deadline": "good",
                                  "cpu-used": "5", "row-mt": "1"}
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgba), format="rgba").reformat(format="yuva420p")
            container.mux(stream.encode(frame))
            n += 1
        if stream is None:
            raise InvalidInput("frames is empty: a sticker needs at least one frame")
        container.mux(stream.encode(None))
    return n


def read_webm_rgba(path: Path) -> Iterator[np.ndarray]:
    """Decodes a VP9 WebM with alpha to (H, W, 4) uint8 RGBA frames, through the libvpx-vp9
    decoder (FFmpeg's native vp9 decoder drops the alpha, see the module docstring)."""
    av = _import_av()
    try:
        decoder = av.codec.CodecContext.create("libvpx-vp9", "r")
    except Exception:  # noqa: BLE001 -- PyAV raises differently across versions when a codec is missing
        raise BackendUnavailable("decoding VP9 alpha needs FFmpeg's libvpx-vp9 decoder (the PyAV wheels "
                                 "include it): pip install 'ivos[video]'") from None
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        for packet in container.demux(stream):
            for frame in decoder.decode(packet):  # the demuxer's last, empty packet flushes the decoder
                yield frame.to_ndarray(format="rgba")
