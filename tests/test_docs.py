"""The documentation stays true to the repository: README.md is short and holds the two
commands verbatim (CI greps the test command), every module docs/architecture.md names
exists, every relative link in README.md and docs/*.md points to a file of the repository,
and nothing points to the design guide's old home outside the repository.

Fast and offline: files are read, nothing is imported or fetched."""
from __future__ import annotations

import ast
import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
DOCS = ROOT / "docs"
MARKDOWN = [README, *sorted(DOCS.glob("*.md"))]

README_MAX_LINES = 160
DEMO_COMMAND = "bash scripts/setup.sh && .venv/bin/ivos segment demo --click 120,136 --out out/demo"
TEST_COMMAND = "bash scripts/setup.sh && .venv/bin/python -m pytest -q"

# setup.py's PACKAGE_DIR: installed package name -> repository folder
PACKAGE_DIR = {"ivos": "engine", "ivos.export": "export", "ivos.bench": "benchmarks"}

MODULE_SPAN = re.compile(r"`(ivos(?:\.[A-Za-z_][A-Za-z0-9_]*)+)`")
# [text](target) and ![alt](target); reference-style definitions "[x]: target"
INLINE_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
REFERENCE_LINK = re.compile(r"^\s*\[[^\]]+\]:\s*(\S+)", re.MULTILINE)
FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)


def module_path(name: str) -> Path | None:
    """The source of module ``name``, found per PACKAGE_DIR: a .py file, a package's
    __init__.py, a compiled extension (``ivos._C``) or a data-only package folder
    (``ivos.web``); None when there is none."""
    parent = max((p for p in PACKAGE_DIR if name == p or name.startswith(p + ".")), key=len, default=None)
    if parent is None:
        return None
    path = ROOT / PACKAGE_DIR[parent]
    for part in name[len(parent):].split(".")[1:]:
        path = path / part
    candidates = [path / "__init__.py"]
    if path.name != PACKAGE_DIR[parent]:
        candidates += [path.with_suffix(".py"), *path.parent.glob(path.name + ".*.so"),
                       *path.parent.glob(path.name + ".*.pyd")]
    found = [c for c in candidates if c.is_file()]
    if found:
        return found[0]
    return path if path.is_dir() else None


def defines(source: Path, attribute: str) -> bool:
    """Whether module file ``source`` defines, imports or exports (``__all__``) ``attribute``
    at its top level, read with ``ast`` (nothing is imported)."""
    if source.suffix != ".py":
        return False
    names: set[str] = set()
    for node in ast.parse(source.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names |= {(a.asname or a.name).split(".")[0] for a in node.names}
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names |= {t.id for t in targets if isinstance(t, ast.Name)}
            if any(isinstance(t, ast.Name) and t.id == "__all__" for t in targets) and node.value is not None:
                names |= {e.value for e in getattr(node.value, "elts", []) if isinstance(e, ast.Constant)}
    return attribute in names


def resolves(dotted: str) -> bool:
    """A module, or an attribute (class, function, constant) of the longest module prefix."""
    if module_path(dotted) is not None:
        return True
    head, _, attribute = dotted.rpartition(".")
    source = module_path(head)
    return source is not None and defines(source, attribute)


def strip_code_blocks(text: str) -> str:
    """The text without fenced code blocks."""
    return FENCE.sub("", text)


def strip_code(text: str) -> str:
    """The text without fenced code blocks and inline code spans (links inside them are text)."""
    return re.sub(r"`[^`\n]*`", "", strip_code_blocks(text))


def relative_links(text: str) -> list[str]:
    text = strip_code(text)
    targets = INLINE_LINK.findall(text) + REFERENCE_LINK.findall(text)
    return [t for t in targets if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.IGNORECASE) and not t.startswith("#")]


def anchors(page: Path) -> set[str]:
    """GitHub's heading anchors of a markdown page: lower case, punctuation dropped, spaces
    to hyphens (code blocks skipped)."""
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*#*\s*$", strip_code_blocks(page.read_text(encoding="utf-8")), re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", h.strip().lower()).replace(" ", "-") for h in headings}


def test_readme_is_short():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= README_MAX_LINES, f"README.md has {len(lines)} lines; move detail to docs/ (limit {README_MAX_LINES})"


@pytest.mark.parametrize("command", [DEMO_COMMAND, TEST_COMMAND])
def test_readme_holds_the_two_commands(command):
    assert command in README.read_text(encoding="utf-8"), f"README.md lost the command {command!r}"


def test_architecture_names_real_modules():
    text = (DOCS / "architecture.md").read_text(encoding="utf-8")
    names = sorted(set(MODULE_SPAN.findall(text)))
    assert len(names) > 30, "docs/architecture.md should name the modules it describes"
    missing = [n for n in names if not resolves(n)]
    assert not missing, "docs/architecture.md names modules that do not exist: " + ", ".join(missing)


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_exist(page):
    broken = []
    for target in relative_links(page.read_text(encoding="utf-8")):
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            continue
        resolved = (page.parent / path).resolve()
        if not resolved.exists():
            broken.append(target)
        elif ROOT not in resolved.parents and resolved != ROOT:
            broken.append(f"{target} (outside the repository)")
        elif "#" in target and resolved.suffix == ".md" and target.split("#", 1)[1] not in anchors(resolved):
            broken.append(f"{target} (no such heading)")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: " + ", ".join(broken)


OLD_GUIDE = "shared/" + "DESIGN.md"  # spelt in two parts so that this file does not match itself
TEXT_SUFFIXES = {".md", ".py", ".sh", ".toml", ".cfg", ".txt", ".js", ".html", ".css", ".json", ".yml", ".yaml"}
SKIP_DIRS = {".git", "build", "runs", "node_modules", "__pycache__"}


def repository_text_files() -> list[Path]:
    """The repository's text files, without virtual environments, build output or egg-info."""
    out = []
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS and not d.startswith(".venv") and not d.endswith(".egg-info")]
        out += [Path(folder, f) for f in files if Path(f).suffix in TEXT_SUFFIXES or f in ("run", "Makefile")]
    return out


def test_nothing_points_to_the_old_design_guide():
    """The design guide lives in docs/design-guide.md; its old home outside the repository is gone."""
    found = [str(f.relative_to(ROOT)) for f in repository_text_files()
             if OLD_GUIDE in f.read_text(encoding="utf-8", errors="replace")]
    assert not found, f"these files point to ../{OLD_GUIDE} (use docs/design-guide.md): " + ", ".join(found)


def test_module_resolution_is_not_vacuous():
    assert resolves("ivos.video.propagation") and resolves("ivos.runtime.backends.ort")
    assert resolves("ivos.export.osvos") and resolves("ivos.bench.cli")
    assert resolves("ivos.video.memory_read.MemorySettings")
    assert not resolves("ivos.video_predictor") and not resolves("ivos.video.no_such_module")
    assert not resolves("ivos.video.memory_read.NoSuchThing")
    assert {"how-choices-are-made", "threads"} <= anchors(DOCS / "design.md")
