"""Where the data sets live: the one resolver every CLI, benchmark, test and training script uses.

Order (the first that applies wins):

1. an explicit folder (a ``--data-root`` option), used as given;
2. ``$IVOS_DATA_ROOT`` when set and not empty, used as given;
3. the nearest ``shared/datasets`` folder at or above the current directory;
4. ``<checkout>/../shared/datasets`` when ivos runs from a source checkout (editable install)
   and that folder exists.

Layouts of the sets under the root: ``../shared/datasets/README.md``. Data sets are never
needed at run time; only benchmarks, int8 calibration, training and some tests read them.
"""
from __future__ import annotations

import os
from pathlib import Path

from .errors import InvalidInput

ENV_VAR = "IVOS_DATA_ROOT"

# engine/ (the ivos package of a checkout) -> the checkout -> its sibling ``shared/datasets``.
_CHECKOUT_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"


def datasets_root(explicit: str | os.PathLike | None = None) -> Path | None:
    """The data sets folder (see the module docstring for the order), or None when none is found.

    Args:
        explicit: a folder given by the user (e.g. ``--data-root``); returned as a ``Path``
            without checking that it exists, so that the reader names the missing path.
    """
    if explicit is not None:
        return Path(explicit)
    if os.environ.get(ENV_VAR):
        return Path(os.environ[ENV_VAR])
    cwd = Path.cwd().resolve()
    for base in (cwd, *cwd.parents):
        if (base / "shared" / "datasets").is_dir():
            return base / "shared" / "datasets"
    if _CHECKOUT_DATASETS.is_dir():
        return _CHECKOUT_DATASETS
    return None


def dataset_dir(name: str, explicit: str | os.PathLike | None = None) -> Path:
    """``<data root>/<name>`` (e.g. ``"DAVIS2016"``), checked to be a folder.

    Raises:
        InvalidInput: no data root was found, or it has no ``name`` folder; the message names
            the root searched and how to point at another one.
    """
    root = datasets_root(explicit)
    if root is None or not (root / name).is_dir():
        where = f"under the data root {root}" if root is not None else "(no data root found)"
        raise InvalidInput(f"no {name} folder {where}: pass --data-root DIR or set ${ENV_VAR} "
                           "(default: the nearest shared/datasets above the current directory)")
    return root / name
