"""Bad inputs tried against ivos, and what each gives: a markdown table (issue 12).

Each case builds its input in a temporary folder (generated frames, a copy of the shipped
``ivos-cpu`` bundle with one file broken, ...), runs it, and records the outcome: the
exception type and the start of its message, ``accepted: ...`` with a short description of
the valid result, or for ``ivos segment`` the exit code and the key stderr line. A case is
"as expected" when the outcome is the kind it names: a documented ivos error
(``InvalidInput``, ``ModelError``, ``BackendUnavailable``) or acceptance where accepting is
right (then the result is checked too). Nothing here crashes on a surprise: any other
exception is recorded as ``UNEXPECTED <type>``.

Usage::

    python -m ivos.bench.bad_inputs [--out benchmarks/results/bad_inputs.md] [--quick]

``--quick`` skips the cases that run a whole ``ivos segment`` (models loaded, frames
propagated, or a fresh interpreter); ``tests/bench/test_bad_inputs_table.py`` runs the rest.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import math
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from ._common import environment_line

MESSAGE_CHARS = 160
"""How much of an error message the table shows."""
EXPECTED_KINDS = ("InvalidInput", "ModelError", "BackendUnavailable", "accepted")

FRAME_H, FRAME_W = 64, 96
"""Size of the generated frames (small: the segment cases must stay fast)."""
CLICK = "25,30"
"""A click on the object of frame 0 of the generated clip (x, y)."""


@dataclass(frozen=True)
class Outcome:
    """What a case gave: ``kind`` is an ivos error's type name, "accepted", "usage error"
    (argparse), "wrong result" (accepted, but the result failed its check) or
    "UNEXPECTED <type>"; ``text`` the message or the description of the result."""

    kind: str
    text: str
    note: str = ""  # shown after the (shortened) text


class WrongResult(Exception):
    """An accepted input whose result is not what it should be."""


@dataclass(frozen=True)
class Case:
    section: str
    name: str
    tried: str
    expect: str  # one of EXPECTED_KINDS
    fn: Callable[["Context"], "str | Outcome"]
    slow: bool = False  # runs a whole `ivos segment` (skipped by --quick)


@dataclass(frozen=True)
class Row:
    case: Case
    outcome: Outcome
    seconds: float

    @property
    def ok(self) -> bool:
        return self.outcome.kind == self.case.expect


CASES: list[Case] = []


def case(section: str, name: str, tried: str, expect: str, *, slow: bool = False):
    """Registers the decorated ``fn(ctx)`` as a case. ``fn`` returns a description of the
    accepted result (or an ``Outcome`` for CLI runs) or raises."""
    assert expect in EXPECTED_KINDS, expect  # a programming error in this file, not validation

    def register(fn):
        CASES.append(Case(section, name, tried, expect, fn, slow))
        return fn
    return register


# ---- shared helpers ---------------------------------------------------------------------

@dataclass
class Context:
    """A case's temporary folder plus resources shared by the cases of one run."""

    tmp: Path
    shared: dict = field(default_factory=dict)

    def model(self):
        """The shipped ``ivos-cpu`` bundle, loaded once per run (1 thread)."""
        if "model" not in self.shared:
            import ivos

            self.shared["model"] = ivos.load("ivos-cpu", threads=1)
        return self.shared["model"]

    def predictor(self):
        """A fresh ImagePredictor on a generated FRAME_H x FRAME_W image."""
        import ivos

        predictor = ivos.ImagePredictor(self.model())
        predictor.set_image(make_frames(1)[0])
        return predictor

    def bundle_copy(self, *, card_edit: Callable[[dict], None] | None = None) -> Path:
        """A copy of the shipped ``ivos-cpu`` bundle in the case's folder; ``card_edit``
        edits its model.json in place."""
        from ivos.runtime.model import resolve_bundle

        dst = self.tmp / "bundle"
        shutil.copytree(resolve_bundle("ivos-cpu"), dst)
        if card_edit is not None:
            card = json.loads((dst / "model.json").read_text())
            card_edit(card)
            (dst / "model.json").write_text(json.dumps(card, indent=2))
        return dst


