"""Text for the command lines' ``--help``: docstrings are written for developers (reST
markup), help is read by users, so the markup is taken out here."""
from __future__ import annotations

import re

from ._version import __version__


def plain(text: str) -> str:
    """``text`` without reST markup: ````literal```` -> literal, ``*emphasis*`` -> emphasis."""
    text = re.sub(r"``([^`]+)``", r"\1", text)
    return re.sub(r"(?<![\w*])\*([^*\s][^*]*)\*(?![\w*])", r"\1", text).strip()


def version() -> str:
    """The installed ivos version, for ``--version``."""
    return __version__
