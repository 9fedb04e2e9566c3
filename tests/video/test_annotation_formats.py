"""Export formats annotation tools read (COCO, DAVIS palette PNGs, polygons, cut-outs, WebM with
alpha), each read back the way a tool would; the sticker's edge colours and feathered alpha."""
import argparse
import json

import numpy as np
import pytest

import ivos
from ivos.formats.annotations import (FrameMasks, coco_polygons, davis_palette, mask_contours, read_webm_rgba,
                                      single_object, write_coco_json, write_cutouts, write_palette_pngs,
                                      write_polygons_json, write_sticker_webm)
from ivos.formats.mask_files import cutout_rgba, feather_alpha, sticker_images, write_sticker
from ivos.formats.rle import coco_rle, rle_compress

# pycocotools' decode warns under numpy 2 (its own code, harmless)
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy:DeprecationWarning")

H, W = 48, 64


def _disk(cy, cx, r, h=H, w=W):
    yy, xx = np.mgrid[:h, :w]
    return ((yy - cy) ** 2 + (xx - cx) ** 2 < r * r).astype(np.uint8)


def _shapes():
    """name -> (H, W) uint8 mask: a ring (hole), two components, pixels touching at a corner,
    an island inside a hole, a random blob, the full frame and an empty one."""
    ring = _disk(24, 30, 16) & (1 - _disk(24, 30, 7))
    island = ring | _disk(24, 30, 3)
    two = _disk(12, 12, 8) | _disk(34, 46, 10)
    corners = np.zeros((H, W), np.uint8)
    corners[10:20, 10:20] = 1
    corners[20:30, 20:30] = 1  # touches the first square at one corner only
    rng = np.random.default_rng(3)
    blob = (rng.random((H, W)) < 0.45).astype(np.uint8)
    return {"ring": ring, "island": island, "two": two, "corners": corners, "random": blob,
            "full": np.ones((H, W), np.uint8), "empty": np.zeros((H, W), np.uint8)}


def _iou(a, b):
    a, b = a.astype(bool), b.astype(bool)
    return (a & b).sum() / max(1, (a | b).sum())


# ---------------------------------------------------------------- COCO

@pytest.mark.parametrize("seed", range(5))
def test_compressed_rle_is_what_pycocotools_writes(seed):
    mask_api = pytest.importorskip("pycocotools.mask")
    rng = np.random.default_rng(seed)
    m = (rng.random((rng.integers(1, 60), rng.integers(1, 60))) < rng.random()).astype(np.uint8)
    ours = coco_rle(m)
    theirs = mask_api.encode(np.asfortranarray(m))
    assert ours["counts"] == theirs["counts"].decode() and ours["size"] == list(theirs["size"])
    assert rle_compress([0, 4]) == mask_api.encode(np.asfortranarray(np.ones((2, 2), np.uint8)))["counts"].decode()


def test_coco_json_reads_back_with_pycocotools(tmp_path, capsys):
    coco_api = pytest.importorskip("pycocotools.coco")
    mask_api = pytest.importorskip("pycocotools.mask")
    shapes = _shapes()
    frames = [FrameMasks(0, "00000", {1: shapes["ring"], 2: shapes["corners"]}),
              FrameMasks(1, "00001", {1: shapes["two"], 2: shapes["empty"]}),  # object 2 left the frame
              FrameMasks(2, "00002", {1: shapes["random"], 2: shapes["island"]})]
    n = write_coco_json(tmp_path / "coco.json", frames, video="clip.mp4", category_names={2: "dog"},
                        image_suffix=".png")
    assert n == 5
    coco = coco_api.COCO(str(tmp_path / "coco.json"))
    capsys.readouterr()  # pycocotools prints while indexing
    images = coco.loadImgs(coco.getImgIds())
    assert [(i["file_name"], i["width"], i["height"], i["frame_index"]) for i in images] == [
        ("00000.png", W, H, 0), ("00001.png", W, H, 1), ("00002.png", W, H, 2)]
    assert {c["name"]: c["id"] for c in coco.loadCats(coco.getCatIds())} == {"object": 1, "dog": 2}
    for frame, image in zip(frames, images):
        anns = coco.loadAnns(coco.getAnnIds(imgIds=image["id"]))
        assert {a["track_id"] for a in anns} == {o for o, m in frame.objects.items() if m.any()}
        for a in anns:
            source = frame.objects[a["track_id"]]
            assert a["category_id"] == (2 if a["track_id"] == 2 else 1) and a["iscrowd"] == 0
            assert np.array_equal(coco.annToMask(a), source)
            assert np.array_equal(mask_api.decode(a["segmentation"]), source)
            assert a["area"] == source.sum() == mask_api.area(a["segmentation"])
            assert a["bbox"] == mask_api.toBbox(a["segmentation"]).tolist()


