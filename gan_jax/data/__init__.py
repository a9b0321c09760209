"""Datasets, chosen by `dataset.name`: toy distributions sampled on the device, or TFDS images.

Every dataset is a `Dataset`: a name, one example's `shape`, its per-dimension location
and scale (`loc`, `scale`: what the models standardise with), and one of two ways to
reach the step, said by `host_batches`:

- False, a `SampledDataset`: `sample_one(key) -> example`, drawn inside the compiled
  step from per-example keys (gan_jax/data/toy.py);
- True, a `BatchDataset`: `batch(seed, index, batch_size) -> np.ndarray`, read on the host
  and fed to the devices ahead of the step (gan_jax/data/images.py, gan_jax/feed.py).

A dataset may carry more (a mixture's `modes`, a 1-D `density`); the evaluators that
need it look for it, the loop never does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import jax
import numpy as np

from gan_jax.data import images, toy
from gan_jax.data.images import ImageDataset
from gan_jax.data.toy import ToyDataset

__all__ = ["BatchDataset", "Dataset", "ImageDataset", "SampledDataset", "ToyDataset", "build"]


class Dataset(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def shape(self) -> tuple[int, ...]: ...
    @property
    def loc(self) -> tuple[float, ...]: ...
    @property
    def scale(self) -> tuple[float, ...]: ...
    @property
    def host_batches(self) -> bool: ...


class SampledDataset(Dataset, Protocol):
    @property
    def sample_one(self) -> Callable[[jax.Array], jax.Array]: ...  # key -> one example


class BatchDataset(Dataset, Protocol):
    def batch(self, seed: int, index: int, batch_size: int) -> np.ndarray: ...  # batch `index` of seed's stream


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
