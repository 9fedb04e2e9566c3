"""``training.snapshot``: a run cut short in stage 2 becomes a weight file that loads like final.pt."""
import json

import pytest

torch = pytest.importorskip("torch")

from ivos.export.checkpoint import load_click_model, save_click_model  # noqa: E402
from ivos.export.models import build_model  # noqa: E402
from training.snapshot import snapshot  # noqa: E402

ARGS = {"config": "ivos-cpu", "batch": "8", "size": "256", "seed": "3", "threads": "1", "stage2_steps": "2500"}


def _run(tmp_path, stage: int):
    run = tmp_path / "run"
    run.mkdir()
    (run / "train.log").write_text(f"2026-01-01 00:00:00,000 INFO args {json.dumps(ARGS)}\n")
    data = {"davis": {"images": 1, "objects": 1}, "val": {"images": 1, "objects": 1}}
    save_click_model(run / "stage1.pt", build_model("ivos-cpu-nomask"), {"stage": 1, "data": data})
    model = build_model("ivos-cpu")
    torch.save({"stage": stage, "step": 900, "wall_s": 1466.6, "model": model.state_dict(), "val": {"noc@90": 9.0}},
               run / "last.pt")
    return run, model, data


def test_a_stage2_checkpoint_becomes_a_weight_file(tmp_path):
    run, model, data = _run(tmp_path, stage=2)
    out = snapshot(run)
    assert out == run / "stage2-step900.pt"
    loaded, config, meta = load_click_model(out)
    assert config.name == "ivos-cpu"
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    assert (meta["stage"], meta["steps"], meta["planned_steps"], meta["seed"]) == (2, 900, 2500, 3)
    assert meta["data"] == data and meta["val"] == {"noc@90": 9.0}
    assert meta["train_click_sigma"] == 5.0  # a run from before --click-sigma rendered the runtime's 5 px


def test_a_stage1_checkpoint_is_refused(tmp_path):
    run, _, _ = _run(tmp_path, stage=1)
    with pytest.raises(ValueError, match="stage-1 checkpoint"):
        snapshot(run)


def test_a_snapshot_of_an_iterative_run_says_so(tmp_path):
    run, _, _ = _run(tmp_path, stage=2)
    (run / "train.log").write_text(f"2026-01-01 00:00:00,000 INFO args {json.dumps({**ARGS, 'iterative_clicks': '3'})}\n")
    assert load_click_model(snapshot(run))[2]["train_iterative_clicks"] == 3


def test_a_checkpoint_that_records_its_options_is_published_with_them(tmp_path):
    from training import train

    run, _, _ = _run(tmp_path, stage=2)
    (run / "train.log").write_text("")  # the checkpoint's own record suffices
    state = torch.load(run / "last.pt", weights_only=False)
    args = train.parse_args(["--name", "x", "--config", "ivos-cpu", "--iterative-clicks", "3",
                             "--protocol-first-fraction", "0.5", "--click-sigma", "runtime", "--seed", "3"])
    torch.save({**state, "args": vars(args)}, run / "last.pt")

    meta = load_click_model(snapshot(run))[2]

    assert (meta["train_iterative_clicks"], meta["train_protocol_first_fraction"], meta["train_click_sigma"]) == (3, 0.5, 4.0)
    assert (meta["seed"], meta["planned_steps"]) == (3, 2500)
