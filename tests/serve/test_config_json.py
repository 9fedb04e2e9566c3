"""``ServeConfig`` crosses process boundaries (uvicorn workers, Ray replicas) as JSON: every
field must survive the trip."""
import dataclasses
from pathlib import Path

from ivos.serve.config import ServeConfig


def test_every_field_survives_the_json_round_trip():
    changed = {}
    for f in dataclasses.fields(ServeConfig):
        value = getattr(ServeConfig(), f.name)
        if isinstance(value, bool):
            changed[f.name] = not value
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            changed[f.name] = value + 3
        elif isinstance(value, str):
            changed[f.name] = value + "-x"
        elif isinstance(value, Path):
            changed[f.name] = Path("/tmp/ivos-config-test")
        elif isinstance(value, tuple):
            changed[f.name] = ("key-a", "key-b")
        elif value is None:
            changed[f.name] = 7
        else:
            raise AssertionError(f"add a changed value for field {f.name} ({type(value).__name__})")
    config = ServeConfig(**changed)
    assert all(getattr(config, k) != getattr(ServeConfig(), k) for k in changed)  # every field differs
    assert ServeConfig.from_json(config.to_json()) == config
