"""Click-network weight files: fp32 ``state_dict`` + ``ClickNetConfig`` + metadata in one
``torch.save`` file, (the preprocessing constants it records come from ``ivos.network_io``).

Metadata always holds ``click_sigma``, ``working_size``, ``imagenet_mean``, ``imagenet_std``
(copies of the constants below, so a weights file is self-describing) and whatever the
trainer adds (steps, data counts, validation metrics).
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import torch

from ..network_io import CLICK_SIGMA, IMAGENET_MEAN, IMAGENET_STD, WORKING_SIZE
from .models import ClickNetConfig, build_model

__all__ = ["load_click_model", "save_click_model"]


def save_click_model(path: str | Path, model: torch.nn.Module, metadata: dict[str, Any] | None = None) -> None:
    """Saves ``model`` (a ``ClickNet``) as fp32 weights + its config + metadata."""
    meta = {"click_sigma": CLICK_SIGMA, "working_size": WORKING_SIZE,
            "imagenet_mean": list(IMAGENET_MEAN), "imagenet_std": list(IMAGENET_STD), **(metadata or {})}
    state = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({"format": "ivos-clicknet-v1", "config": dataclasses.asdict(model.config),
                "state_dict": state, "metadata": meta}, path)


def load_click_model(path: str | Path) -> tuple[torch.nn.Module, ClickNetConfig, dict[str, Any]]:
    """Loads a file written by ``save_click_model``. Returns (model in eval mode, its config,
    metadata dict)."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    fields = {k: tuple(v) if isinstance(v, list) else v for k, v in blob["config"].items()}
    config = ClickNetConfig(**fields)
    model = build_model(config)
    model.load_state_dict(blob["state_dict"])
    return model.eval(), config, blob["metadata"]
