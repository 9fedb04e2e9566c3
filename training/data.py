"""Training data for the click network: a one-time preprocessed RAM cache + augmented views.

Sources (leakage rules: /work/shared/datasets/README.md):

* DAVIS2016 ``ImageSets/train.txt`` sequences only (never ``dev.txt``): one object per frame.
* BSDS500 (all splits) minus ``overlap_with_Berkeley_GrabCut_eval.txt``: the human region
  maps; objects are single regions and unions of two adjacent regions whose area is neither
  tiny nor huge (``_bsds_objects``).
* coco128-seg: every instance of at least ``MIN_OBJECT_FRACTION`` of the image, in the images
  that are not held aside for evaluation (``ivos.evaluation.datasets.coco128_split``: the
  ``COCO128`` set of ``ivos-bench click``).
* GrabCut and Berkeley are NEVER read here.

Every image is stored once, resized so its shorter side is at most ``CACHE_SHORT_SIDE`` px,
with an integer label map (uint16, INTER_NEAREST) and a list of objects, each a tuple of
label ids whose union is the object. The cache is one pickle under ``runs/cache/``
(git-ignored); building it takes about a minute, loading it a second.

Held aside for validation (never trained on): the DAVIS sequences in ``VAL_DAVIS`` and
``N_VAL_BSDS`` BSDS images chosen with a fixed seed.
"""
from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from ivos.data_root import datasets_root
from ivos.evaluation.datasets import coco128_split

CACHE_SHORT_SIDE = 400
"""Images are downscaled (never upscaled) so the shorter side is at most this (px)."""

MIN_OBJECT_FRACTION = 0.005
"""Objects smaller than this fraction of the image are skipped (too tiny to click on)."""

MAX_OBJECT_FRACTION = 0.7
"""BSDS regions/unions larger than this fraction are skipped (that is background, not an object)."""

BSDS_SEGMENTATIONS_PER_IMAGE = 2
"""Human segmentations used per BSDS image (there are ~5; they overlap a lot)."""

BSDS_OBJECTS_PER_SEGMENTATION = 12
"""Cap on objects per BSDS segmentation (singles and adjacent pairs, sampled with a fixed seed)."""

VAL_DAVIS = ("bus", "elephant", "lucia", "rhino", "tennis")
"""DAVIS train sequences held aside for validation."""

N_VAL_BSDS = 20
"""BSDS images held aside for validation."""

CACHE_VERSION = 2  # 2: coco128-seg images held aside for evaluation


def default_data_root() -> Path:
    """The runtime's data root (``ivos.datasets_root``: ``$IVOS_DATA_ROOT``, else a
    ``shared/datasets`` above the working directory or beside the checkout), falling back to
    ``<repo>/../shared/datasets`` so that error messages name where it was looked for."""
    return datasets_root() or Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


@dataclass
class Entry:
    """One cached image: ``image`` (H, W, 3) uint8 RGB, ``labels`` (H, W) uint16 label map,
    ``objects`` list of label-id tuples (each union is one object), ``source`` data set name,
    ``key`` a readable id (e.g. "davis/bear/00003")."""

    image: np.ndarray
    labels: np.ndarray
    objects: list[tuple[int, ...]]
    source: str
    key: str


@dataclass
class Cache:
    """The preprocessed data: training entries per source and held-aside validation entries."""

    train: dict[str, list[Entry]] = field(default_factory=dict)
    val: list[Entry] = field(default_factory=list)

    def counts(self) -> dict[str, dict[str, int]]:
        """Images and objects per source (train) and in val, for logs and the model card."""
        out = {src: {"images": len(es), "objects": sum(len(e.objects) for e in es)} for src, es in self.train.items()}
        out["val"] = {"images": len(self.val), "objects": sum(len(e.objects) for e in self.val)}
        return out


