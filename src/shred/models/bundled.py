"""The models that ship inside the package (``src/shred/bundled/<name>/``), trained by shred itself
with ``shred-ir train`` (recipes and figures in docs/MODELS.md)."""
from __future__ import annotations

from .registry import ModelEntry, register_model

register_model(ModelEntry(
    name="cifar10-32",
    kind="bundled",
    architecture="diffusers UNet2DModel, 4.4M parameters (64/128/128 channels, 1 res block per level, attention at 16x16)",
    resolution=32, channels=3, data_range=(-1.0, 1.0),
    licence="MIT (weights trained by shred); training data CIFAR-10 (Krizhevsky 2009, no licence stated)",
    description="trained by shred on the CIFAR-10 train split (50,000 images), EMA weights in fp16; "
                "the default for RGB input",
    size_mb=8.5,
))

register_model(ModelEntry(
    name="fashion-mnist-28",
    kind="bundled",
    architecture="diffusers UNet2DModel, 1.6M parameters (32/64/64 channels, 2 res blocks, attention at 14x14)",
    resolution=28, channels=1, data_range=(-1.0, 1.0),
    licence="MIT (weights trained by shred); training data Fashion-MNIST (MIT)",
    description="trained by shred on the Fashion-MNIST train split (60,000 images), EMA weights in fp16; "
                "the default for grey input",
    size_mb=3.1,
))
