"""A real wheel (``pip wheel . --no-build-isolation``) holds everything an install needs: every
package under the mapped folders (setup.py's ``PACKAGE_DIR``), every module of those, the
shipped model bundles, the demo clip and the native module; and it imports and loads a shipped
bundle on its own, without the checkout.

One wheel per session. The build reuses the checkout's CMake folder (``build/cmake-py3X``), so
only a relink is needed once ``pip install -e .`` has compiled it (seconds, not minutes), while
setuptools' own build folder and egg-info go to a temporary folder (``DIST_EXTRA_CONFIG``): a
stale ``build/lib`` from an earlier build can neither hide a missing file nor be touched.
"""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
# Named here by hand as well, so that a wheel losing one fails even if the folder walk below
# went wrong too.
MUST_HAVE = ("ivos", "ivos.ops", "ivos.runtime.backends", "ivos.evaluation", "ivos.export", "ivos.bench")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def wheel(tmp_path_factory) -> Path:
    pytest.importorskip("pybind11", reason="building without isolation needs pybind11 (pip install 'ivos[test]')")
    if shutil.which("cmake") is None:
        pytest.skip("building the wheel needs cmake")
    tmp = tmp_path_factory.mktemp("wheel")
    config = tmp / "build.cfg"
    config.write_text(f"[build]\nbuild_base = {tmp / 'build'}\n\n[egg_info]\negg_base = {tmp}\n")
    out = subprocess.run([sys.executable, "-m", "pip", "wheel", ".", "--no-deps", "--no-build-isolation",
                          "--wheel-dir", str(tmp / "dist"), "-q"], cwd=ROOT, capture_output=True, text=True,
                         env={**os.environ, "DIST_EXTRA_CONFIG": str(config)})
    assert out.returncode == 0, (out.stdout + out.stderr)[-4000:]
    assert (tmp / "build").is_dir(), "setuptools ignored DIST_EXTRA_CONFIG: the wheel may hold stale build/lib files"
    (found,) = (tmp / "dist").glob("ivos-*.whl")
    return found


@pytest.fixture(scope="session")
def names(wheel) -> set[str]:
    with zipfile.ZipFile(wheel) as z:
        return set(z.namelist())


def _source_packages(package_dir: dict[str, str]) -> dict[str, Path]:
    """Installed name -> folder of every package (a folder with __init__.py) in the checkout."""
    found = {}
    for name, folder in package_dir.items():
        base = ROOT / folder
        for init in base.rglob("__init__.py"):
            rel = init.parent.relative_to(base).parts
            found[".".join((name, *rel))] = init.parent
    return found


def _installed_path(package: str) -> str:
    return package.replace(".", "/")


def test_wheel_has_every_package_and_module(names, package_dir):
    packages = _source_packages(package_dir)
    assert set(MUST_HAVE) <= set(packages), sorted(packages)
    missing = []
    for package, folder in packages.items():
        for module in folder.glob("*.py"):
            if f"{_installed_path(package)}/{module.name}" not in names:
                missing.append(f"{package}: {module.relative_to(ROOT)}")
    assert not missing, missing


def test_wheel_has_the_shipped_bundles_and_the_demo_clip(names):
    data = [p for p in (ROOT / "engine" / "models").rglob("*") if p.is_file()]
    data += [p for p in (ROOT / "engine" / "data").iterdir() if p.is_file()]
    assert any(p.name == "model.json" for p in data) and any(p.suffix == ".onnx" for p in data)
    assert (ROOT / "engine" / "data" / "demo_clip.mp4") in data
    missing = [str(p.relative_to(ROOT)) for p in data
               if "ivos/" + p.relative_to(ROOT / "engine").as_posix() not in names]
    assert not missing, missing


def test_wheel_has_the_web_editor(names):
    """``ivos serve``'s page at / (engine/web, the data package ``ivos.web``): every file of it."""
    files = [p for p in (ROOT / "engine" / "web").iterdir() if p.is_file()]
    assert {"index.html", "editor.js", "api.js", "masks.js", "style.css"} <= {p.name for p in files}
    missing = [p.name for p in files if f"ivos/web/{p.name}" not in names]
    assert not missing, missing
    assert "ivos/serve/routes/web.py" in names


def test_wheel_has_the_native_module_and_nothing_else_at_the_top(names):
    native = [n for n in names if n.startswith("ivos/_C.") and n.endswith((".so", ".pyd"))]
    assert len(native) == 1, native
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"ivos"}, tops  # no tests/, training/, build/


def test_wheel_declares_the_three_commands(wheel):
    with zipfile.ZipFile(wheel) as z:
        (entry,) = [n for n in z.namelist() if n.endswith(".dist-info/entry_points.txt")]
        text = z.read(entry).decode()
    for line in ("ivos = ivos.cli:main", "ivos-bench = ivos.bench.cli:main", "ivos-export = ivos.export.cli:main"):
        assert line in text


SCRIPT = r"""
import json, sys
import ivos, ivos._C, ivos.bench.cli, ivos.bench.video, ivos.export.cli, ivos.evaluation.noc
from ivos.runtime.model import SHIPPED_MODELS, shipped_bundles
model = ivos.load("ivos-cpu", backend="ort", device="cpu", threads=1)
print(json.dumps({"ivos": ivos.__file__, "native": ivos._C.__file__, "bench": ivos.bench.cli.__file__,
                  "models": str(SHIPPED_MODELS), "bundles": shipped_bundles(), "backend": model.backend}))
"""


def test_unpacked_wheel_imports_and_loads_a_shipped_bundle(wheel, tmp_path):
    """Run from the unpacked wheel alone: ``-S`` skips site-packages' .pth files (the editable
    install's finder), and only the dependencies' folder is put after the wheel's."""
    pytest.importorskip("onnxruntime", reason="loading a bundle needs onnxruntime (pip install 'ivos[cpu]')")
    site = tmp_path / "site"
    with zipfile.ZipFile(wheel) as z:
        z.extractall(site)
    deps = dict.fromkeys([sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]])
    out = subprocess.run([sys.executable, "-S", "-c", SCRIPT], cwd=tmp_path, capture_output=True, text=True,
                         env={**os.environ, "PYTHONPATH": os.pathsep.join([str(site), *deps])})
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    for key in ("ivos", "native", "bench", "models"):
        assert Path(got[key]).is_relative_to(site), (key, got[key])
    expected = sorted(p.name for p in (ROOT / "engine" / "models").iterdir() if (p / "model.json").is_file())
    assert got["bundles"] == expected
    assert got["backend"].startswith("onnxruntime:")
