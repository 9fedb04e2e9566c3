"""The package graph ``ivos.bench -> ivos <- ivos.export`` (docs/design-guide.md section 2), read from the
source files' import statements with ``ast``: an import inside a function counts as much as one
at the top, and nothing is imported to find out.

Rules: ``ivos.bench`` and ``ivos.export`` never import each other; the runtime (``engine/``,
installed as ``ivos``) imports neither; no installed package imports the checkout-only
``training`` package (a wheel does not ship it). What two of them share lives in the runtime
(e.g. ``ivos.evaluation``, ``ivos.datasets_root``).
"""
from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


# package -> the packages (and their subpackages) its modules must never import
FORBIDDEN = {
    "ivos.bench": ("ivos.export", "training"),
    "ivos.export": ("ivos.bench", "training"),
    "ivos": ("ivos.bench", "ivos.export", "training"),
}


def source_files(root: Path, mapping: dict[str, str]) -> Iterator[tuple[str, str, Path]]:
    """(top-level package, module name, path) of every .py file under the mapped folders."""
    for package, folder in mapping.items():
        base = root / folder
        for path in sorted(base.rglob("*.py")):
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            yield package, ".".join([package, *parts]), path


def imported_names(path: Path, module: str) -> Iterator[tuple[int, str]]:
    """(line, absolute module name) of every import in ``path`` (module ``module``): ``import``
    and ``from`` statements (relative ones resolved; ``from P import N`` yields P and P.N, since
    N may be a submodule), and ``importlib.import_module`` / ``__import__`` calls on a literal
    string or the literal start of an f-string."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                if node.level - 1 >= len(parts):
                    raise AssertionError(f"{path}:{node.lineno}: relative import above the top-level package")
                base = ".".join(parts[:len(parts) - (node.level - 1)])
                base = f"{base}.{node.module}" if node.module else base
            else:
                base = node.module
            yield node.lineno, base
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{base}.{alias.name}"
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None
            if name not in ("import_module", "__import__"):
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                yield node.lineno, arg.value
            elif isinstance(arg, ast.JoinedStr) and arg.values and isinstance(arg.values[0], ast.Constant):
                yield node.lineno, str(arg.values[0].value).rstrip(".")


def violations(root: Path, mapping: dict[str, str], forbidden: dict[str, tuple[str, ...]]) -> list[str]:
    """``file:line: module imports name (rule)`` for every import statement or call that
    ``forbidden`` rules out (one line each, naming the shortest module it reaches)."""
    found: dict[tuple[Path, int], tuple[str, str]] = {}
    for package, module, path in source_files(root, mapping):
        banned = forbidden.get(package, ())
        for line, name in sorted(imported_names(path, module), key=lambda x: len(x[1])):
            hit = next((b for b in banned if name == b or name.startswith(b + ".")), None)
            if hit and (path, line) not in found:
                found[path, line] = (f"{module} imports {name}", f"{package} must not import {hit}")
    return sorted(f"{path.relative_to(root)}:{line}: {what} ({rule})" for (path, line), (what, rule) in found.items())


def test_mapped_folders_hold_the_packages(package_dir):
    assert set(package_dir) == set(FORBIDDEN)
    counts = {p: sum(1 for q, _, _ in source_files(ROOT, package_dir) if q == p) for p in package_dir}
    assert all(n >= 3 for n in counts.values()), counts  # the scan below is not vacuous


def test_bench_and_export_never_import_each_other_and_the_runtime_neither(package_dir):
    found = violations(ROOT, package_dir, FORBIDDEN)
    assert not found, "imports against ivos.bench -> ivos <- ivos.export:\n" + "\n".join(found)


@pytest.fixture
def fake_tree(tmp_path):
    """A miniature checkout with one file per kind of import to catch, and some allowed ones."""
    files = {
        "engine/__init__.py": "import numpy\nfrom .errors import X\n",
        "engine/evaluation/__init__.py": "",
        "engine/evaluation/noc.py": "from ..errors import X\nfrom .. import bench\n",  # -> ivos.bench
        "engine/late.py": "def f():\n    import ivos.export.quantize\n",
        "benchmarks/__init__.py": "",
        "benchmarks/ok.py": "from .noc import x\nfrom ivos.evaluation import noc\nimport ivos.exporters\n",
        "benchmarks/top.py": "from ivos.export.quantize import record\n",
        "benchmarks/lazy.py": "import importlib\ndef f(m):\n    return importlib.import_module(f'ivos.export.{m}')\n",
        "benchmarks/pkg/__init__.py": "from ... import export\n",  # ivos.bench.pkg -> ivos.export
        "export/__init__.py": "",
        "export/cli.py": "def f():\n    from ..bench.click import y\n",
        "export/train.py": "import training.data\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_checker_catches_every_kind_of_import(fake_tree):
    mapping = {"ivos": "engine", "ivos.export": "export", "ivos.bench": "benchmarks"}
    found = violations(fake_tree, mapping, FORBIDDEN)
    where = sorted({f.split(":")[0] for f in found})
    assert where == ["benchmarks/lazy.py", "benchmarks/pkg/__init__.py", "benchmarks/top.py", "engine/evaluation/noc.py",
                     "engine/late.py", "export/cli.py", "export/train.py"], found
    assert any("ivos.bench.pkg imports ivos.export" in f for f in found)
    assert any("ivos.export.cli imports ivos.bench.click" in f for f in found)


# ---------------------------------------------------------------- import cycles

def module_graph(root: Path, mapping: dict[str, str]) -> dict[str, set[str]]:
    """module -> the modules of the mapped packages it imports by name, at the top or inside a
    function: ``import P.M`` is an edge to P.M; ``from P import N`` to P.N when that is a module,
    else to P (its ``__init__``). A parent package's ``__init__`` that Python runs on the way to
    a submodule is not an edge: only what a statement names is."""
    files = {module: path for _, module, path in source_files(root, mapping)}
    native = {f"{package}.{'.'.join(so.relative_to(root / folder).parent.parts + (so.name.split('.')[0],))}"
              for package, folder in mapping.items() for so in (root / folder).rglob("*.so")}  # ivos._C
    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        package = module if path.name == "__init__.py" else module.rpartition(".")[0]
        edges: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
            if isinstance(node, ast.Import):
                edges.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    parts = package.split(".")
                    base = ".".join(parts[:len(parts) - (node.level - 1)])
                    base = f"{base}.{node.module}" if node.module else base
                else:
                    base = node.module
                for alias in node.names:
                    name = f"{base}.{alias.name}"
                    edges.add(name if name in files or name in native else base)
        graph[module] = {e for e in edges if e in files and e != module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles(package_dir):
    found = cycles(module_graph(ROOT, package_dir))
    assert not found, "import cycles (each line: modules that import each other, directly or around):\n" + \
        "\n".join(" <-> ".join(c) for c in found)


# ---------------------------------------------------------------- the public API and the layout

PUBLIC_API = {
    "__version__", "Client", "ClickResult", "ImagePredictor", "Model", "Stroke", "Timings", "FinetuneConfig",
    "FrameResult", "FrameSource", "FrameSuggestion", "MultiFrameResult", "VideoDifficulty", "VideoPredictor",
    "VideoState", "open_video", "load", "BackendUnavailable", "InvalidInput", "IvosError", "ModelError",
    "build_info", "datasets_root", "dense_crf", "render_clicks", "render_clicks_cuda",
}
"""What ``import ivos`` offers (README's API table): moving a module must not change it."""


def test_public_api_is_unchanged():
    import ivos

    assert set(ivos.__all__) == PUBLIC_API
    missing = [name for name in PUBLIC_API if getattr(ivos, name, None) is None]
    assert not missing, missing


SUBPACKAGES = ("image", "video", "video/osvos", "formats", "runtime", "runtime/backends", "ops", "serve",
               "evaluation")


def test_engine_root_holds_few_modules_and_the_subpackages_exist():
    root_modules = sorted(p.name for p in (ROOT / "engine").glob("*.py"))
    assert len(root_modules) <= 12, root_modules
    for sub in SUBPACKAGES:
        assert (ROOT / "engine" / sub / "__init__.py").is_file(), sub
