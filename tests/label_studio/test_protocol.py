"""The Label Studio protocol's pieces without a Label Studio: the labelling config, the
interactive context, and the brush RLE (checked byte for byte against label-studio-sdk's
encoder when ``scripts/setup_label_studio.sh`` has installed it)."""
from __future__ import annotations

import json
import subprocess

import numpy as np
import pytest

pytest.importorskip("fastapi", reason="ivos serve needs the serve extra (pip install 'ivos[serve]')")

from ivos.errors import InvalidInput  # noqa: E402
from ivos.formats.brush_rle import brush_rle_to_mask, mask_to_brush_rle  # noqa: E402
from ivos.serve.errors import ApiError  # noqa: E402
from ivos.serve.label_studio import LabelConfig, Prompt  # noqa: E402
from ivos.serve.testing import LABEL_STUDIO_CONFIG, LABEL_STUDIO_VENV  # noqa: E402


def masks() -> list[np.ndarray]:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[:120, :200]
    return [rng.random((7, 5)) > 0.5, np.zeros((1, 1), bool), np.ones((300, 400), bool),  # runs > 65536 values
            (yy - 60) ** 2 + (xx - 80) ** 2 < 900, rng.random((64, 48)) > 0.3]


def test_brush_rle_round_trips():
    for m in masks():
        rle = mask_to_brush_rle(m)
        assert all(isinstance(b, int) and 0 <= b <= 255 for b in rle)
        assert np.array_equal(brush_rle_to_mask(rle, *m.shape), m.astype(np.uint8))
    with pytest.raises(InvalidInput, match="expected 10 x 10"):
        brush_rle_to_mask(mask_to_brush_rle(np.ones((5, 5))), 10, 10)
    with pytest.raises(InvalidInput, match="ends before"):
        brush_rle_to_mask(mask_to_brush_rle(np.ones((5, 5)))[:6], 5, 5)


@pytest.mark.skipif(not (LABEL_STUDIO_VENV / "bin" / "python").is_file(),
                    reason="label-studio-sdk lives in .venv-label-studio: bash scripts/setup_label_studio.sh")
def test_brush_rle_is_byte_identical_to_label_studio_sdk():
    cases = [m.astype(np.uint8).tolist() for m in masks()]
    script = ("import json, sys, numpy as np\n"
              "from label_studio_sdk.converter.brush import decode_rle, mask2rle\n"
              "cases = json.load(sys.stdin)\n"
              "print(json.dumps([mask2rle(np.array(c, np.uint8) * 255) for c in cases]))")
    out = subprocess.run([str(LABEL_STUDIO_VENV / "bin" / "python"), "-c", script], input=json.dumps(cases),
                         capture_output=True, text=True, timeout=300, check=True)
    theirs = json.loads(out.stdout)
    assert [mask_to_brush_rle(np.array(c)) for c in cases] == theirs


def test_the_labelling_config_needs_an_image_with_brush_labels():
    config = LabelConfig.parse(LABEL_STUDIO_CONFIG)
    assert (config.image_name, config.image_key, config.brush_name, config.brush_labels) == ("image", "image", "mask",
                                                                                               ("Object",))
    for xml, says in [(None, "missing"), ("<View", "not XML"), ("<View><Text name='t' value='$t'/></View>", "<Image"),
                      ("<View><Image name='i' value='$i'/></View>", "BrushLabels"),
                      ("<View><Image name='i' value='$i'/><BrushLabels name='b' toName='x'/></View>", "toName"),
                      ("<View><Image name='i' value='url'/><BrushLabels name='b' toName='i'/></View>", "task field")]:
        with pytest.raises(ApiError, match=says) as e:
            LabelConfig.parse(xml)
        assert e.value.status == 422


def test_the_context_becomes_clicks_or_a_box_in_pixels():
    kp = lambda x, y, pos=True: {"type": "keypointlabels", "is_positive": pos,  # noqa: E731
                                 "value": {"x": x, "y": y, "keypointlabels": ["Object"]}}
    p = Prompt.from_context({"result": [kp(50, 25), kp(100, 0, False)]}, 200, 100)
    assert p.points == ((100.0, 25.0), (199.5, 0.0)) and p.positive == (True, False) and p.label == "Object"
    box = Prompt.from_context({"result": [{"type": "rectanglelabels", "value": {
        "x": 10, "y": 20, "width": 30, "height": 40, "rectanglelabels": ["Object"]}}]}, 200, 100)
    assert box.box == (20.0, 20.0, 80.0, 60.0) and box.points == ()
    assert Prompt.from_context(None, 10, 10) is None and Prompt.from_context({"result": []}, 10, 10) is None
    for context, says in [({"result": [kp(150, 5)]}, "percent"), ({"result": [{"type": "polygonlabels", "value": {}}]},
                                                                   "keypointlabels"),
                          ({"result": [kp(5, 5, "yes")]}, "is_positive"), ("x", "context must be")]:
        with pytest.raises(ApiError, match=says):
            Prompt.from_context(context, 10, 10)