def test_coco_single_object_from_a_mask_stream(tmp_path):
    shapes = _shapes()
    masks = [(0, shapes["ring"]), (1, shapes["two"])]
    write_coco_json(tmp_path / "c.json", single_object(masks, ["a", "b"]))
    doc = json.loads((tmp_path / "c.json").read_text())
    assert [i["file_name"] for i in doc["images"]] == ["a.jpg", "b.jpg"]
    assert doc["categories"] == [{"id": 1, "name": "object", "supercategory": "object"}]
    assert [a["image_id"] for a in doc["annotations"]] == [1, 2]


@pytest.mark.parametrize("frame, message", [
    (FrameMasks(0, "x", {0: np.zeros((4, 4), np.uint8)}), "object ids"),
    (FrameMasks(0, "x", {1: np.zeros(4, np.uint8)}), "2-D"),
    (FrameMasks(0, "x", {1: np.zeros((4, 4), np.uint8), 2: np.zeros((4, 5), np.uint8)}), "differ in shape"),
    (FrameMasks(0, "x", {}), "no objects"),
])
def test_bad_frames_are_refused(tmp_path, frame, message):
    with pytest.raises(ivos.InvalidInput, match=message):
        write_coco_json(tmp_path / "c.json", [frame])
    with pytest.raises(ivos.InvalidInput, match="empty"):
        write_coco_json(tmp_path / "c.json", [])


# ---------------------------------------------------------------- DAVIS palette PNGs

def test_palette_pngs_are_davis_indexed(tmp_path):
    from PIL import Image

    shapes = _shapes()
    frames = [FrameMasks(0, "00000", {1: shapes["ring"], 2: 1 - _disk(24, 30, 20)}),
              FrameMasks(1, "00001", {1: shapes["two"], 3: shapes["empty"]})]
    assert write_palette_pngs(tmp_path / "p", frames) == 2
    with Image.open(tmp_path / "p" / "00000.png") as im:
        assert im.mode == "P"
        labels = np.array(im)
        palette = np.array(im.getpalette()).reshape(-1, 3)
    expected = np.where(frames[0].objects[2] > 0, 2, np.where(shapes["ring"] > 0, 1, 0))
    assert labels.dtype == np.uint8 and np.array_equal(labels, expected)
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert np.array_equal(palette, davis_palette()[:len(palette)])
    assert davis_palette()[255].tolist() == [224, 224, 192]  # the VOC "void" colour
    assert np.array_equal(np.array(Image.open(tmp_path / "p" / "00001.png")), shapes["two"])
    with pytest.raises(ivos.InvalidInput, match="1..255"):
        write_palette_pngs(tmp_path / "p", [FrameMasks(0, "x", {256: shapes["ring"]})])


# ---------------------------------------------------------------- polygons

def _fill(polygons, h=H, w=W):
    """Rasterises COCO flat polygons with pycocotools (the union of the polygons)."""
    mask_api = pytest.importorskip("pycocotools.mask")
    if not polygons:
        return np.zeros((h, w), np.uint8)
    return mask_api.decode(mask_api.merge(mask_api.frPyObjects(polygons, h, w)))