def make_frames(n: int, h: int = FRAME_H, w: int = FRAME_W, seed: int = 0) -> list[np.ndarray]:
    """n (h, w, 3) uint8 frames: an orange box moving right over dark noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n):
        frame = rng.integers(0, 80, (h, w, 3), dtype=np.uint8)
        frame[h // 4:h // 4 + h * 7 // 16, 10 + 4 * t:40 + 4 * t] = (230, 120, 40)
        frames.append(frame)
    return frames


def write_frames(folder: Path, names: list[str], *, suffix: str = ".jpg",
                 sizes: dict[int, tuple[int, int]] | None = None) -> list[Path]:
    """One generated frame per name (``<name><suffix>``); ``sizes`` {index: (h, w)} gives
    some frames another size."""
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (name, frame) in enumerate(zip(names, make_frames(len(names)))):
        if sizes and i in sizes:
            frame = make_frames(1, *sizes[i], seed=i)[0]
        path = folder / f"{name}{suffix}"
        Image.fromarray(frame).save(path)
        paths.append(path)
    return paths


def six_frames(ctx: Context, **kwargs) -> tuple[Path, list[Path]]:
    folder = ctx.tmp / "frames"
    return folder, write_frames(folder, [f"{i:05d}" for i in range(6)], **kwargs)


def segment_args(folder: Path, out: Path, *extra: str, finetune: str = "off") -> list[str]:
    """``ivos segment`` arguments for a generated folder: shipped bundles, 1 thread, masks only."""
    from ivos.cli import DEFAULT_CLICK, DEFAULT_OSVOS

    return ["segment", str(folder), "--click", CLICK, "--out", str(out), "--osvos-bundle", str(DEFAULT_OSVOS),
            "--click-bundle", str(DEFAULT_CLICK), "--threads", "1", "--finetune", finetune,
            "--format", "png,rle", *extra]


@dataclass(frozen=True)
class CliRun:
    rc: int
    stdout: str
    stderr: str
    bundles_loaded: int = -1  # in-process runs only: ivos.load calls
    frames_decoded: int = -1  # in-process runs only: frame files decoded

    def error_line(self) -> str | None:
        """The last "ivos: error: ..." line, or argparse's "...: error: ..." (progress bars,
        which end without a newline, cut off)."""
        lines = self.stderr.replace("\r", "\n").splitlines()
        for marker in ("ivos: error: ", ": error: "):
            hit = next((ln for ln in reversed(lines) if marker in ln), None)
            if hit is not None:
                return hit[hit.index(marker):].strip() if marker.startswith("ivos") else hit.strip()
        return None

    def line_with(self, text: str) -> str | None:
        return next((ln.strip() for ln in self.stderr.replace("\r", "\n").splitlines() if text in ln), None)


def run_cli(argv: list[str]) -> CliRun:
    """``ivos`` in this process, stdout/stderr captured, counting bundle loads and frame
    decodes (to show what ran before a failure). Non-ivos exceptions propagate."""
    import ivos
    from ivos.cli import main
    from ivos.video.frames import FolderSource

    counts = {"load": 0, "read": 0}
    real_load, real_read = ivos.load, FolderSource._read

    def load(*args, **kwargs):
        counts["load"] += 1
        return real_load(*args, **kwargs)

    def read(self, i):
        counts["read"] += 1
        return real_read(self, i)

    out, err = io.StringIO(), io.StringIO()
    ivos.load, FolderSource._read = load, read
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                rc = main(argv)
            except SystemExit as e:  # argparse
                rc = e.code if isinstance(e.code, int) else 1
    finally:
        ivos.load, FolderSource._read = real_load, real_read
    return CliRun(rc, out.getvalue(), err.getvalue(), counts["load"], counts["read"])


NO_TORCH_SCRIPT = r"""
import sys
sys.modules["torch"] = None  # as if not installed (importing it fails, find_spec finds nothing)
from ivos.cli import main
sys.exit(main(sys.argv[1:]))
"""


def run_cli_without_torch(argv: list[str]) -> CliRun:
    """``ivos`` in a fresh interpreter where torch cannot be imported."""
    proc = subprocess.run([sys.executable, "-c", NO_TORCH_SCRIPT, *argv], capture_output=True, text=True, timeout=600)
    return CliRun(proc.returncode, proc.stdout, proc.stderr)


def cli_outcome(run: CliRun, accepted: str = "") -> Outcome:
    """A CLI run as an Outcome: exit 0 is "accepted: exit 0; <accepted>"; an ivos error
    (exit 2, "ivos: error: <Type>: ...") is that type with the line; argparse's exit 2 is a
    "usage error"; anything else UNEXPECTED."""
    work = ""
    if run.bundles_loaded >= 0:
        work = f" [before it: {run.frames_decoded} frame decodes, {run.bundles_loaded} bundle loads]"
    if run.rc == 0:
        return Outcome("accepted", f"exit 0; {accepted}")
    line = run.error_line() or (run.stderr.strip().splitlines() or ["(no stderr)"])[-1]
    if run.rc == 2 and line.startswith("ivos: error: "):
        kind = line[len("ivos: error: "):].split(":", 1)[0]
        return Outcome(kind, f"exit 2: {line}{work}")
    if run.rc == 2 and "usage:" in run.stderr:
        return Outcome("usage error", f"exit 2: {line}")
    return Outcome(f"UNEXPECTED exit {run.rc}", line)


@contextlib.contextmanager
def ivos_warnings():
    """Collects the messages logged at WARNING or above on the "ivos" logger."""
    messages: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record):
            messages.append(record.getMessage())

    logger = logging.getLogger("ivos")
    handler = Collect(level=logging.WARNING)
    logger.addHandler(handler)
    try:
        yield messages
    finally:
        logger.removeHandler(handler)


def describe_model(model) -> str:
    return f"backend {model.backend}, precision {model.precision}"


def garbage(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


# ---- cases: frames and `ivos segment` ----------------------------------------------------

SEG = "frames and `ivos segment`"


@case(SEG, "frame folder with mixed sizes", "6 frames of 64x96, `00003.jpg` is 48x80; `ivos segment DIR`",
      "InvalidInput")
def _mixed_sizes(ctx: Context):
    folder, _ = six_frames(ctx, sizes={3: (48, 80)})
    return cli_outcome(run_cli(segment_args(folder, ctx.tmp / "out")))


@case(SEG, "corrupt frame (garbage bytes)", "6 frames, `00002.jpg` replaced by 2 KB of random bytes; `ivos segment`",
      "InvalidInput")
def _corrupt_frame(ctx: Context):
    folder, paths = six_frames(ctx)
    paths[2].write_bytes(garbage(2048))
    return cli_outcome(run_cli(segment_args(folder, ctx.tmp / "out")))


@case(SEG, "corrupt first frame", "6 frames, `00000.jpg` (the frame that sets the size) is random bytes; "
      "`ivos segment`", "InvalidInput")
def _corrupt_first_frame(ctx: Context):
    folder, paths = six_frames(ctx)
    paths[0].write_bytes(garbage(2048))
    return cli_outcome(run_cli(segment_args(folder, ctx.tmp / "out")))


@case(SEG, "truncated JPEG frame", "6 frames, `00004.jpg` cut to half its bytes; `ivos segment`", "InvalidInput")
def _truncated_jpeg(ctx: Context):
    folder, paths = six_frames(ctx)
    data = paths[4].read_bytes()
    paths[4].write_bytes(data[:len(data) // 2])
    return cli_outcome(run_cli(segment_args(folder, ctx.tmp / "out")))


@case(SEG, "`--out` names an existing FILE", "`ivos segment DIR --out notes.txt` (a file), valid frames",
      "InvalidInput")
def _out_is_file(ctx: Context):
    folder, _ = six_frames(ctx)
    target = ctx.tmp / "notes.txt"
    target.write_bytes(b"keep me")
    t0 = time.perf_counter()
    run = run_cli(segment_args(folder, target))
    seconds = time.perf_counter() - t0
    if target.read_bytes() != b"keep me":
        raise WrongResult(f"--out file was changed: {target.read_bytes()[:40]!r}")
    outcome = cli_outcome(run)
    return Outcome(outcome.kind, f"{outcome.text}; file untouched, failed after {seconds:.2f} s")


@case(SEG, "`--out` below an existing FILE", "`ivos segment DIR --out notes.txt/sub`", "InvalidInput")
def _out_below_file(ctx: Context):
    folder, _ = six_frames(ctx)
    (ctx.tmp / "notes.txt").write_bytes(b"keep me")
    return cli_outcome(run_cli(segment_args(folder, ctx.tmp / "notes.txt" / "sub")))


@case(SEG, "unpadded frame names", "frames `1.png`, `2.png`, `10.png`; `ivos segment DIR`", "accepted", slow=True)
def _unpadded_names(ctx: Context):
    folder = ctx.tmp / "frames"
    write_frames(folder, ["1", "2", "10"], suffix=".png")  # sorted as text: 1, 10, 2
    out = ctx.tmp / "out"
    run = run_cli(segment_args(folder, out))
    if run.rc != 0:
        return cli_outcome(run)
    pngs = sorted(p.name for p in (out / "masks").iterdir())
    doc = json.loads((out / "masks.json").read_text())
    names = [f.get("name") for f in doc["frames"]]
    order = [f["frame_idx"] for f in doc["frames"]]
    if set(pngs) != {"1.png", "2.png", "10.png"} or names != ["1", "2", "10"] or order != [0, 1, 2]:
        raise WrongResult(f"masks/ {pngs}, masks.json names {names} frame_idx {order}")
    return cli_outcome(run, "masks/ holds 1.png 2.png 10.png; masks.json frames in order "
                            "1, 2, 10 (frame_idx 0, 1, 2)")


@case(SEG, "folder frame rate `--fps 12.5`", "6 frames, `ivos segment DIR --fps 12.5`", "accepted", slow=True)
def _fps(ctx: Context):
    folder, _ = six_frames(ctx)
    out = ctx.tmp / "out"
    run = run_cli(segment_args(folder, out, "--fps", "12.5"))
    if run.rc != 0:
        return cli_outcome(run)
    fps = json.loads((out / "masks.json").read_text())["fps"]
    if fps != 12.5:
        raise WrongResult(f"masks.json fps {fps}, expected 12.5")
    return cli_outcome(run, f"masks.json fps = {fps} (default without --fps: 25)")


@case(SEG, "frame rate `--fps 0`", "6 frames, `ivos segment DIR --fps 0`", "InvalidInput")
def _fps_zero(ctx: Context):
    folder, _ = six_frames(ctx)
    return cli_outcome(run_cli(segment_args(folder, ctx.tmp / "out", "--fps", "0")))


@case(SEG, "frame rate `--fps nan`", "6 frames, `ivos segment DIR --fps nan`", "InvalidInput")
def _fps_nan(ctx: Context):
    folder, _ = six_frames(ctx)
    return cli_outcome(run_cli(segment_args(folder, ctx.tmp / "out", "--fps", "nan")))


@case(SEG, "click outside the frame", "6 frames of 64x96, `--click 96,30` (x = W)", "InvalidInput", slow=True)
def _click_outside(ctx: Context):
    folder, _ = six_frames(ctx)
    args = segment_args(folder, ctx.tmp / "out")
    args[args.index("--click") + 1] = f"{FRAME_W},30"
    return cli_outcome(run_cli(args))


@case(SEG, "no torch installed, `--finetune auto`", "fresh interpreter with `sys.modules['torch'] = None`; "
      "`ivos segment DIR --finetune auto` (6 frames)", "accepted", slow=True)
def _no_torch_auto(ctx: Context):
    folder, _ = six_frames(ctx)
    out = ctx.tmp / "out"
    run = run_cli_without_torch(segment_args(folder, out, finetune="auto"))
    if run.rc != 0:
        return cli_outcome(run)
    summary = json.loads((out / "summary.json").read_text())
    line = run.line_with("torch is not installed")
    if line is None or summary["finetuned"] is not False or len(list((out / "masks").iterdir())) != 6:
        raise WrongResult(f"notice {line!r}, finetuned {summary['finetuned']}")
    return cli_outcome(run, f"6 masks, summary finetuned=false; stderr: {line[:110]}...")


@case(SEG, "no torch installed, `--finetune on`", "fresh interpreter with `sys.modules['torch'] = None`; "
      "`ivos segment DIR --finetune on`", "BackendUnavailable", slow=True)
def _no_torch_on(ctx: Context):
    folder, _ = six_frames(ctx)
    return cli_outcome(run_cli_without_torch(segment_args(folder, ctx.tmp / "out", finetune="on")))


# ---- cases: broken bundles ---------------------------------------------------------------

BUN = "broken bundles (`ivos.load`)"


@case(BUN, "garbage model.onnx, default precision", "copy of `ivos-cpu`, model.onnx = 4 KB random bytes; "
      "`ivos.load(bundle)`", "accepted")
def _garbage_onnx_default(ctx: Context):
    import ivos

    bundle = ctx.bundle_copy()
    (bundle / "model.onnx").write_bytes(garbage(4096))
    model = ivos.load(bundle, threads=1)
    if model.precision != "int8":
        raise WrongResult(f"loaded {describe_model(model)}")
    return f"accepted: {describe_model(model)}: on the CPU the default runs model.int8.onnx, model.onnx is not read"


@case(BUN, "garbage model.onnx, `precision='fp32'`", "same bundle; `ivos.load(bundle, precision='fp32')`",
      "ModelError")
def _garbage_onnx_fp32(ctx: Context):
    import ivos

    bundle = ctx.bundle_copy()
    (bundle / "model.onnx").write_bytes(garbage(4096))
    ivos.load(bundle, threads=1, precision="fp32")
    return "accepted (a garbage network loaded)"


@case(BUN, "garbage model.onnx, no int8 in the card", "model.onnx = random bytes, `artifacts.onnx_int8` removed; "
      "`ivos.load(bundle)`", "ModelError")
def _garbage_onnx_no_int8(ctx: Context):
    import ivos

    bundle = ctx.bundle_copy(card_edit=lambda card: card["artifacts"].pop("onnx_int8"))
    (bundle / "model.onnx").write_bytes(garbage(4096))
    ivos.load(bundle, threads=1)
    return "accepted (a garbage network loaded)"


@case(BUN, "truncated model.onnx", "model.onnx cut to half its bytes; `ivos.load(bundle, precision='fp32')`",
      "ModelError")
def _truncated_onnx(ctx: Context):
    import ivos

    bundle = ctx.bundle_copy()
    data = (bundle / "model.onnx").read_bytes()
    (bundle / "model.onnx").write_bytes(data[:len(data) // 2])
    ivos.load(bundle, threads=1, precision="fp32")
    return "accepted (a truncated network loaded)"


def _declare_256(card: dict) -> None:
    card["working_size"] = [256, 256]
    for spec in card["inputs"] + card["outputs"]:
        spec["shape"][2:] = [256, 256]


@case(BUN, "card declares 256 for a 320 network", "model.json: `working_size` [256, 256] and every input/output "
      "1x?x256x256 (the network is 320); `ivos.load(bundle)`", "ModelError")
def _declares_256(ctx: Context):
    import ivos

    bundle = ctx.bundle_copy(card_edit=_declare_256)
    with ivos_warnings() as warnings:
        try:
            ivos.load(bundle, threads=1)
        except ivos.ModelError as e:
            # the int8 file is tried first under the default precision: refused with a warning
            note = f"model.int8.onnx was refused first: {len(warnings)} warning logged" if warnings else ""
            return Outcome("ModelError", str(e), note)
    return "accepted (the card does not describe the network)"


@case(BUN, "card inputs disagree with working_size", "model.json: `inputs[0].shape` [1, 3, 256, 256], "
      "`working_size` still [320, 320]; `ivos.load(bundle)`", "ModelError")
def _input_vs_working_size(ctx: Context):
    import ivos

    def edit(card):
        card["inputs"][0]["shape"] = [1, 3, 256, 256]
    ivos.load(ctx.bundle_copy(card_edit=edit), threads=1)
    return "accepted (inconsistent card)"


@case(BUN, "corrupt model.int8.onnx, default precision", "model.int8.onnx = random bytes; `ivos.load(bundle)`",
      "accepted")
def _corrupt_int8_default(ctx: Context):
    import ivos

    bundle = ctx.bundle_copy()
    (bundle / "model.int8.onnx").write_bytes(garbage(4096))
    with ivos_warnings() as warnings:
        model = ivos.load(bundle, threads=1)
    if model.precision != "fp32" or not warnings:
        raise WrongResult(f"{describe_model(model)}, warnings {warnings}")
    text = shorten(warnings[0], ctx)
    return f"accepted: {describe_model(model)}; warning logged: \"{text[:90]} ... {text[-55:]}\""


@case(BUN, "corrupt model.int8.onnx, `precision='int8'`", "model.int8.onnx = random bytes; "
      "`ivos.load(bundle, precision='int8')`", "ModelError")
def _corrupt_int8_int8(ctx: Context):
    import ivos

    bundle = ctx.bundle_copy()
    (bundle / "model.int8.onnx").write_bytes(garbage(4096))
    ivos.load(bundle, threads=1, precision="int8")
    return "accepted (a garbage int8 network loaded)"


@case(BUN, "`device='cuda'` on a machine without CUDA", "`ivos.load('ivos-cpu', device='cuda')`",
      "BackendUnavailable")
def _cuda(ctx: Context):
    import ivos

    model = ivos.load("ivos-cpu", device="cuda", threads=1)
    return f"accepted: {describe_model(model)} (a CUDA device is present here)"


@case(BUN, "unknown bundle name", "`ivos.load('ivos-gpu')`", "ModelError")
def _unknown_bundle(ctx: Context):
    import ivos

    ivos.load("ivos-gpu")
    return "accepted (a bundle named ivos-gpu exists)"


# ---- cases: image predictor inputs -------------------------------------------------------

INP = "inputs (`ImagePredictor`, shipped `ivos-cpu`, 64x96 image)"


@case(INP, "positive='no'", "`add_click(10, 20, positive='no')`", "InvalidInput")
def _positive_no(ctx: Context):
    ctx.predictor().add_click(10, 20, positive="no")
    return "accepted (the string was taken as a label)"


@case(INP, "positive=2", "`add_click(10, 20, positive=2)`", "InvalidInput")
def _positive_two(ctx: Context):
    ctx.predictor().add_click(10, 20, positive=2)
    return "accepted (2 was taken as a label)"


@case(INP, "positive=None", "`add_click(10, 20, positive=None)`", "InvalidInput")
def _positive_none(ctx: Context):
    ctx.predictor().add_click(10, 20, positive=None)
    return "accepted (None was taken as a label)"


@case(INP, "positive=1", "`add_click(25, 30, positive=1)` (integer 1/0 is documented)", "accepted")
def _positive_one(ctx: Context):
    result = ctx.predictor().add_click(25, 30, positive=1)
    if result.mask[30, 25] != 1:
        raise WrongResult("the positive click's pixel is not in the mask")
    return f"accepted: mask {result.mask.shape} with {int(result.mask.sum())} pixels, clicked pixel set"


@case(INP, "ImagePredictor(None)", "`ivos.ImagePredictor(None)`", "InvalidInput")
def _predictor_none(ctx: Context):
    import ivos

    ivos.ImagePredictor(None)
    return "accepted (a predictor without a model)"


@case(INP, "20000x20000 image", "`set_image(np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3)))` "
      "(a zero-strided view: nothing big allocated)", "InvalidInput")
def _huge_image(ctx: Context):
    import ivos

    predictor = ivos.ImagePredictor(ctx.model())
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (20000, 20000, 3))
    predictor.set_image(huge)
    return "accepted (a 400 MP image)"


@case(INP, "click x = W - 0.5", "`add_click(95.5, 30, positive=True)` on a 96-wide image", "accepted")
def _x_last_column(ctx: Context):
    result = ctx.predictor().add_click(FRAME_W - 0.5, 30, positive=True)
    if result.mask[30, FRAME_W - 1] != 1:
        raise WrongResult("the clicked pixel (last column) is not in the mask")
    return f"accepted: clicked pixel (30, {FRAME_W - 1}) (last column) is in the mask ({int(result.mask.sum())} px)"


@case(INP, "click x = W", "`add_click(96, 30, positive=True)` on a 96-wide image", "InvalidInput")
def _x_width(ctx: Context):
    ctx.predictor().add_click(FRAME_W, 30, positive=True)
    return "accepted (a click outside the image)"


@case(INP, "click x = NaN", "`add_click(float('nan'), 30, positive=True)`", "InvalidInput")
def _x_nan(ctx: Context):
    ctx.predictor().add_click(math.nan, 30, positive=True)
    return "accepted (a NaN click)"


@case(INP, "point_coords with NaN", "`predict(point_coords=[[nan, 30]], point_labels=[1])`", "InvalidInput")
def _coords_nan(ctx: Context):
    ctx.predictor().predict(point_coords=[[math.nan, 30]], point_labels=[1])
    return "accepted (a NaN point)"


@case(INP, "label 0.7", "`predict(point_coords=[[25, 30]], point_labels=[0.7])`", "InvalidInput")
def _label_fraction(ctx: Context):
    ctx.predictor().predict(point_coords=[[25, 30]], point_labels=[0.7])
    return "accepted (0.7 was taken as a label)"


# ---- running and the table ---------------------------------------------------------------

def shorten(text: str, ctx: Context | None = None) -> str:
    """Messages with the run's temporary folder as <tmp> and the package folder as <ivos>."""
    import ivos

    if ctx is not None:
        text = text.replace(str(ctx.tmp), "<tmp>")
    return text.replace(str(Path(ivos.__file__).resolve().parent), "<ivos>")