def _read_rgb(path: Path) -> np.ndarray:
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise FileNotFoundError(path)
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def _resize_pair(image: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    h, w = labels.shape
    scale = min(1.0, CACHE_SHORT_SIDE / min(h, w))
    if scale < 1.0:
        size = (round(w * scale), round(h * scale))
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        labels = cv2.resize(labels, size, interpolation=cv2.INTER_NEAREST)
    return image, labels


def _davis(root: Path) -> tuple[list[Entry], list[Entry]]:
    base = root / "DAVIS2016"
    seqs = (base / "ImageSets" / "train.txt").read_text().split()
    dev = set((base / "ImageSets" / "dev.txt").read_text().split())
    train, val = [], []
    for seq in seqs:
        if seq in dev:  # belt and braces: dev sequences are for video validation only
            continue
        for ann in sorted((base / "Annotations" / "480p" / seq).glob("*.png")):
            gt = cv2.imread(str(ann), cv2.IMREAD_GRAYSCALE)  # also converts bear/00077 (gray+alpha)
            labels = (gt > 127).astype(np.uint16)
            image, labels = _resize_pair(_read_rgb(base / "JPEGImages" / "480p" / seq / f"{ann.stem}.jpg"), labels)
            if labels.mean() < MIN_OBJECT_FRACTION:
                continue
            entry = Entry(image, labels, [(1,)], "davis", f"davis/{seq}/{ann.stem}")
            (val if seq in VAL_DAVIS else train).append(entry)
    return train, val


def _adjacent_pairs(labels: np.ndarray) -> set[tuple[int, int]]:
    """Pairs (a < b) of label ids that touch horizontally or vertically."""
    pairs = set()
    for a, b in ((labels[:, :-1], labels[:, 1:]), (labels[:-1, :], labels[1:, :])):
        diff = a != b
        lo = np.minimum(a[diff], b[diff]).astype(np.int64)
        hi = np.maximum(a[diff], b[diff]).astype(np.int64)
        pairs.update(zip(*np.unique(np.stack([lo, hi]), axis=1).tolist()))
    return pairs


def _bsds_objects(labels: np.ndarray, rng: np.random.Generator) -> list[tuple[int, ...]]:
    """Single regions and adjacent-region unions with MIN..MAX_OBJECT_FRACTION of the image."""
    ids, counts = np.unique(labels, return_counts=True)
    frac = dict(zip(ids.tolist(), (counts / labels.size).tolist()))
    ok = lambda f: MIN_OBJECT_FRACTION * 4 <= f <= MAX_OBJECT_FRACTION  # noqa: E731 (regions: 2% min)
    singles = [(i,) for i, f in frac.items() if ok(f)]
    pairs = [p for p in _adjacent_pairs(labels) if ok(frac[p[0]] + frac[p[1]])]
    objects = singles + pairs
    if len(objects) > BSDS_OBJECTS_PER_SEGMENTATION:
        keep = rng.choice(len(objects), BSDS_OBJECTS_PER_SEGMENTATION, replace=False)
        objects = [objects[i] for i in sorted(keep)]
    return objects


def _bsds(root: Path, rng: np.random.Generator) -> tuple[list[Entry], list[Entry]]:
    base = root / "BSDS500"
    banned = set((base / "overlap_with_Berkeley_GrabCut_eval.txt").read_text().split())
    images = sorted(p for p in base.glob("images/*/*.jpg") if p.stem not in banned)
    val_ids = set(rng.choice([p.stem for p in images], N_VAL_BSDS, replace=False).tolist())
    train, val = [], []
    for path in images:
        segs = sorted((base / "segmentations" / path.parent.name).glob(f"{path.stem}_*.png"))
        image = _read_rgb(path)
        for seg in segs[:BSDS_SEGMENTATIONS_PER_IMAGE]:
            img, labels = _resize_pair(image, cv2.imread(str(seg), cv2.IMREAD_UNCHANGED).astype(np.uint16))
            objects = _bsds_objects(labels, rng)
            if objects:
                entry = Entry(img, labels, objects, "bsds", f"bsds/{path.stem}/{seg.stem}")
                (val if path.stem in val_ids else train).append(entry)
    return train, val


def _coco(root: Path) -> list[Entry]:
    base = root / "coco128-seg"
    _, train_stems = coco128_split(root)
    out = []
    for mask_path in sorted(base / "masks" / f"{stem}.png" for stem in train_stems):
        image, labels = _resize_pair(_read_rgb(base / "images" / f"{mask_path.stem}.jpg"),
                                     cv2.imread(str(mask_path), cv2.IMREAD_UNCHANGED).astype(np.uint16))
        ids, counts = np.unique(labels, return_counts=True)
        objects = [(int(i),) for i, c in zip(ids, counts) if i != 0 and c / labels.size >= MIN_OBJECT_FRACTION]
        if objects:
            out.append(Entry(image, labels, objects, "coco", f"coco/{mask_path.stem}"))
    return out


def build_cache(data_root: Path) -> Cache:
    """Reads and preprocesses every source (see the module docstring)."""
    rng = np.random.default_rng(0)  # fixed: the split and object lists must not depend on --seed
    davis_train, davis_val = _davis(data_root)
    bsds_train, bsds_val = _bsds(data_root, rng)
    return Cache(train={"davis": davis_train, "bsds": bsds_train, "coco": _coco(data_root)},
                 val=davis_val + bsds_val)


def heldaside_bsds_images(cache: Cache) -> list[Entry]:
    """Each held-aside BSDS image once: its first segmentation's entry, in cache order."""
    out, seen = [], set()
    for entry in cache.val:
        image_id = entry.key.split("/")[1]
        if entry.source == "bsds" and image_id not in seen:
            seen.add(image_id)
            out.append(entry)
    return out


def load_cache(data_root: Path, cache_dir: Path) -> Cache:
    """Loads ``cache_dir/train-cache-v{CACHE_VERSION}.pkl``, building it first if absent."""
    path = cache_dir / f"train-cache-v{CACHE_VERSION}.pkl"
    if path.exists():
        with open(path, "rb") as f:
            return pickle.load(f)
    cache = build_cache(data_root)
    cache_dir.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "wb") as f:
        pickle.dump(cache, f, protocol=pickle.HIGHEST_PROTOCOL)
    tmp.replace(path)
    return cache