@pytest.mark.parametrize("name", [n for n in _shapes()])
def test_polygons_rasterise_back_to_the_mask(name):
    mask = _shapes()[name]
    contours = mask_contours(mask)
    assert np.array_equal(_fill(coco_polygons(contours)), mask)  # holes are joined in: exact
    even_odd = np.zeros_like(mask)
    for c in contours:
        even_odd ^= _fill([c.points.ravel().tolist()])
    assert np.array_equal(even_odd, mask)
    simplified = mask_contours(mask, tolerance=1.0)
    if mask.sum() > 200 and name != "random":
        assert _iou(_fill(coco_polygons(simplified)), mask) > 0.95
        assert sum(len(c.points) for c in simplified) <= sum(len(c.points) for c in contours)
        if name in ("ring", "two"):  # curved: the staircases go
            assert sum(len(c.points) for c in simplified) < sum(len(c.points) for c in contours) / 2


def test_polygons_mark_holes_and_components():
    shapes = _shapes()
    ring = mask_contours(shapes["ring"])
    assert [c.hole for c in ring] == [False, True] and ring[1].parent == 0
    island = mask_contours(shapes["island"])
    assert sorted(c.hole for c in island) == [False, False, True]
    hole = next(c for c in island if c.hole)
    assert not island[hole.parent].hole and len(island[hole.parent].points) > len(hole.points)
    assert [c.hole for c in mask_contours(shapes["two"])] == [False, False]
    assert [c.hole for c in mask_contours(shapes["corners"])] == [False, False]  # corner contact: 2 contours
    square = np.zeros((5, 6), np.uint8)
    square[1:3, 2:5] = 1
    (c,) = mask_contours(square)
    assert c.points.tolist() == [[2, 1], [5, 1], [5, 3], [2, 3]]  # pixel corners, clockwise on screen (y down)
    assert mask_contours(np.zeros((3, 3), np.uint8)) == []
    with pytest.raises(ivos.InvalidInput, match="mask"):
        mask_contours(np.zeros(3))


def test_polygons_json(tmp_path):
    shapes = _shapes()
    frames = [FrameMasks(0, "00000", {1: shapes["ring"], 2: shapes["two"]}), FrameMasks(1, "00001", {1: shapes["empty"]})]
    assert write_polygons_json(tmp_path / "p.json", frames, video="v") == 2
    doc = json.loads((tmp_path / "p.json").read_text())
    assert (doc["height"], doc["width"]) == (H, W)
    obj = doc["frames"][0]["objects"][0]
    assert obj["object_id"] == 1 and [c["hole"] for c in obj["contours"]] == [False, True]
    assert obj["contours"][1]["parent"] == 0 and all(len(p) == 2 for p in obj["contours"][0]["points"])
    assert np.array_equal(_fill(obj["coco"]), shapes["ring"])
    assert np.array_equal(_fill(doc["frames"][0]["objects"][1]["coco"]), shapes["two"])
    assert doc["frames"][1] == {"frame_idx": 1, "name": "00001", "objects": [{"object_id": 1, "contours": [], "coco": []}]}


# ---------------------------------------------------------------- cut-outs and feathered alpha

def _red_on_green(mask):
    frame = np.empty(mask.shape + (3,), np.uint8)
    frame[:] = (30, 200, 30)
    frame[mask > 0] = (230, 30, 30)
    return frame


