"""Single-file released checkpoints (ermongroup DDIM, OpenAI ADM) mapped onto ``UNet2DModel``."""
from __future__ import annotations

from pathlib import Path

from ..errors import CheckpointError


def load_checkpoint_file(path: Path, name: str | None = None):
    raise CheckpointError(f"{path}: single-file checkpoints are not supported yet; give a model folder")