def run_case(c: Case, tmp: Path, shared: dict | None = None) -> Row:
    """Runs one case in its own folder under ``tmp``; never raises (but KeyboardInterrupt)."""
    from ivos.errors import IvosError

    folder = tmp / f"case{CASES.index(c) if c in CASES else 0:02d}"
    folder.mkdir(parents=True, exist_ok=True)
    ctx = Context(folder, shared if shared is not None else {})
    t0 = time.perf_counter()
    try:
        result = c.fn(ctx)
        if isinstance(result, Outcome):
            outcome = Outcome(result.kind, shorten(result.text, ctx), shorten(result.note, ctx))
        elif isinstance(result, str) and result.startswith("accepted"):
            outcome = Outcome("accepted", shorten(result, ctx))
        else:
            outcome = Outcome("accepted", shorten(f"accepted: {result}", ctx))
    except WrongResult as e:
        outcome = Outcome("wrong result", shorten(str(e), ctx))
    except IvosError as e:
        outcome = Outcome(type(e).__name__, shorten(str(e), ctx))
    except Exception as e:  # noqa: BLE001: the table records whatever happened
        outcome = Outcome(f"UNEXPECTED {type(e).__name__}", shorten(str(e), ctx))
    except SystemExit as e:
        outcome = Outcome("UNEXPECTED SystemExit", str(e.code))
    return Row(c, outcome, time.perf_counter() - t0)