def test_cutouts_full_frame_and_cropped(tmp_path):
    from PIL import Image

    mask = _shapes()["ring"]
    frame = _red_on_green(mask)
    frame[mask > 0] = np.random.default_rng(0).integers(0, 255, (int(mask.sum()), 3))
    assert write_cutouts(tmp_path / "c", [("00007", frame, mask), ("00008", frame, 0 * mask)]) == 2
    with Image.open(tmp_path / "c" / "00007.png") as im:
        assert im.mode == "RGBA" and im.size == (W, H)
        rgba = np.array(im)
    assert np.array_equal(rgba[..., 3], mask * 255)
    assert np.array_equal(rgba[mask > 0, :3], frame[mask > 0])
    assert not np.array_equal(rgba[mask == 0, :3], frame[mask == 0])  # no background kept under alpha 0
    assert np.array(Image.open(tmp_path / "c" / "00008.png"))[..., 3].max() == 0

    write_cutouts(tmp_path / "k", [("00007", frame, mask)], crop=True, feather=4)
    with Image.open(tmp_path / "k" / "00007.png") as im:
        x, y, w, h = json.loads(im.text["ivos:box"])
        cropped = np.array(im)
    assert cropped.shape == (h, w, 4) and [x, y] == [15 - 2, 9 - 2]  # the ring's box, grown by the feather's reach
    full = np.zeros((H, W), np.uint8)
    full[y:y + h, x:x + w] = cropped[..., 3]
    assert np.array_equal(full, cutout_rgba(frame, mask, feather=4)[..., 3])


def _distance_to_edge(mask):
    """Chessboard distance (px) of every pixel to the nearest pixel of the other side."""
    from scipy import ndimage

    m = mask.astype(bool)
    return np.where(m, ndimage.distance_transform_cdt(m, "chessboard"),
                    ndimage.distance_transform_cdt(~m, "chessboard"))


