"""The three command lines answer --version and show help without reST markup."""
import subprocess
import sys

import pytest

import ivos

CLIS = {"ivos": "ivos.cli", "ivos-bench": "ivos.bench.cli", "ivos-export": "ivos.export.cli"}


def _run(module: str, *args: str) -> subprocess.CompletedProcess:
    code = f"import sys; from {module} import main; sys.argv[0] = 'x'; sys.exit(main({list(args)!r}))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)


@pytest.mark.parametrize("prog", sorted(CLIS))
def test_version(prog):
    out = _run(CLIS[prog], "--version")
    assert out.returncode == 0 and out.stdout.strip().endswith(ivos.__version__)


@pytest.mark.parametrize("prog, args", [("ivos", ["segment", "--help"]), ("ivos", ["--help"]),
                                        ("ivos-bench", ["--help"]), ("ivos-export", ["--help"])])
def test_help_has_no_markup(prog, args):
    out = _run(CLIS[prog], *args)
    assert out.returncode == 0 and "usage:" in out.stdout
    assert "``" not in out.stdout
