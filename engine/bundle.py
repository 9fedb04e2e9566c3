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
  "gpu", "compute_capability", "tensorrt_version"}]?}``.
* ``postprocess``: ``{"crf": bool, "crf_params": {...}}`` defaults for the predictor.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ModelError

FORMAT = "ivos-bundle"
FORMAT_VERSION = 1
_DTYPES = ("float32", "float16", "int64", "uint8")


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


def _field(card: dict, key: str, kind: type | tuple[type, ...], where: Path) -> Any:
    if key not in card:
        raise ModelError(f"{where}: required field {key!r} is missing")
    value = card[key]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        raise ModelError(f"{where}: field {key!r} must be {getattr(kind, '__name__', kind)}, got {value!r}")
    return value


def _tensor_specs(card: dict, key: str, where: Path) -> tuple[TensorSpec, ...]:
    specs = []
    for i, item in enumerate(_field(card, key, list, where)):
        label = f"{key}[{i}]"
        if not isinstance(item, dict):
            raise ModelError(f"{where}: field {label} must be an object, got {item!r}")
        name = _field(item, "name", str, where)
        shape = _field(item, "shape", list, where)
        if not all(isinstance(d, (int, str)) and not isinstance(d, bool) for d in shape):
            raise ModelError(f"{where}: field {label}.shape must hold ints or dim names, got {shape!r}")
        dtype = _field(item, "dtype", str, where)
        if dtype not in _DTYPES:
            raise ModelError(f"{where}: field {label}.dtype must be one of {_DTYPES}, got {dtype!r}")
        specs.append(TensorSpec(name, tuple(shape), dtype))
    if not specs:
        raise ModelError(f"{where}: field {key!r} is empty")
    return tuple(specs)


def _triple(norm: dict, key: str, where: Path) -> tuple[float, float, float]:
    value = _field(norm, key, list, where)
    if len(value) != 3 or not all(isinstance(v, (int, float)) for v in value):
        raise ModelError(f"{where}: field normalization.{key} must be 3 numbers, got {value!r}")
    if key == "std" and any(v <= 0 for v in value):
        raise ModelError(f"{where}: field normalization.std must be positive, got {value!r}")
    return tuple(float(v) for v in value)  # type: ignore[return-value]


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
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{where} is corrupt: {e}") from None
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
    if len(size) != 2 or not all(isinstance(v, int) and v > 0 for v in size):
        raise ModelError(f"{where}: field 'working_size' must be [height, width] positive ints, got {size!r}")
    task = _field(card, "task", str, where)
    click_encoding = card.get("click_encoding")
    if task == "click-refinement":
        click_encoding = _field(card, "click_encoding", dict, where)
        sigma = click_encoding.get("sigma")
        if click_encoding.get("kind") not in ("gaussian", "distmap") or not isinstance(sigma, (int, float)) or sigma <= 0:
            raise ModelError(f"{where}: field 'click_encoding' must be {{kind: gaussian|distmap, sigma > 0}}, "
                             f"got {click_encoding!r}")
    return Bundle(
        path=root,
        name=_field(card, "name", str, where),
        version=str(_field(card, "version", (str, int), where)),
        task=task,
        inputs=_tensor_specs(card, "inputs", where),
        outputs=_tensor_specs(card, "outputs", where),
        mean=_triple(norm, "mean", where),
        std=_triple(norm, "std", where),
        working_size=(size[0], size[1]),
        artifacts=_field(card, "artifacts", dict, where),
        click_encoding=click_encoding,
        postprocess=card.get("postprocess", {}) or {},
        card=card,
    )
