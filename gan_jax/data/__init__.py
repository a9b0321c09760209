"""Datasets, chosen by `dataset.name`: toy distributions sampled on the device, or TFDS images."""

from __future__ import annotations

from gan_jax.data import images, toy
from gan_jax.data.images import ImageDataset
from gan_jax.data.toy import ToyDataset

Dataset = ToyDataset | ImageDataset

_TOY_BUILDERS = {
    "gaussian_1d": lambda c: toy.gaussian_1d(c.mean, c.std),
    "ring_2d": lambda c: toy.ring_2d(c.num_modes, c.radius, c.std),
    "grid_2d": lambda c: toy.grid_2d(c.num_modes_per_side, c.spacing, c.std),
    "dirac": lambda c: toy.dirac(c.location),
}


def build(cfg) -> Dataset:
    if cfg.name in _TOY_BUILDERS:
        return _TOY_BUILDERS[cfg.name](cfg)
    return images.build(cfg)  # TFDS is imported only here
