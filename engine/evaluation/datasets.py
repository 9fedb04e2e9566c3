"""Readers for the interactive-segmentation evaluation sets (layouts: ``../shared/datasets/README.md``).

Each reader returns an ``EvalSet``: an ordered, lazily loaded sequence of ``Sample`` (images are
read only when indexed, so ``--limit`` and progress bars are cheap). Paths are always given by the
caller; finding the data root is the caller's job (``ivos.datasets_root``).
"""
from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InvalidInput

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
DAVIS_EVERY = 10  # DAVIS2016: every 10th frame of each listed sequence (sorted file order)

COCO_HELDASIDE_IMAGES = 40
"""coco128-seg images held aside from click training (whole images, every instance): the
everyday-photo evaluation set ``COCO128`` (``coco128_split``)."""
COCO_SPLIT_SEED = 27
"""Seed of the permutation that picks the held-aside coco128-seg images (fixed: training and
evaluation must agree on the split forever, or held-aside images leak into training)."""
COCO_MIN_AREA_FRACTION = 0.0005
"""Held-aside instances smaller than this share of the image are left out (about 150 px of a
640x480 photo: a few pixels wide, nothing a person would click on to segment)."""

# (gt bool HxW, ignore bool HxW or None) from a mask locator (a file, or a file and an instance id)
MaskReader = Callable[[Any], "tuple[np.ndarray, np.ndarray | None]"]


@dataclass(frozen=True)
class Sample:
    """One evaluation instance.

    image: (H, W, 3) uint8 RGB; gt: (H, W) bool object mask; ignore: (H, W) bool pixels that
    count neither as object nor background (GrabCut's boundary band), or None.
    """
    name: str
    image: np.ndarray
    gt: np.ndarray
    ignore: np.ndarray | None


class EvalSet:
    """An evaluation set: ``len()``, indexing and iteration yield ``Sample``; ``head(n)`` is the
    first n samples (for quick runs)."""

    def __init__(self, name: str, entries: list[tuple[str, Path, Any]], read_mask: MaskReader):
        self.name = name
        self._entries = entries  # (sample name, image path, mask locator: a path, or (path, instance id))
        self._read_mask = read_mask

    def __len__(self) -> int:
        return len(self._entries)

    def __getitem__(self, i: int) -> Sample:
        name, image_path, mask_path = self._entries[i]
        image = read_rgb(image_path)
        gt, ignore = self._read_mask(mask_path)
        if gt.shape != image.shape[:2]:
            raise InvalidInput(f"mask {mask_path} has shape {gt.shape} but image {image_path} "
                               f"has {image.shape[:2]}; expected the same (H, W)")
        return Sample(name, image, gt, ignore)

    def __iter__(self) -> Iterator[Sample]:
        return (self[i] for i in range(len(self)))

    @property
    def names(self) -> list[str]:
        return [e[0] for e in self._entries]

    def head(self, n: int | None) -> EvalSet:
        return self if n is None else EvalSet(self.name, self._entries[:n], self._read_mask)


