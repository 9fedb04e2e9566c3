"""ivos-bench parity: per-sample agreement of two click runs."""
import json

import pytest

from ivos.bench.cli import main
from ivos.errors import InvalidInput


def _run(path, backend, nocs90, ious_shift=0.0):
    samples = [{"name": f"s{i}", "noc85": n - 1, "noc90": n, "ious": [0.5 + ious_shift, 0.95]}
               for i, n in enumerate(nocs90)]
    method = {"noc85": sum(n - 1 for n in nocs90) / len(nocs90), "noc90": sum(nocs90) / len(nocs90),
              "n_fail90": sum(n == 20 for n in nocs90), "per_sample": samples}
    path.write_text(json.dumps({"dataset": "GrabCut", "command": f"ivos-bench click --backend {backend}",
                                "environment": {"model_backend": backend}, "methods": {"m": method}}))
    return path


def test_identical_runs_agree_everywhere(tmp_path, capsys):
    a = _run(tmp_path / "a.json", "ort", [2, 3, 20])
    b = _run(tmp_path / "b.json", "torch", [2, 3, 20])
    assert main(["parity", str(a), str(b), "--method", "m", "--markdown", str(tmp_path / "p.md")]) == 0
    out = capsys.readouterr().out
    assert "same NoC@90: 3/3" in out and "largest per-click IoU difference 0.0000" in out
    assert "| ort | 7.33 | 8.33 | 1 |" in out
    assert "ivos-bench click --backend torch" in (tmp_path / "p.md").read_text()


def test_differences_are_counted(tmp_path, capsys):
    a = _run(tmp_path / "a.json", "ort", [2, 3, 20])
    b = _run(tmp_path / "b.json", "ort:int8", [2, 5, 20], ious_shift=0.01)
    main(["parity", str(a), str(b), "--method", "m"])
    out = capsys.readouterr().out
    assert "same NoC@90: 2/3" in out and "(@90)" in out and "0.0100" in out
    assert "difference 2 (@85) / 2 (@90)" in out


def test_unknown_method_and_mismatched_samples(tmp_path):
    a = _run(tmp_path / "a.json", "ort", [2, 3])
    b = _run(tmp_path / "b.json", "torch", [2, 3, 4])
    with pytest.raises(InvalidInput, match="no method 'x'"):
        main(["parity", str(a), str(a), "--method", "x"])
    with pytest.raises(InvalidInput, match="different samples"):
        main(["parity", str(a), str(b), "--method", "m"])
