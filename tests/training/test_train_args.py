"""training.train's starting points: which weights each stage starts from, and conflicting options."""
import pytest
import torch

from ivos.export.checkpoint import save_click_model
from ivos.export.models import build_model
from training import train


def test_stage1_init_starts_stage1_from_the_files_weights(tmp_path):
    args = train.parse_args(["--name", "x", "--config", "ivos-cpu", "--stage1-init", str(tmp_path / "s1.pt")])
    torch.manual_seed(3)
    earlier = build_model(train.stage1_config("ivos-cpu"))
    save_click_model(tmp_path / "s1.pt", earlier, {"stage": 1})

    model = train._stage_model(args, stage=1, stage1_weights=None)

    for name, value in earlier.state_dict().items():
        assert torch.equal(model.state_dict()[name], value), name


@pytest.mark.parametrize("other", [["--stage1-from", "a.pt"], ["--continue-from", "a.pt", "b.pt"]])
def test_stage1_init_conflicts_with_options_that_skip_stage1(other, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--name", "x", "--stage1-init", "s1.pt", *other])
    assert "--stage1-init" in capsys.readouterr().err