def read_rgb(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB from any image file PIL reads (EXIF orientation is NOT applied: the
    evaluation masks are aligned with the stored pixel order)."""
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def _read_gray(path: Path) -> np.ndarray:
    """(H, W) uint8: channel 0 of gray/RGB(A)/gray+alpha files, the index of palette files."""
    from PIL import Image

    with Image.open(path) as im:
        if im.mode not in ("L", "LA", "RGB", "RGBA", "P"):
            im = im.convert("L")
        a = np.asarray(im)
    return a[..., 0] if a.ndim == 3 else a


def mask_fg128(path: Path) -> tuple[np.ndarray, None]:
    """Foreground = value > 128 (Berkeley's RGB masks use channel 0; DAVIS's gray+alpha file
    uses its gray channel), no ignore region."""
    return _read_gray(path) > 128, None


def mask_grabcut(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """GrabCut boundary_GT: 255 object, 0 background, 128 the boundary band to ignore."""
    a = _read_gray(path)
    return a == 255, a == 128


def _require_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise InvalidInput(f"{what}: folder {path} does not exist (set --data-root or IVOS_DATA_ROOT)")
    return path


def _images_by_stem(folder: Path) -> dict[str, Path]:
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in IMAGE_SUFFIXES}


def _pair(images: dict[str, Path], masks: dict[str, Path], what: str) -> list[tuple[str, Path, Path]]:
    """(stem, image, mask) for every image; every image must have a mask and vice versa."""
    missing, orphans = sorted(set(images) - set(masks)), sorted(set(masks) - set(images))
    if missing or orphans:
        raise InvalidInput(f"{what}: images and masks must share stems; images without a mask: "
                           f"{missing[:5]}{'...' if len(missing) > 5 else ''}, masks without an "
                           f"image: {orphans[:5]}{'...' if len(orphans) > 5 else ''}")
    if not images:
        raise InvalidInput(f"{what}: no images ({', '.join(IMAGE_SUFFIXES)}) found")
    return [(s, images[s], masks[s]) for s in sorted(images)]


def grabcut(root: Path) -> EvalSet:
    """GrabCut (50 images): ``root/GrabCut/data_GT/<name>.{jpg,bmp,JPG}`` with
    ``root/GrabCut/boundary_GT/<name>.bmp`` (128 = ignore band)."""
    base = Path(root) / "GrabCut"
    images = _images_by_stem(_require_dir(base / "data_GT", "GrabCut images"))
    masks = _images_by_stem(_require_dir(base / "boundary_GT", "GrabCut masks"))
    return EvalSet("GrabCut", _pair(images, masks, "GrabCut"), mask_grabcut)


def berkeley(root: Path) -> EvalSet:
    """Berkeley (100 instances): ``root/Berkeley/images/<stem>.jpg`` with ``masks/<stem>.png``
    (RGB, foreground = channel 0 > 128)."""
    base = Path(root) / "Berkeley"
    images = _images_by_stem(_require_dir(base / "images", "Berkeley images"))
    masks = _images_by_stem(_require_dir(base / "masks", "Berkeley masks"))
    return EvalSet("Berkeley", _pair(images, masks, "Berkeley"), mask_fg128)


def davis_sequences(root: Path, split: str) -> list[str]:
    """Sequence names of DAVIS-2016 ``ImageSets/<split>.txt`` under data root ``root``."""
    base = Path(root) / "DAVIS2016"
    listing = base / "ImageSets" / f"{split}.txt"
    if not listing.is_file():
        have = sorted(p.stem for p in (base / "ImageSets").glob("*.txt")) if base.is_dir() else []
        raise InvalidInput(f"split {split!r}: {listing} does not exist; available splits: {have}")
    return listing.read_text().split()


def davis2016(root: Path, split: str = "dev", sequences: list[str] | None = None) -> EvalSet:
    """DAVIS-2016, 480p: the sequences of ``ImageSets/<split>.txt`` (or the named
    ``sequences``, e.g. train sequences held aside for tuning), every 10th annotated frame (in
    sorted file order), sample names ``<seq>/<frame>``."""
    base = Path(root) / "DAVIS2016"
    name = f"DAVIS2016-{split}" if sequences is None else "DAVIS2016-" + "+".join(sequences)
    if sequences is None:
        sequences = davis_sequences(root, split)
    entries = []
    for seq in sequences:
        frames = _images_by_stem(_require_dir(base / "JPEGImages" / "480p" / seq, f"DAVIS2016 {seq}"))
        annos = _images_by_stem(_require_dir(base / "Annotations" / "480p" / seq, f"DAVIS2016 {seq}"))
        pairs = _pair(frames, annos, f"DAVIS2016 {seq}")
        entries += [(f"{seq}/{s}", i, m) for s, i, m in pairs[::DAVIS_EVERY]]
    return EvalSet(name, entries, mask_fg128)


def coco128_split(root: Path) -> tuple[list[str], list[str]]:
    """(held-aside image stems, training image stems) of ``root/coco128-seg``: a seeded
    permutation of the sorted stems, the first ``COCO_HELDASIDE_IMAGES`` held aside. The one
    definition of the split: the click trainer (``training.data``) excludes the held-aside
    stems, the evaluation reads only them."""
    masks = _images_by_stem(_require_dir(Path(root) / "coco128-seg" / "masks", "coco128-seg masks"))
    stems = sorted(masks)
    order = np.random.default_rng(COCO_SPLIT_SEED).permutation(len(stems))
    held = sorted(stems[i] for i in order[:COCO_HELDASIDE_IMAGES])
    return held, sorted(set(stems) - set(held))


def mask_instance(locator: tuple[Path, int]) -> tuple[np.ndarray, None]:
    """Instance ``id`` of a 16-bit instance-id map (coco128-seg's ``masks/<stem>.png``)."""
    path, instance = locator
    from PIL import Image

    with Image.open(path) as im:
        labels = np.asarray(im)
    return labels == instance, None


def coco128_heldaside(root: Path) -> EvalSet:
    """The held-aside coco128-seg images (``coco128_split``), one sample per instance of at
    least ``COCO_MIN_AREA_FRACTION`` of its image, named ``<stem>#<instance id>``: everyday
    photos with small objects among clutter, never trained on."""
    from PIL import Image

    base = Path(root) / "coco128-seg"
    held, _ = coco128_split(root)
    images = _images_by_stem(_require_dir(base / "images", "coco128-seg images"))
    entries = []
    for stem in held:
        mask_path = base / "masks" / f"{stem}.png"
        with Image.open(mask_path) as im:
            labels = np.asarray(im)
        ids, counts = np.unique(labels, return_counts=True)
        for i, c in zip(ids.tolist(), counts.tolist()):
            if i != 0 and c / labels.size >= COCO_MIN_AREA_FRACTION:
                entries.append((f"{stem}#{i}", images[stem], (mask_path, i)))
    return EvalSet("COCO128-heldaside", entries, mask_instance)


def folder(images: Path, masks: Path) -> EvalSet:
    """Any folder pair: images and masks with the same stems; foreground = mask > 128."""
    imgs = _images_by_stem(_require_dir(Path(images), "--images"))
    msks = _images_by_stem(_require_dir(Path(masks), "--masks"))
    return EvalSet(Path(images).name, _pair(imgs, msks, "folder"), mask_fg128)


DATASETS = ("GrabCut", "Berkeley", "DAVIS2016", "COCO128", "folder")


def open_dataset(name: str, *, root: Path | None = None, split: str | None = None,
                 images: Path | None = None, masks: Path | None = None) -> EvalSet:
    """The evaluation set ``name`` (one of ``DATASETS``) under data root ``root``; ``folder``
    takes ``images``/``masks`` instead, DAVIS2016 takes ``split`` (default ``dev``)."""
    if name == "folder":
        if images is None or masks is None:
            raise InvalidInput("dataset 'folder' needs both images and masks folders (--images, --masks)")
        return folder(images, masks)
    if name not in DATASETS:
        raise InvalidInput(f"dataset must be one of {DATASETS}, got {name!r}")
    if root is None:
        raise InvalidInput(f"dataset {name!r} needs a data root (--data-root or IVOS_DATA_ROOT)")
    if name == "GrabCut":
        return grabcut(root)
    if name == "Berkeley":
        return berkeley(root)
    if name == "COCO128":
        return coco128_heldaside(root)
    return davis2016(root, split or "dev")
