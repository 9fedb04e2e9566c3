"""The OpenAPI schema of ``ivos serve`` documents every answer: each route has a 2xx response
with a schema or an explicit content type (204: none), its error answers are the one error
contract (``ErrorOut``), and the endpoint table of docs/serving.md lists exactly the schema's
routes with their responses (run this file, ``python tests/serve/test_openapi.py``, to print
the table's METHOD, path and response columns from the schema)."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("fastapi", reason="ivos serve needs the serve extra (pip install 'ivos[serve]')")

DOC = Path(__file__).resolve().parents[2] / "docs" / "serving.md"
METHODS = ("get", "put", "post", "delete", "patch")


def openapi(data_dir: Path) -> dict:
    from ivos.serve.app import create_app
    from ivos.serve.config import ServeConfig

    return create_app(ServeConfig(data_dir=data_dir)).openapi()  # models are not loaded: no lifespan


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, op in item.items():
            if method in METHODS:
                yield method.upper(), path, op


def refs(body_schema: dict) -> list[str]:
    """The component names a response schema refers to (``$ref``, or each of an ``anyOf``)."""
    parts = body_schema.get("anyOf", [body_schema])
    return [p["$ref"].rsplit("/", 1)[-1] for p in parts if "$ref" in p]


def success(op: dict) -> tuple[str, dict]:
    code = min(c for c in op["responses"] if c.startswith("2"))
    return code, op["responses"][code]


def response_cell(op: dict) -> str:
    """The table's response column: the 2xx status, then the model(s) or the media types."""
    code, response = success(op)
    parts = []
    for media, body in response.get("content", {}).items():
        names = " or ".join(f"`{n}`" for n in refs(body.get("schema", {})))
        parts.append(names if media == "application/json" and names else
                     f"`{media}` of {names}" if names else f"`{media}`")
    return f"{code} " + (", ".join(parts) if parts else "no content")


def table(schema: dict) -> list[tuple[str, str, str]]:
    return [(method, path, response_cell(op)) for method, path, op in operations(schema)]


def documented_rows() -> list[tuple[str, str, str]]:
    """(METHOD, path, response) of the rows of docs/serving.md's tables that start with a method."""
    rows = []
    for line in DOC.read_text().splitlines():
        cells = [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]  # "\|" inside a cell
        if len(cells) == 4 and cells[0] in {m.upper() for m in METHODS}:
            rows.append((cells[0], cells[1].strip("`"), cells[3]))
    return rows


def test_every_route_documents_its_success_answer(tmp_path):
    schema = openapi(tmp_path / "data")
    undocumented = []
    for method, path, op in operations(schema):
        code, response = success(op)
        content = response.get("content", {})
        if code == "204":  # no content, by definition
            assert not content, (method, path)
        elif not content:
            undocumented.append(f"{method} {path}: {code} without a content type")
        for media, body in content.items():
            if media == "application/json" and not body.get("schema"):  # JSON of any shape
                undocumented.append(f"{method} {path}: {code} {media} without a schema")
    assert not undocumented, undocumented
    assert len(list(operations(schema))) >= 30


def test_errors_are_the_one_contract(tmp_path):
    """Every documented error answer is ``ErrorOut`` (FastAPI's own validation schema, which
    this server never sends, is not in the schema)."""
    schema = openapi(tmp_path / "data")
    assert "HTTPValidationError" not in schema["components"]["schemas"]
    for method, path, op in operations(schema):
        errors = {code: r for code, r in op["responses"].items() if not code.startswith("2")}
        assert "422" in errors or not op.get("parameters") and "requestBody" not in op, (method, path)
        for code, r in errors.items():
            assert refs(r["content"]["application/json"]["schema"]) == ["ErrorOut"], (method, path, code)
    detail = schema["components"]["schemas"]["ErrorDetail"]
    assert set(detail["required"]) == {"code", "message"}


def test_the_docs_endpoint_table_matches_the_schema(tmp_path):
    want = table(openapi(tmp_path / "data"))
    got = documented_rows()
    expected = "\n".join(f"| {m} | `{p}` | ... | {r} |" for m, p, r in want)
    assert sorted(got) == sorted(want), f"docs/serving.md's endpoint table differs from the schema; its rows:\n" \
                                        f"{expected}"


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        for m, p, r in table(openapi(Path(tmp) / "data")):
            print(f"| {m} | `{p}` | ... | {r} |")
