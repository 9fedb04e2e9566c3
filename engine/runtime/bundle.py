"""Model bundles: a folder with ``model.json`` (the model card) and the artifacts it names.

``model.json`` fields read by the runtime (anything else is kept as free-form metadata):

* ``format`` = "ivos-bundle", ``format_version`` (int; this runtime reads FORMAT_VERSION)
* ``name``, ``version``, ``task`` ("click-refinement" or "osvos")
* ``inputs`` / ``outputs``: lists of ``{"name", "shape", "dtype"}``; shapes are lists of ints
  (static) or strings (named dynamic dims). dtype "float32".
* ``normalization``: ``{"mean": [3 floats], "std": [3 floats]}`` applied to RGB in [0, 1].
* ``working_size``: ``[height, width]`` the network sees (pixels).
* ``click_encoding`` (click models): ``{"kind": "gaussian"|"distmap", "sigma": float}``
  (sigma in working-resolution pixels).
* ``artifacts``: ``{"onnx": file, "torch": file?, "onnx_int8": file?, "tensorrt": [{"file",
  "gpu", "compute_capability", "tensorrt_version"}]?}``; OSVOS bundles with split graphs also
  ``trunk_onnx``, ``head_onnx`` and optionally ``trunk_onnx_int8`` (``osvos_part``).
* ``postprocess``: ``{"crf": bool, "crf_params": {...}, "flip": bool, "crf_min_area": float?,
  "refocus_below": float?, "refocus_min_side": float?}`` defaults for the predictor
  (``crf_params``: keywords of ``ivos.dense_crf``; the numbers in [0, 1]: ``CLICK_SHARES``,
  ``ivos.settings.ClickSettings``).
* ``finetune`` (OSVOS bundles): the fine-tuning recipe of the network, a subset of
  ``ivos.video.osvos.finetune.BUNDLE_KEYS`` (read by ``FinetuneConfig.for_bundle``).

Click-refinement bundles must have the inputs ``image`` (1, 3, H, W), ``mask`` (1, 1, H, W),
``clicks`` (1, C, H, W) and the output ``logits`` (1, 1, H, W) with (H, W) = ``working_size``.
Whether the network file agrees with the card (names, shapes, dtypes) is checked when a
backend loads it (``ivos.runtime.backends.base.check_io``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from ..errors import InvalidInput, ModelError

FORMAT = "ivos-bundle"
FORMAT_VERSION = 1
_DTYPES = ("float32", "float16", "int64", "uint8")
TASKS = ("click-refinement", "osvos")


@dataclass(frozen=True)
class TensorSpec:
    """Name, shape (ints, or strings for named dynamic dims) and dtype of one graph I/O."""

    name: str
    shape: tuple[int | str, ...]
    dtype: str

    @property
    def is_static(self) -> bool:
        return all(isinstance(d, int) for d in self.shape)


@dataclass(frozen=True)
class Bundle:
    """A parsed, validated model bundle. ``card`` is the full ``model.json`` content."""

    path: Path
    name: str
    version: str
    task: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    working_size: tuple[int, int]
    artifacts: dict[str, Any]
    click_encoding: dict[str, Any] | None = None
    postprocess: dict[str, Any] = field(default_factory=dict)
    card: dict[str, Any] = field(default_factory=dict, repr=False)

    def artifact(self, key: str) -> Path:
        """Path of artifact ``key`` ("onnx", "torch", ...); ModelError if absent."""
        name = self.artifacts.get(key)
        if not isinstance(name, str):
            raise ModelError(f"{self.path / 'model.json'}: artifacts.{key} is not set")
        path = self.path / name
        if not path.is_file():
            raise ModelError(f"{self.path / 'model.json'}: artifacts.{key} names {name!r}, which does not exist")
        return path

    def has_artifact(self, key: str) -> bool:
        return isinstance(self.artifacts.get(key), str) and (self.path / self.artifacts[key]).is_file()

    @property
    def has_dynamic_dims(self) -> bool:
        """Whether an input has a named dynamic dim (an OSVOS graph of dynamic height/width)."""
        return not all(s.is_static for s in self.inputs)

    def default_dims(self) -> dict[str, int]:
        """Sizes of the named dynamic dims for a run at the working size: an OSVOS graph's
        height and width (``osvos_dims``); empty for static graphs."""
        if self.task == "osvos" and self.has_dynamic_dims:
            return osvos_dims(*self.working_size)
        return {}


def osvos_dims(height: int, width: int) -> dict[str, int]:
    """The sizes of an OSVOS graph's named dynamic dims for a (height, width) input (the names
    its exporter writes in the card: ``ivos.export.osvos_export.DYNAMIC_DIMS``)."""
    return {"height": height, "width": width, "height/4": height // 4, "width/4": width // 4,
            "height/8": height // 8, "width/8": width // 8}


_KIND_NAMES = {str: "a string", int: "an integer", list: "a list", dict: "an object", bool: "true/false"}


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _field(card: dict, key: str, kind: type | tuple[type, ...], where: Path, prefix: str = "") -> Any:
    """``card[key]`` of type ``kind`` (bool is not an int here); ``prefix`` ("inputs[0].")
    completes the field's name in messages."""
    label = prefix + key
    if key not in card:
        raise ModelError(f"{where}: required field {label!r} is missing")
    value = card[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        expected = " or ".join(_KIND_NAMES.get(k, k.__name__) for k in kinds)
        raise ModelError(f"{where}: field {label!r} must be {expected}, got {_short(value)}")
    return value


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _tensor_specs(card: dict, key: str, where: Path) -> tuple[TensorSpec, ...]:
    specs = []
    for i, item in enumerate(_field(card, key, list, where)):
        label = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ModelError(f"{where}: field {label} must be an object, got {_short(item)}")
        name = _field(item, "name", str, where, f"{label}.")
        shape = _field(item, "shape", list, where, f"{label}.")
        if not all(isinstance(d, str) and d or isinstance(d, int) and not isinstance(d, bool) and d > 0
                   for d in shape):
            raise ModelError(f"{where}: field {label}.shape must hold positive ints or dim names, got {_short(shape)}")
        dtype = _field(item, "dtype", str, where, f"{label}.")
        if dtype not in _DTYPES:
            raise ModelError(f"{where}: field {label}.dtype must be one of {_DTYPES}, got {_short(dtype)}")
        if any(s.name == name for s in specs):
            raise ModelError(f"{where}: field {label}.name {name!r} is used twice in {key!r}")
        specs.append(TensorSpec(name, tuple(shape), dtype))
    if not specs:
        raise ModelError(f"{where}: field {key!r} is empty")
    return tuple(specs)


def _triple(norm: dict, key: str, where: Path) -> tuple[float, float, float]:
    value = _field(norm, key, list, where, "normalization.")
    if len(value) != 3 or not all(_is_number(v) for v in value):
        raise ModelError(f"{where}: field normalization.{key} must be 3 finite numbers, got {_short(value)}")
    if key == "std" and any(v <= 0 for v in value):
        raise ModelError(f"{where}: field normalization.std must be positive, got {_short(value)}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


def _click_io(inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...], size: tuple[int, int],
              where: Path) -> None:
    """The I/O contract of click-refinement bundles (see the module docstring)."""
    expected = {"image": (1, 3), "mask": (1, 1), "clicks": (1, None)}
    by_name = {s.name: (f"inputs[{i}]", s) for i, s in enumerate(inputs)}
    by_name.update({s.name: (f"outputs[{i}]", s) for i, s in enumerate(outputs) if s.name == "logits"})
    for name, lead in {**expected, "logits": (1, 1)}.items():
        if name not in by_name:
            kind = "outputs" if name == "logits" else "inputs"
            raise ModelError(f"{where}: field {kind!r} has no {name!r}; a click-refinement bundle has the inputs "
                             "image, mask, clicks and the output logits")
        label, spec = by_name[name]
        shape = spec.shape
        ok = (len(shape) == 4 and spec.is_static and shape[0] == lead[0] and lead[1] in (None, shape[1])
              and tuple(shape[2:]) == size)
        if not ok:
            want = f"[1, {lead[1] if lead[1] is not None else 'C'}, {size[0]}, {size[1]}]"
            raise ModelError(f"{where}: field {label}.shape ({name!r}) must be {want} (working_size {list(size)}), "
                             f"got {list(shape)}")
        if spec.dtype != "float32":
            raise ModelError(f"{where}: field {label}.dtype ({name!r}) must be 'float32', got {spec.dtype!r}")


def _artifacts(card: dict, where: Path) -> dict[str, Any]:
    """``artifacts``: file names (non-empty strings), and ``tensorrt`` a list of objects."""
    artifacts = _field(card, "artifacts", dict, where)
    for key, value in artifacts.items():
        if key == "tensorrt":
            if not isinstance(value, list) or not all(isinstance(v, dict) and isinstance(v.get("file"), str)
                                                      for v in value):
                raise ModelError(f"{where}: field 'artifacts.tensorrt' must be a list of objects with a 'file', "
                                 f"got {_short(value)}")
        elif not isinstance(value, str) or not value:
            raise ModelError(f"{where}: field 'artifacts.{key}' must be a file name, got {_short(value)}")
    return artifacts


CLICK_SHARES = ("crf_min_area", "refocus_below", "refocus_min_side")
"""Click bundles' ``postprocess`` numbers in [0, 1] (``ivos.settings.ClickSettings``): the
smallest mask share the CRF runs on, the mask share below which a whole-image view looks
again through a zoom-in, and that zoom-in's smallest side as a share of the image's side."""


def _postprocess(card: dict, where: Path) -> dict[str, Any]:
    post = card.get("postprocess", {})
    if post is None:
        return {}
    if not isinstance(post, dict):
        raise ModelError(f"{where}: field 'postprocess' must be an object, got {_short(post)}")
    for key in ("crf", "flip"):
        if key in post and not isinstance(post[key], bool):
            raise ModelError(f"{where}: field 'postprocess.{key}' must be true/false, got {_short(post[key])}")
    for key in CLICK_SHARES:
        value = post.get(key, 0.0)
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
            raise ModelError(f"{where}: field 'postprocess.{key}' must be a number in [0, 1], got {_short(value)}")
    if "crf_params" in post:
        from .._validate import crf_params

        try:
            crf_params("postprocess.crf_params", post["crf_params"])
        except InvalidInput as e:
            raise ModelError(f"{where}: field {e}") from None
    return post


OSVOS_PARTS = ("trunk", "head")
"""The parts an OSVOS bundle may also ship as graphs of their own (``ivos.export.osvos_split``):
the trunk (image -> low, high features) and the head (features, prior, head weights -> logits)."""


def has_osvos_parts(bundle: Bundle) -> bool:
    """Whether an OSVOS bundle ships its trunk and head as graphs of their own."""
    parts = bundle.card.get("osvos", {}).get("parts")
    return bundle.task == "osvos" and isinstance(parts, dict) and all(
        p in parts and bundle.has_artifact(f"{p}_onnx") for p in OSVOS_PARTS)


def osvos_part(bundle: Bundle, part: str) -> Bundle:
    """The ``Bundle`` of one part (``OSVOS_PARTS``) of an OSVOS bundle: its own graph
    (``artifacts.<part>_onnx``, run as the part bundle's "onnx"; ``<part>_onnx_int8``, when the
    bundle ships one, as its "onnx_int8") and I/O (``osvos.parts.<part>``), the rest of the card
    shared. ModelError naming the field when the bundle has no such part."""
    where = bundle.path / "model.json"
    parts = bundle.card.get("osvos", {}).get("parts")
    if part not in OSVOS_PARTS or not isinstance(parts, dict) or not isinstance(parts.get(part), dict):
        raise ModelError(f"{where}: field 'osvos.parts.{part}' is missing: the bundle has no {part} graph "
                         "(python -m ivos.export.osvos_split <bundle> adds them)")
    spec = parts[part]
    return replace(bundle, name=f"{bundle.name}:{part}", task="osvos", inputs=_tensor_specs(spec, "inputs", where),
                   outputs=_tensor_specs(spec, "outputs", where),
                   artifacts={"onnx": bundle.artifacts.get(f"{part}_onnx"),
                              **({"onnx_int8": bundle.artifacts[f"{part}_onnx_int8"]}
                                 if f"{part}_onnx_int8" in bundle.artifacts else {})})


def read_bundle(path: str | Path) -> Bundle:
    """Reads and validates ``<path>/model.json``. Raises ModelError naming the file and field
    when the bundle is missing, corrupt or from an incompatible format version."""
    root = Path(path)
    where = root / "model.json"
    if not root.is_dir():
        raise ModelError(f"model bundle {root} is not a directory")
    if not where.is_file():
        raise ModelError(f"{where} is missing: not an ivos model bundle")
    try:
        card = json.loads(where.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError) as e:
        raise ModelError(f"{where} is corrupt: {e}") from None
    except OSError as e:
        raise ModelError(f"{where} cannot be read: {e}") from None
    if not isinstance(card, dict):
        raise ModelError(f"{where} must hold a JSON object")
    if card.get("format") != FORMAT:
        raise ModelError(f"{where}: field 'format' must be {FORMAT!r}, got {card.get('format')!r}")
    version = _field(card, "format_version", int, where)
    if version != FORMAT_VERSION:
        raise ModelError(f"{where}: field 'format_version' is {version}, this ivos reads {FORMAT_VERSION}; "
                         "re-export the bundle with this version of ivos-export")
    norm = _field(card, "normalization", dict, where)
    size = _field(card, "working_size", list, where)
    if len(size) != 2 or not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in size):
        raise ModelError(f"{where}: field 'working_size' must be [height, width] positive ints, got {_short(size)}")
    task = _field(card, "task", str, where)
    if task not in TASKS:
        raise ModelError(f"{where}: field 'task' must be one of {TASKS}, got {_short(task)}")
    click_encoding = card.get("click_encoding")
    inputs, outputs = _tensor_specs(card, "inputs", where), _tensor_specs(card, "outputs", where)
    if task == "click-refinement":
        click_encoding = _field(card, "click_encoding", dict, where)
        sigma = click_encoding.get("sigma")
        if click_encoding.get("kind") not in ("gaussian", "distmap") or not _is_number(sigma) or sigma <= 0:
            raise ModelError(f"{where}: field 'click_encoding' must be {{kind: gaussian|distmap, sigma > 0}}, "
                             f"got {_short(click_encoding)}")
        _click_io(inputs, outputs, (size[0], size[1]), where)
    return Bundle(
        path=root,
        name=_field(card, "name", str, where),
        version=str(_field(card, "version", (str, int), where)),
        task=task,
        inputs=inputs,
        outputs=outputs,
        mean=_triple(norm, "mean", where),
        std=_triple(norm, "std", where),
        working_size=(size[0], size[1]),
        artifacts=_artifacts(card, where),
        click_encoding=click_encoding,
        postprocess=_postprocess(card, where),
        card=card,
    )
