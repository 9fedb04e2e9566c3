"""``ivos serve`` passes its propagation flags to the video predictor (in process, no HTTP)."""
import pytest

from ivos.serve.config import ServeConfig
from ivos.serve.service import Service


@pytest.mark.parametrize("adapt_every", [None, 0, 8])
def test_adapt_every_reaches_the_video_predictor(tmp_path, bundles, adapt_every):
    config = ServeConfig(data_dir=tmp_path / "data", model=str(bundles["click"]), osvos_model=str(bundles["osvos"]),
                         threads=1, adapt_every=adapt_every)
    service = Service(config)
    service.load_models()
    settings = service.video_predictor().settings
    assert settings.adapt_every == (adapt_every or 0)
    # no fine-tuning flags: the bundle's own recipe (not a copy of the defaults)
    assert settings.finetune.steps == service.osvos_model.bundle.card.get("finetune", {}).get("steps", 150)


def test_a_negative_adapt_every_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--adapt-every"):
        ServeConfig(data_dir=tmp_path, adapt_every=-1).check()


@pytest.mark.parametrize("propagation", ["bundle", "classic"])
def test_the_named_propagation_reaches_the_video_predictor(tmp_path, bundles, propagation):
    """--propagation picks the recipe; --finetune-steps changes that recipe's steps only."""
    from ivos.settings import PropagationSettings

    config = ServeConfig(data_dir=tmp_path / "data", model=str(bundles["click"]), osvos_model=str(bundles["osvos"]),
                         threads=1, propagation=propagation, finetune_steps=3)
    service = Service(config)
    service.load_models()
    settings = service.video_predictor().settings
    recipe = PropagationSettings.resolve(service.osvos_model.bundle, propagation=propagation, threads=1)
    assert settings.mode == recipe.mode and settings.finetune.steps == 3
    assert settings.finetune.batch == recipe.finetune.batch and settings.finetune.crop == recipe.finetune.crop


def test_an_unknown_propagation_names_the_flag(tmp_path):
    with pytest.raises(ValueError, match="--propagation must be one of bundle, classic"):
        ServeConfig(data_dir=tmp_path, propagation="fast").check()


def test_quick_start_reaches_the_video_predictor(tmp_path, bundles):
    config = ServeConfig(data_dir=tmp_path / "data", model=str(bundles["click"]), osvos_model=str(bundles["osvos"]),
                         threads=1, quick_start=60)
    service = Service(config)
    service.load_models()
    finetune = service.video_predictor().settings.finetune
    assert (finetune.quick_steps, finetune.quick_frames) == (60, 1)
    with pytest.raises(ValueError, match="--quick-start"):
        ServeConfig(data_dir=tmp_path, quick_start=-1).check()
