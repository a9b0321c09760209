"""Datasets, chosen by `dataset.name`."""

from __future__ import annotations

from gan_jax.data import toy
from gan_jax.data.toy import ToyDataset

_BUILDERS = {
    "gaussian_1d": lambda c: toy.gaussian_1d(c.mean, c.std),
    "ring_2d": lambda c: toy.ring_2d(c.num_modes, c.radius, c.std),
    "grid_2d": lambda c: toy.grid_2d(c.num_modes_per_side, c.spacing, c.std),
    "dirac": lambda c: toy.dirac(c.location),
}


def build(cfg) -> ToyDataset:
    return _BUILDERS[cfg.name](cfg)
