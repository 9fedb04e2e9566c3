"""Builds the native extension ``ivos._C`` with CMake (one project: ``CMakeLists.txt``), and
finds the Python packages (the metadata lives in ``pyproject.toml``).

Packages: the repository's folders are named for what they hold, and ``PACKAGE_DIR`` maps them to
the installed names (``engine/`` is ``ivos``, ``export/`` ``ivos.export``, ``benchmarks/``
``ivos.bench``). Every folder with an ``__init__.py`` below those is found and installed under its
mapped name, so a new subpackage ships without a line here; ``DATA_PACKAGES`` are folders of data
files only (no ``__init__.py``), installed with everything in them. ``tests/test_wheel.py`` builds
a wheel and checks that nothing is lost.

Environment knobs:
  IVOS_CUDA=AUTO|ON|OFF   compile the CUDA sources when nvcc is found (AUTO, default),
                          always (ON: fail without nvcc) or never (OFF).
  IVOS_CUDA_ARCHS         explicit CUDA architecture list, e.g. "80;86;89;90" (never "native":
                          that needs a GPU at build time).
  IVOS_BUILD_TYPE         CMake build type (default Release).
  IVOS_BUILD_JOBS         parallel build jobs (default: CPU count).
"""
import os
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent

# installed package name -> its folder (relative to this file, as setuptools wants it)
PACKAGE_DIR = {"ivos": "engine", "ivos.export": "export", "ivos.bench": "benchmarks"}
# data-only packages (no __init__.py) -> the files they install: the demo clip, the shipped bundles,
# the web editor (engine/web: HTML, CSS, JavaScript modules)
DATA_PACKAGES = {"ivos.data": ["*"], "ivos.models": ["**/*"], "ivos.web": ["*"]}


def find_mapped_packages() -> list[str]:
    """Every package (a folder with ``__init__.py``) under ``PACKAGE_DIR``'s folders, by its
    installed name, plus ``DATA_PACKAGES``."""
    packages = set(DATA_PACKAGES)
    for name, folder in PACKAGE_DIR.items():
        if not (ROOT / folder / "__init__.py").is_file():
            raise SystemExit(f"setup.py: package {name} has no {folder}/__init__.py")
        packages |= {name, *(f"{name}.{sub}" for sub in find_packages(where=str(ROOT / folder)))}
    for name in DATA_PACKAGES:
        parent, _, leaf = name.rpartition(".")
        if not (ROOT / PACKAGE_DIR[parent] / leaf).is_dir():
            raise SystemExit(f"setup.py: data package {name} has no folder {PACKAGE_DIR[parent]}/{leaf}")
    return sorted(packages)


class CMakeExtension(Extension):
    def __init__(self, name: str):
        super().__init__(name, sources=[])


class CMakeBuild(build_ext):
    def build_extension(self, ext: Extension) -> None:
        import pybind11

        out_file = Path(self.get_ext_fullpath(ext.name)).resolve()
        # A persistent build folder keeps CMake's cache between (editable) rebuilds.
        build_dir = ROOT / "build" / f"cmake-py{sys.version_info[0]}{sys.version_info[1]}"
        build_dir.mkdir(parents=True, exist_ok=True)
        cuda = os.environ.get("IVOS_CUDA", "AUTO").upper()
        if cuda not in ("AUTO", "ON", "OFF"):
            raise SystemExit(f"IVOS_CUDA must be AUTO, ON or OFF, got {cuda!r}")
        args = [
            f"-DCMAKE_BUILD_TYPE={os.environ.get('IVOS_BUILD_TYPE', 'Release')}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
            f"-DIVOS_CUDA={cuda}",
            f"-DIVOS_OUTPUT_DIR={out_file.parent}",
            f"-DIVOS_OUTPUT_NAME={out_file.name}",
        ]
        if os.environ.get("IVOS_CUDA_ARCHS"):
            args.append(f"-DIVOS_CUDA_ARCHS={os.environ['IVOS_CUDA_ARCHS']}")
        jobs = os.environ.get("IVOS_BUILD_JOBS", str(os.cpu_count() or 2))
        subprocess.run(["cmake", "-S", str(ROOT), "-B", str(build_dir), *args], check=True)
        subprocess.run(["cmake", "--build", str(build_dir), "--parallel", jobs], check=True)


setup(
    package_dir=PACKAGE_DIR,
    packages=find_mapped_packages(),
    package_data=DATA_PACKAGES,
    ext_modules=[CMakeExtension("ivos._C")],
    cmdclass={"build_ext": CMakeBuild},
)
