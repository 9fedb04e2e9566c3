"""``training.model_card``: weights published in half precision keep what half precision cannot hold."""
import pytest

torch = pytest.importorskip("torch")

from training.model_card import _copy_weights  # noqa: E402


def test_fp16_copy_keeps_values_beyond_half_range_in_float(tmp_path):
    state = {"conv.weight": torch.randn(4, 3), "bn.running_var": torch.tensor([1.0, 109278.0]),
             "bn.num_batches_tracked": torch.tensor(7)}
    torch.save({"state_dict": state, "metadata": {"stage": 2}}, tmp_path / "src.pt")
    _copy_weights(tmp_path / "src.pt", tmp_path / "dst.pt", fp16=True)
    out = torch.load(tmp_path / "dst.pt", weights_only=True)
    sd = out["state_dict"]
    assert sd["conv.weight"].dtype == torch.float16 and torch.allclose(sd["conv.weight"].float(), state["conv.weight"],
                                                                      atol=1e-2)
    assert sd["bn.running_var"].dtype == torch.float32 and torch.equal(sd["bn.running_var"], state["bn.running_var"])
    assert torch.equal(sd["bn.num_batches_tracked"], state["bn.num_batches_tracked"])
    assert out["metadata"] == {"stage": 2, "stored_as": "fp16"}
