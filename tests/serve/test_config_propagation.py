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
