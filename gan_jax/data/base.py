"""What every dataset is (the `Dataset` protocols) and how one is registered (`DatasetPart`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import jax
import numpy as np

from gan_jax.registry import Registry, Rule


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
    # Batch `index` of seed's stream; `share`: only those examples of it (one process's).
    def batch(self, seed: int, index: int, batch_size: int, share: slice = ...) -> np.ndarray: ...
    # (images, int32 labels) of the same batch, for class-conditional models
    def labelled_batch(
        self, seed: int, index: int, batch_size: int, share: slice = ...
    ) -> tuple[np.ndarray, np.ndarray]: ...


@dataclass(frozen=True)
class DatasetPart:
    """A dataset as gan-train chooses it: `dataset=<name>` composes conf/dataset/<name>.yaml
    over `schema` (stored as schema/dataset/<name>); `build(cfg.dataset)` makes the Dataset.
    What the config says of its examples, for the rules of the parts it meets: `shape`, one
    example's shape when the config does not change it (toy data), or `image_size(cfg.dataset)`
    for images (size x size x channels); `num_classes`: how many classes its `label` feature
    has (0: no labels; None: known once the dataset is opened, e.g. any TFDS dataset)."""

    name: str
    schema: type
    build: Callable[[Any], Dataset]
    shape: tuple[int, ...] | None = None
    image_size: Callable[[Any], int] | None = None
    rules: tuple[Rule, ...] = ()
    num_classes: int | None = 0
    image_size_key: str = "image_size"  # the dataset.<key> that sets the image size, for messages
    # Images: (cfg.dataset) -> their channels; None: known once the dataset is opened (tfds).
    channels: Callable[[Any], int] | None = None


DATASETS: Registry[DatasetPart] = Registry("dataset")


def register(part: DatasetPart, *, replace: bool = False) -> DatasetPart:
    return DATASETS.register(part.name, part, replace=replace)


@dataclass(frozen=True)
class DataFacts:
    """What a dataset config says about its examples, known without building the dataset."""

    name: str
    shape: tuple[int, ...] | None  # None: set by the config (images)
    image_size: int | None  # None: not images
    num_classes: int | None = 0  # of its labels; 0: none; None: known once opened
    image_size_key: str = "image_size"  # dataset.<this> sets the size
    channels: int | None = None  # images: None when known only once opened


def facts(cfg: Any) -> DataFacts:
    part = DATASETS.get(cfg.name)
    size = part.image_size(cfg) if part.image_size else None
    channels = part.channels(cfg) if part.channels else None
    return DataFacts(cfg.name, part.shape, size, part.num_classes, part.image_size_key, channels)


def names_where(test: Callable[[DatasetPart], bool]) -> tuple[str, ...]:
    """The registered datasets that pass `test`, for messages that list the valid ones."""
    return tuple(p.name for p in DATASETS if test(p))
