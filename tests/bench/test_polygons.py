"""The measured reason ``ivos.formats.annotations`` traces polygons itself (benchmarks/results/polygons.md)."""
import pytest

pytest.importorskip("cv2", reason="needs OpenCV (pip install 'ivos[bench]')")
pytest.importorskip("pycocotools", reason="needs pycocotools (pip install 'ivos[test]')")


def test_our_polygons_round_trip_exactly_where_opencvs_lose_the_edges():
    from ivos.bench.polygons import compare

    rows = compare()
    assert all(ours == 1.0 for _, _, ours, _ in rows)
    thin = next(theirs for name, _, _, theirs in rows if name.startswith("bar"))
    assert thin < 0.75  # half a pixel lost along each long edge of a 2-px bar
