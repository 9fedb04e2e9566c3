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


@pytest.mark.parametrize(("argv", "sigma"), [([], 5.0), (["--click-sigma", "3.5"], 3.5),
                                             (["--click-sigma", "runtime"], 4.0),
                                             (["--click-sigma", "runtime", "--size", "320"], 5.0)])
def test_click_sigma_defaults_to_the_runtimes_and_runtime_scales_it_to_the_crop(argv, sigma):
    assert train.parse_args(["--name", "x", *argv]).click_sigma == pytest.approx(sigma)


@pytest.mark.parametrize("bad", ["0", "-1", "big"])
def test_click_sigma_rejects_what_is_not_a_size(bad, capsys):
    with pytest.raises(SystemExit):
        train.parse_args(["--name", "x", "--click-sigma", bad])
    assert "--click-sigma" in capsys.readouterr().err


def test_training_clicks_are_rendered_at_the_chosen_sigma():
    """The batch's click channel narrows with --click-sigma: its mass scales with sigma^2."""
    import numpy as np

    from training import interactions
    from training.augment import View

    view = View(np.zeros((64, 64, 3), np.uint8), np.zeros((64, 64), bool), np.zeros((64, 64), bool))
    click = (np.array([[32.0, 32.0, 1.0]], np.float32), [])
    mass = {s: interactions.encode_batch([view], [click], None, "gaussian", s)[2].sum().item() for s in (2.0, 4.0)}
    assert mass[4.0] / mass[2.0] == pytest.approx(4.0, rel=0.05)


def test_iterative_clicks_is_off_by_default_and_rejects_negative_counts(capsys):
    assert train.parse_args(["--name", "x"]).iterative_clicks == 0
    assert train.parse_args(["--name", "x", "--iterative-clicks", "3"]).iterative_clicks == 3
    with pytest.raises(SystemExit):
        train.parse_args(["--name", "x", "--iterative-clicks", "-1"])
    assert "--iterative-clicks" in capsys.readouterr().err


def test_resume_goes_on_with_the_runs_own_options_and_the_command_lines_run_only_ones():
    saved = vars(train.parse_args(["--name", "x", "--click-sigma", "runtime", "--iterative-clicks", "3",
                                   "--lr2", "3e-4", "--threads", "1"]))
    argv = ["--name", "x", "--resume", "--threads", "2", "--val-every=100"]

    args = train.resumed_args(train.parse_args(argv), train.given_options(argv), saved)

    assert (args.click_sigma, args.iterative_clicks, args.lr2) == (4.0, 3, 3e-4)
    assert (args.threads, args.val_every, args.resume) == (2, 100, True)


def test_resume_refuses_options_that_change_what_the_run_trains():
    saved = vars(train.parse_args(["--name", "x", "--iterative-clicks", "3"]))
    argv = ["--name", "x", "--resume", "--iterative-clicks=0", "--lr2", "1e-3"]

    with pytest.raises(ValueError, match="--iterative-clicks 0 \\(the run has 3\\)") as err:
        train.resumed_args(train.parse_args(argv), train.given_options(argv), saved)
    assert "--lr2" not in str(err.value)  # the run's own value, given again, is no change


def test_given_options_names_what_the_command_line_wrote():
    assert train.given_options(["--name", "x", "--click-sigma=runtime", "--resume"]) == {"name", "click_sigma", "resume"}


def test_protocol_first_interactions_click_the_objects_interior_most_pixel_once():
    import numpy as np

    from training import interactions
    from training.augment import View

    gt = np.zeros((40, 40), bool)
    gt[5:16, 20:31] = True  # an 11 x 11 square: its one interior-most pixel is row 10, column 25
    views = [View(np.zeros((40, 40, 3), np.uint8), gt, np.zeros((40, 40), bool)),
             View(np.zeros((40, 40, 3), np.uint8), np.zeros((40, 40), bool), np.zeros((40, 40), bool))]

    protocol, empty = interactions.first_interactions(views, np.random.default_rng(0), protocol_fraction=1.0)

    (x, y, label), = protocol[0]
    assert (x, y, label) == (25, 10, 1) and protocol[1] == []
    assert len(empty[0]) >= 1  # no object pixel: the random mix, never an error
    mixed = interactions.first_interactions(views[:1] * 200, np.random.default_rng(1), protocol_fraction=0.5)
    lone_centre = sum(len(c) == 1 and not s and (c[0, 0], c[0, 1]) == (x, y) for c, s in mixed)
    assert 70 <= lone_centre <= 130


def test_protocol_first_fraction_is_off_by_default_and_a_share(capsys):
    assert train.parse_args(["--name", "x"]).protocol_first_fraction == 0.0
    with pytest.raises(SystemExit):
        train.parse_args(["--name", "x", "--protocol-first-fraction", "1.5"])
    assert "--protocol-first-fraction" in capsys.readouterr().err