def run_cases(cases: list[Case], tmp: Path | None = None, *, progress: bool = False) -> list[Row]:
    """Runs ``cases`` (in a new temporary folder unless ``tmp`` is given) sharing one loaded model."""
    shared: dict = {}
    with contextlib.ExitStack() as stack:
        if tmp is None:
            tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="ivos-bad-inputs-")))
        rows = []
        for c in cases:
            rows.append(run_case(c, tmp, shared))
            if progress:
                r = rows[-1]
                print(f"{'ok ' if r.ok else 'NO '} {r.seconds:5.1f}s  {c.name}: {r.outcome.kind}", file=sys.stderr)
        return rows


def _cell(text: str, limit: int | None = None) -> str:
    text = " ".join(str(text).split())
    if limit is not None and len(text) > limit:
        text = text[:limit].rstrip() + "..."
    return text.replace("|", "\\|")


def _outcome_cell(outcome: Outcome) -> str:
    note = f" ({_cell(outcome.note)})" if outcome.note else ""
    if outcome.kind in ("accepted", "wrong result") or outcome.text.startswith("exit "):
        body = outcome.text
        if outcome.kind == "wrong result":
            body = f"wrong result: {body}"
        return _cell(body, 330) + note
    return f"**{outcome.kind}**: " + _cell(outcome.text, MESSAGE_CHARS) + note


