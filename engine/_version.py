"""``ivos.__version__``, read from the installed package's metadata: pyproject.toml's
``version`` is the one place it is written. A leaf module, so that what needs the version (the
state file's writer, the CLIs, build info) does not import the whole package for it."""
from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("ivos")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
