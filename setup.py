"""Builds the native extension ``ivos._C`` with CMake (one project: ``CMakeLists.txt``).

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

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


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


setup(ext_modules=[CMakeExtension("ivos._C")], cmdclass={"build_ext": CMakeBuild})