def render_markdown(rows: list[Row], command: str) -> str:
    n_ok = sum(r.ok for r in rows)
    n_unexpected = sum(r.outcome.kind.startswith("UNEXPECTED") for r in rows)
    lines = [
        "# Bad inputs tried, and what each gives",
        "",
        "Command:",
        "",
        f"    {command}",
        "",
        f"Environment: {environment_line()}. Total {sum(r.seconds for r in rows):.1f} s.",
        "",
        "Every case is built in a temporary folder (generated 64x96 frames, a copy of the shipped "
        "`ivos-cpu` bundle with one file broken) by `benchmarks/bad_inputs.py`. *Outcome*: the exception "
        f"type and the first {MESSAGE_CHARS} characters of its message (temporary paths shown as `<tmp>`), "
        "or `accepted: ...` with the result's check; `ivos segment` rows give the exit code, the key stderr "
        "line and, for in-process runs, how many frames were decoded and bundles loaded before it. *As "
        "expected*: the outcome is the kind in *expected* (a documented ivos error, or acceptance where "
        "that is right, with the result checked); a non-ivos exception would read `UNEXPECTED <type>`.",
        "",
        f"**{n_ok} of {len(rows)} cases as expected; {n_unexpected} UNEXPECTED.**",
        "",
    ]
    section = None
    for i, r in enumerate(rows, 1):
        if r.case.section != section:
            section = r.case.section
            lines += ["", f"## {section}", "", "| # | case | tried | outcome | expected | as expected |",
                      "|---|---|---|---|---|---|"]
        lines.append(f"| {i} | {_cell(r.case.name)} | {_cell(r.case.tried)} | {_outcome_cell(r.outcome)} | "
                     f"{r.case.expect} | {'yes' if r.ok else '**NO**'} |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m ivos.bench.bad_inputs",
                                     description="try bad inputs against ivos and write a markdown table")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write (default: print it)")
    parser.add_argument("--quick", action="store_true", help="skip the cases that run a whole `ivos segment`")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not (args.quick and c.slow)]
    rows = run_cases(cases, progress=True)
    text = render_markdown(rows, " ".join(["python -m ivos.bench.bad_inputs", *argv]))
    if args.out is None:
        print(text)
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}", file=sys.stderr)
    return 0 if all(r.ok for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
