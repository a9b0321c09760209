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

from gan_jax.data import folder, images, toy
from gan_jax.data.base import (
    DATASETS,
    BatchDataset,
    DataFacts,
    Dataset,
    DatasetPart,
    SampledDataset,
    facts,
    names_where,
    register,
)
from gan_jax.data.images import ImageDataset
from gan_jax.data.toy import ToyDataset

__all__ = [
    "DATASETS",
    "BatchDataset",
    "DataFacts",
    "Dataset",
    "DatasetPart",
    "ImageDataset",
    "SampledDataset",
    "ToyDataset",
    "build",
    "facts",
    "folder",
    "images",
    "names_where",
    "register",
    "toy",
]


def build(cfg) -> Dataset:
    """The dataset `cfg` (a dataset config node) names; TFDS is imported only for images."""
    return DATASETS.get(cfg.name).build(cfg)
