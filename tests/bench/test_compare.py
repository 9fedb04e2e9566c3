"""ivos-bench compare: paired NoC differences of two click methods, per set and over their union."""
import json

import numpy as np
import pytest

from ivos.bench.cli import main
from ivos.bench.compare import bootstrap_mean_diff
from ivos.errors import InvalidInput


def _run(path, nocs90, areas, methods=("m",), shift=0, dataset="COCO128-heldaside"):
    """A click --json file; each method's NoC@90 is ``nocs90`` + its index * ``shift``."""
    out = {}
    for k, name in enumerate(methods):
        n90 = [n + k * shift for n in nocs90]
        samples = [{"name": f"s{i}", "noc85": max(1, n - 1), "noc90": n, "area_fraction": a,
                    "ious": [0.5 - 0.01 * k, 0.95]} for i, (n, a) in enumerate(zip(n90, areas))]
        out[name] = {"noc90": float(np.mean(n90)), "per_sample": samples}
    path.write_text(json.dumps({"dataset": dataset, "command": "ivos-bench click", "methods": out}))
    return path


def test_identical_methods_differ_by_nothing(tmp_path, capsys):
    a = _run(tmp_path / "a.json", [2, 5, 20, 7], [0.005, 0.02, 0.1, 0.5])
    assert main(["compare", "--a", str(a), "--b", str(a), "--json", str(tmp_path / "c.json")]) == 0
    report = json.loads((tmp_path / "c.json").read_text())
    f = report["sets"]["COCO128-heldaside"]["noc90"]
    assert f["diff"] == 0 and f["ci95"] == [0, 0] and f["p_b_lower"] == 0 and f["b_lower"] == f["b_higher"] == 0
    assert set(report["by_size"]) == {"< 1%", "1-5%", "5-20%", "> 20%"}
    assert "union" not in report  # one set: no union row
    assert "+0.00 [+0.00, +0.00]" in capsys.readouterr().out


def test_a_uniform_gain_is_certain_and_the_union_pools_objects(tmp_path):
    """B one click better on every object: the difference is -1 with no spread; the union's NoC
    is the object-weighted mean of the sets'."""
    coco = _run(tmp_path / "coco.json", [3, 5, 20, 9], [0.005, 0.02, 0.1, 0.5], methods=("old", "new"), shift=-1)
    bsds = _run(tmp_path / "bsds.json", [4, 8], [0.03, 0.3], methods=("old", "new"), shift=-1, dataset="folder")
    main(["compare", "--a", str(coco), str(bsds), "--b", str(coco), str(bsds), "--method-a", "old",
          "--method-b", "new", "--sets", "COCO", "BSDS", "--json", str(tmp_path / "c.json"),
          "--markdown", str(tmp_path / "c.md")])
    report = json.loads((tmp_path / "c.json").read_text())
    union = report["union"]["noc90"]
    assert union["a"] == pytest.approx((37 / 4 * 4 + 12 / 2 * 2) / 6)
    assert union["diff"] == pytest.approx(-1) and union["ci95"] == pytest.approx([-1, -1])
    assert union["p_b_lower"] == 1 and union["b_lower"] == 6
    assert report["by_size"]["> 20%"]["n"] == 2
    assert report["union"]["miou1"]["diff"] == pytest.approx(-0.01)
    assert "**union**" in (tmp_path / "c.md").read_text()


def test_bootstrap_keeps_each_group_within_itself():
    """Stratified: group sizes are kept, so a constant group contributes the same every time."""
    rng = np.random.default_rng(0)
    boot = bootstrap_mean_diff([np.full(3, -2.0), np.array([0.0, 4.0])], 2000, rng)
    assert boot.min() >= (-6 + 0) / 5 - 1e-12 and boot.max() <= (-6 + 8) / 5 + 1e-12
    assert np.mean(boot) == pytest.approx((-6 + 4) / 5, abs=0.05)


def test_bad_inputs_are_named(tmp_path):
    a = _run(tmp_path / "a.json", [2, 3], [0.01, 0.1], methods=("x", "y"))
    b = _run(tmp_path / "b.json", [2, 3, 4], [0.01, 0.1, 0.2])
    with pytest.raises(InvalidInput, match="holds 2 methods"):
        main(["compare", "--a", str(a), "--b", str(b)])
    with pytest.raises(InvalidInput, match="no method 'z'"):
        main(["compare", "--a", str(a), "--b", str(b), "--method-a", "z"])
    with pytest.raises(InvalidInput, match="different samples"):
        main(["compare", "--a", str(a), "--b", str(b), "--method-a", "x"])
    with pytest.raises(InvalidInput, match="one per set"):
        main(["compare", "--a", str(a), str(a), "--b", str(b), "--method-a", "x"])
    with pytest.raises(InvalidInput, match="not an ivos-bench click"):
        (tmp_path / "bad.json").write_text("{}")
        main(["compare", "--a", str(tmp_path / "bad.json"), "--b", str(b)])
