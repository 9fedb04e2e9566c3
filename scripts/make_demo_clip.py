"""Renders the bundled demo clip ``engine/data/demo_clip.mp4`` (+ ``demo_clip.json``: the click
that selects the object, and the ground-truth masks' RLE for tests).

The clip is generated procedurally here, from nothing but numpy: a textured, shaded
"pebble" (an irregular blob with a stripe texture) moves and turns over a textured
background (smooth value noise + a tiled pattern) while the light dims and brightens.
It is our own work, released under CC0 1.0 (public domain dedication); see engine/data/DEMO_CLIP.md.

Usage (from the repository root)::

    python scripts/make_demo_clip.py            # 40 frames, 480x272, 12 fps, H.264
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def value_noise(h: int, w: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w) float32 smooth noise in [0, 1]: bilinear interpolation of a random grid."""
    gh, gw = cells + 1, int(cells * w / h) + 2
    grid = rng.random((gh, gw))
    y = np.linspace(0, cells, h)[:, None]
    x = np.linspace(0, gw - 2, w)[None, :]
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    fy, fx = fy * fy * (3 - 2 * fy), fx * fx * (3 - 2 * fx)
    g = lambda a, b: grid[np.minimum(a, gh - 1), np.minimum(b, gw - 1)]  # noqa: E731
    top = g(y0, x0) * (1 - fx) + g(y0, x0 + 1) * fx
    bot = g(y0 + 1, x0) * (1 - fx) + g(y0 + 1, x0 + 1) * fx
    return (top * (1 - fy) + bot * fy).astype(np.float32)


def background(h: int, w: int, rng: np.random.Generator) -> np.ndarray:
    """(h, w, 3) float32 in [0, 1]: green-brown noise with a faint tile pattern."""
    n = 0.6 * value_noise(h, w, 4, rng) + 0.4 * value_noise(h, w, 16, rng)
    yy, xx = np.mgrid[0:h, 0:w]
    tiles = 0.06 * (((yy // 24) + (xx // 24)) % 2)
    base = np.stack([0.35 + 0.3 * n, 0.45 + 0.25 * n, 0.25 + 0.2 * n], -1)
    return np.clip(base + tiles[..., None], 0, 1)


def pebble_mask(h: int, w: int, cx: float, cy: float, r: float, angle: float) -> tuple[np.ndarray, np.ndarray]:
    """Irregular blob (bool (h, w)) and its (h, w) radial coordinate in [0, 1] for shading."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    dx, dy = xx - cx, yy - cy
    theta = np.arctan2(dy, dx) - angle
    radius = r * (1 + 0.18 * np.sin(3 * theta) + 0.08 * np.cos(5 * theta + 1.0))
    rho = np.sqrt(dx * dx + dy * dy) / radius
    return rho < 1.0, rho


def render(n_frames: int, h: int, w: int, seed: int) -> tuple[list[np.ndarray], list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    bg = background(h, w, rng)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    frames, masks = [], []
    for t in range(n_frames):
        u = t / max(1, n_frames - 1)
        cx = w * (0.25 + 0.5 * u)
        cy = h * (0.5 + 0.18 * np.sin(2 * np.pi * u))
        r = h * (0.22 + 0.03 * np.sin(3 * np.pi * u))
        angle = 1.5 * np.pi * u
        mask, rho = pebble_mask(h, w, cx, cy, r, angle)
        # stripes that turn with the pebble, shaded like a sphere lit from the top-left
        stripes = 0.5 + 0.5 * np.sin(0.25 * ((xx - cx) * np.cos(angle) + (yy - cy) * np.sin(angle)))
        shade = np.clip(1.0 - 0.6 * rho ** 2 + 0.25 * ((cx - xx) + (cy - yy)) / r * 0.3, 0.2, 1.2)
        obj = np.stack([0.85 * shade, (0.35 + 0.25 * stripes) * shade, (0.15 + 0.2 * stripes) * shade], -1)
        light = 0.8 + 0.2 * np.cos(2 * np.pi * u)  # the light dims and brightens
        shadow = np.clip(1 - 0.35 * np.exp(-((xx - cx - 12) ** 2 + (yy - cy - 14) ** 2) / (2 * (1.1 * r) ** 2)), 0, 1)
        img = np.where(mask[..., None], obj, bg * shadow[..., None]) * light
        img += rng.normal(0, 0.012, img.shape)  # sensor noise
        frames.append((np.clip(img, 0, 1) * 255).round().astype(np.uint8))
        masks.append(mask.astype(np.uint8))
    return frames, masks


def write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    import av

    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = frames[0].shape[1], frames[0].shape[0]
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "23", "preset": "slow"}
        for f in frames:
            container.mux(stream.encode(av.VideoFrame.from_ndarray(f, format="rgb24")))
        container.mux(stream.encode(None))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--frames", type=int, default=40)
    p.add_argument("--height", type=int, default=272)
    p.add_argument("--width", type=int, default=480)
    p.add_argument("--fps", type=int, default=12)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--out", type=Path, default=ROOT / "engine" / "data" / "demo_clip.mp4")
    args = p.parse_args()
    import sys

    sys.path.insert(0, str(ROOT))
    from ivos.formats.rle import rle_encode

    frames, masks = render(args.frames, args.height, args.width, args.seed)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_mp4(args.out, frames, args.fps)
    # The demo's click, chosen by hand on frame 0: the pebble's centre. One click is enough
    # with the shipped networks (mean IoU 0.979 over the clip; see DEMO_CLIP.md).
    clicks = [(120, 136)]
    outside = [c for c in clicks if not masks[0][c[1], c[0]]]
    if outside:
        raise SystemExit(f"demo clicks {outside} are not on the object in frame 0: update them")
    info = {
        "file": args.out.name,
        "license": "CC0-1.0: generated by scripts/make_demo_clip.py (our own work, no third-party content)",
        "frames": args.frames, "width": args.width, "height": args.height, "fps": args.fps,
        "clicks": [{"x": x, "y": y, "frame": 0} for x, y in clicks],
        "command": "ivos segment demo " + " ".join(f"--click {x},{y}" for x, y in clicks) + " --out out/demo",
        "ground_truth_rle": [rle_encode(m) for m in masks],
    }
    args.out.with_suffix(".json").write_text(json.dumps(info) + "\n")
    print(f"wrote {args.out} ({args.out.stat().st_size / 1024:.0f} KiB) and {args.out.with_suffix('.json').name}")


if __name__ == "__main__":
    main()
