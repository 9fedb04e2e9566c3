"""training.average_weights: the element-wise mean of checkpoints of one network."""
import pytest
import torch

from ivos.export.checkpoint import load_click_model, save_click_model
from ivos.export.models import ClickNetConfig, build_model
from training.average_weights import average_checkpoints, main

TINY = ClickNetConfig(name="tiny", widths=(8, 8, 16, 16), blocks=(1, 1, 1, 1), stem_width=8, head_width=8,
                      skip_width=8, decoder_width=8)


def _saved(path, seed, steps):
    torch.manual_seed(seed)
    model = build_model(TINY)
    save_click_model(path, model, {"stage": 2, "steps": steps, "val": {"noc@90": 13.0}})
    return model.state_dict()


def test_average_is_the_elementwise_mean_and_loads(tmp_path):
    a = _saved(tmp_path / "a.pt", 0, 10)
    b = _saved(tmp_path / "b.pt", 1, 20)
    out = tmp_path / "soup" / "final.pt"  # a folder not made yet: the command makes it
    main([str(tmp_path / "a.pt"), str(tmp_path / "b.pt"), "--out", str(out)])
    model, config, meta = load_click_model(out)
    assert config == TINY
    for name, value in model.state_dict().items():
        if value.is_floating_point():
            torch.testing.assert_close(value, (a[name] + b[name]) / 2)
        else:
            assert torch.equal(value, b[name])  # integer buffers: the last file's
    assert [w["steps"] for w in meta["weight_average"]] == [10, 20]
    assert "val" not in meta  # the last file's score is not the average's


def test_average_refuses_different_networks(tmp_path):
    _saved(tmp_path / "a.pt", 0, 10)
    torch.manual_seed(0)
    save_click_model(tmp_path / "other.pt", build_model("ivos-cpu-distmap"), {"steps": 1})
    with pytest.raises(ValueError, match="not the same network"):
        average_checkpoints([tmp_path / "a.pt", tmp_path / "other.pt"])
    with pytest.raises(ValueError, match="at least two"):
        average_checkpoints([tmp_path / "a.pt"])