@pytest.mark.parametrize("feather", [2, 6, 10])
def test_feather_softens_the_edge_only(feather):
    mask = _disk(24, 30, 15) | _disk(24, 50, 6)
    alpha = (feather_alpha(mask, feather) * 255).round()
    distance = _distance_to_edge(mask)
    reach = -(-feather // 2)
    soft = (alpha > 0) & (alpha < 255)
    assert soft.any() and distance[soft].max() <= reach
    assert np.array_equal(alpha[distance > reach], mask[distance > reach] * 255.0)
    inside_edge = (distance == 1) & (mask > 0)
    outside_edge = (distance == 1) & (mask == 0)
    assert 0 < alpha[outside_edge].mean() < 128 < alpha[inside_edge].mean() < 255
    hard = feather_alpha(mask, 0)
    assert hard.dtype == np.float32 and np.array_equal(hard, mask.astype(np.float32))
    for bad in (-1, float("nan"), "soft"):
        with pytest.raises(ivos.InvalidInput, match="feather"):
            feather_alpha(mask, bad)


def test_feathered_cutout_shows_object_colours_not_background():
    mask = _disk(24, 30, 15)
    rgba = cutout_rgba(_red_on_green(mask), mask, feather=8).astype(int)
    visible = rgba[..., 3] > 0
    assert (visible & (mask == 0)).any()  # the feather reaches outside the mask
    assert np.abs(rgba[visible, :3] - [230, 30, 30]).max() <= 1  # ... with the object's colour


def _edge_ring(alpha):
    """Visible pixels with a fully transparent 4-neighbour (the sticker's outer edge)."""
    vis = alpha > 0
    p = np.pad(vis, 1)
    interior = p[:-2, 1:-1] & p[2:, 1:-1] & p[1:-1, :-2] & p[1:-1, 2:]
    return vis & ~interior


def _old_sticker_frame(frame, mask, size, tmp_path):
    """What write_sticker wrote before the fringe fix: RGBA of the raw frame, resized, WebP."""
    from PIL import Image

    rgba = Image.fromarray(np.dstack([frame, mask * 255]).astype(np.uint8), "RGBA").resize(size, Image.LANCZOS)
    rgba.save(tmp_path / "old.webp", quality=80, method=4, exact=False)
    return np.array(Image.open(tmp_path / "old.webp").convert("RGBA")).astype(int)


@pytest.mark.parametrize("max_side", [512, 90])
def test_sticker_edge_has_no_background_fringe(tmp_path, max_side):
    from PIL import Image, features

    if not features.check("webp"):
        pytest.skip("Pillow without WebP writes a lossless APNG sticker: no fringe to measure")
    h, w = 120, 160
    mask = _disk(60, 80, 40, h, w) | _disk(30, 40, 12, h, w)
    frame = _red_on_green(mask)
    out = write_sticker(tmp_path / "s.webp", [(frame, mask)], box=[0, 0, w, h], fps=10, max_side=max_side)
    new = np.array(Image.open(out).convert("RGBA")).astype(int)
    old = _old_sticker_frame(frame, mask, new.shape[1::-1], tmp_path)
    error_new = np.abs(new[_edge_ring(new[..., 3]), :3].mean(0) - [230, 30, 30])
    error_old = np.abs(old[_edge_ring(old[..., 3]), :3].mean(0) - [230, 30, 30])
    assert error_new.max() < 4 and error_new.sum() < error_old.sum() / 3, (error_new, error_old)


def test_sticker_images_feather_and_box():
    mask = _disk(24, 30, 12)
    frame = _red_on_green(mask)
    (hard,) = sticker_images([(frame, mask)], box=[18, 12, 24, 24], max_side=512)
    assert hard.shape == (24, 24, 4) and set(np.unique(hard[..., 3])) == {0, 255}
    (soft,) = sticker_images([(frame, mask)], box=[18, 12, 24, 24], max_side=512, feather=6)
    assert soft.shape == (30, 30, 4)  # the box grows by the feather's reach (3 px a side)
    assert ((soft[..., 3] > 0) & (soft[..., 3] < 255)).sum() > 50
    assert np.abs(soft[soft[..., 3] > 0, :3].astype(int) - [230, 30, 30]).max() <= 1
    (small,) = sticker_images([(frame, mask)], box=[18, 12, 24, 24], max_side=12)
    assert small.shape == (12, 12, 4)
    with pytest.raises(ivos.InvalidInput, match="box"):
        next(sticker_images([(frame, mask)], box=[0, 0, 0, 5]))


# ---------------------------------------------------------------- WebM with alpha

def _clip(n=6, h=72, w=96):
    frames, masks = [], []
    for t in range(n):
        m = _disk(36, 30 + 5 * t, 18, h, w)
        masks.append(m)
        frames.append(_red_on_green(m))
    return frames, masks


def _erode(mask, px):
    from scipy import ndimage

    return ndimage.binary_erosion(mask.astype(bool), iterations=px) if px else mask.astype(bool)


def test_webm_sticker_keeps_alpha(tmp_path):
    av = pytest.importorskip("av")
    if "libvpx-vp9" not in av.codecs_available:
        pytest.skip("this PyAV's FFmpeg has no libvpx-vp9")
    frames, masks = _clip()
    h, w = masks[0].shape
    assert write_sticker_webm(tmp_path / "s.webm", zip(frames, masks), box=[0, 0, w, h], fps=10) == len(frames)
    decoded = list(read_webm_rgba(tmp_path / "s.webm"))
    assert len(decoded) == len(frames) and decoded[0].shape == (h, w, 4)
    for rgba, mask in zip(decoded, masks):
        alpha = rgba[..., 3].astype(int)
        assert alpha[_erode(mask, 2)].min() >= 240 and alpha[_erode(1 - mask, 2)].max() <= 15
        assert alpha[mask > 0].mean() > 250 and alpha[mask == 0].mean() < 5
        assert np.abs(rgba[_erode(mask, 2), :3].astype(int) - [230, 30, 30]).mean() < 8
    with av.open(str(tmp_path / "s.webm")) as container:  # FFmpeg's native vp9 decoder drops the alpha
        first = next(container.decode(video=0))
        assert first.format.name == "yuv420p"
        assert container.streams.video[0].metadata.get("alpha_mode") == "1"


def test_webm_sticker_odd_size_and_feather(tmp_path):
    av = pytest.importorskip("av")
    if "libvpx-vp9" not in av.codecs_available:
        pytest.skip("this PyAV's FFmpeg has no libvpx-vp9")
    frames, masks = _clip(n=3, h=71, w=95)
    write_sticker_webm(tmp_path / "s.webm", zip(frames, masks), box=[0, 0, 95, 71], fps=10, feather=8)
    decoded = list(read_webm_rgba(tmp_path / "s.webm"))
    assert decoded[0].shape == (72, 96, 4)  # padded by a transparent row and column
    assert decoded[0][71, :, 3].max() <= 15 and decoded[0][:, 95, 3].max() <= 15
    edge = (_distance_to_edge(masks[1]) <= 2)[:71, :95]
    alpha = decoded[1][:71, :95, 3]
    assert ((alpha[edge] > 40) & (alpha[edge] < 215)).mean() > 0.5  # soft edge survives the codec
    with pytest.raises(ivos.InvalidInput, match="empty"):
        write_sticker_webm(tmp_path / "e.webm", [], box=[0, 0, 4, 4], fps=10)


# ---------------------------------------------------------------- the CLI

def _parse(*argv):
    from ivos.cli import add_segment_arguments

    parser = argparse.ArgumentParser(prog="ivos segment")
    add_segment_arguments(parser)
    return parser.parse_args(["clip", "--click", "1,1", "--out", "o", *argv])


def test_cli_format_choices(capsys):
    from ivos.cli import DEFAULT_FORMATS, _output_formats

    assert _output_formats(_parse()) == list(DEFAULT_FORMATS) == ["png", "rle", "overlay", "sticker"]
    assert _output_formats(_parse("--no-overlay", "--no-sticker")) == ["png", "rle"]
    assert _output_formats(_parse("--format", "coco, palette", "--format", "webm", "--format", "coco")) == [
        "coco", "palette", "webm"]
    assert _parse("--feather", "3.5").feather == 3.5
    for bad in (["--format", "png,jpeg"], ["--format", ""], ["--feather", "-2"], ["--feather", "inf"]):
        with pytest.raises(SystemExit):
            _parse(*bad)
    err = capsys.readouterr().err
    assert "unknown format 'jpeg': choose from png, rle, coco, palette, polygons, cutouts, webm, sticker, overlay" in err
    assert "--feather" in err


def test_segment_writes_every_format(tmp_path, osvos_bundle, click_bundle, make_clip, capsys):
    pytest.importorskip("av")
    pytest.importorskip("pycocotools")
    from PIL import Image

    from ivos.cli import main

    frames, _ = make_clip(n=4)
    names = ["f1", "f2", "f10", "f11"]
    (tmp_path / "frames").mkdir()
    for f, name in zip(frames, names):
        Image.fromarray(f).save(tmp_path / "frames" / f"{name}.png")
    out = tmp_path / "out"
    code = main(["segment", str(tmp_path / "frames"), "--click", "15,17", "--out", str(out), "--threads", "1",
                 "--osvos-bundle", str(osvos_bundle), "--click-bundle", str(click_bundle), "--feather", "2",
                 "--format", "png,rle,coco,palette,polygons", "--format", "cutouts,webm,sticker,overlay"])
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["outputs"]) == {"masks", "rle", "coco", "palette", "polygons", "cutouts", "webm", "sticker",
                                       "overlay"}
    masks = [(np.array(Image.open(out / "masks" / f"{n}.png")) > 127).astype(np.uint8) for n in names]
    coco = json.loads((out / "coco.json").read_text())
    assert [i["file_name"] for i in coco["images"]] == [f"{n}.png" for n in names]
    from pycocotools import mask as mask_api

    for a in coco["annotations"]:
        assert np.array_equal(mask_api.decode(a["segmentation"]), masks[a["image_id"] - 1])
    for n, m in zip(names, masks):
        assert np.array_equal(np.array(Image.open(out / "palette" / f"{n}.png")), m)
        alpha = np.array(Image.open(out / "cutouts" / f"{n}.png"))[..., 3]
        assert (alpha[m > 0] > 0).all() and (alpha[m == 0] < 255).all()
    polygons = json.loads((out / "polygons.json").read_text())
    assert [f["name"] for f in polygons["frames"]] == names
    assert len(list(read_webm_rgba(out / "sticker.webm"))) == 4
    rle = json.loads((out / "masks.json").read_text())
    assert [f["name"] for f in rle["frames"]] == names
