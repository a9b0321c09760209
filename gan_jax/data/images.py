"""Image datasets from TFDS, read through random-access array_record data sources.

The order of examples is a fresh permutation each epoch, drawn from (seed, epoch), so
batch b of a run depends only on (seed, b): the step is the data position, and a
resumed run reads exactly the batches an uninterrupted one would. Images arrive as
float32 in [-1, 1], [batch, size, size, channels].

A dataset that is not prepared in `data_dir` is prepared on first use: Fashion-MNIST
from Debian's `dataset-fashion-mnist` package when it is installed, anything else
through TFDS's download when the network answers. Otherwise the run stops at once,
saying what to fetch and where to put it.
"""

from __future__ import annotations

import functools
import gzip
import logging
import socket
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from gan_jax import rundir
from gan_jax.data.base import DatasetPart, names_where, register
from gan_jax.errors import ConfigError
from gan_jax.schema import MISSING, at_least, one_of, optional_positive

log = logging.getLogger(__name__)

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_FILES = (
    "train-images-idx3-ubyte.gz",
    "train-labels-idx1-ubyte.gz",
    "t10k-images-idx3-ubyte.gz",
    "t10k-labels-idx1-ubyte.gz",
)
NETWORK_TIMEOUT_S = 3.0


class DataError(ConfigError):
    """The data is missing, damaged or not usable as configured; the message says how to fix it."""


@dataclass(frozen=True)
class ImageDataset:
    name: str  # the TFDS name
    shape: tuple[int, int, int]  # what the models see: (size, size, channels)
    source: Any = None  # random access: len() and __getitems__(indices)
    crop: int | None = None  # centre crop (pixels) before resizing to `shape`
    num_classes: int = 0  # of the `label` feature; 0: the dataset has none
    # Pixels are scaled to [-1, 1]: already standard for the models.
    loc: tuple[float, ...] = (0.0,)
    scale: tuple[float, ...] = (1.0,)

    @property
    def host_batches(self) -> bool:
        return True  # read on the host by `batch`, fed to the step

    @property
    def dim(self) -> int:
        return int(np.prod(self.shape))

    @property
    def num_examples(self) -> int:
        return len(self.source)

    def batch(self, seed: int, index: int, batch_size: int, share: slice = slice(None)) -> np.ndarray:
        """Batch `index` (0-based, over the whole run) of the stream for `seed`; only the
        examples in `share` are read (a process's part of a batch split over processes)."""
        return self._images(self._read(self._batch_indices(seed, index, batch_size)[share]))

    def labelled_batch(
        self, seed: int, index: int, batch_size: int, share: slice = slice(None)
    ) -> tuple[np.ndarray, np.ndarray]:
        """(images, int32 labels) of batch `index` of the stream for `seed` (`share`: as in `batch`)."""
        examples = self._read(self._batch_indices(seed, index, batch_size)[share])
        return self._images(examples), _labels(examples)

    def examples(self, start: int, count: int, labels: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """(images, labels if asked) of examples start .. start+count-1 of the split in its
        stored order, preprocessed (reference images)."""
        examples = self._read(list(range(start, start + count)))
        return self._images(examples), _labels(examples) if labels else None

    def _batch_indices(self, seed: int, index: int, batch_size: int) -> list[int]:
        per_epoch = self.num_examples // batch_size  # the last partial batch is dropped
        epoch, position = divmod(index, per_epoch)
        order = _epoch_order(seed, epoch, self.num_examples)
        return order[position * batch_size : (position + 1) * batch_size].tolist()

    def _read(self, indices: list[int]) -> list[dict]:
        return self.source.__getitems__(indices)

    def _images(self, examples: list[dict]) -> np.ndarray:
        return self.preprocess(np.stack([example["image"] for example in examples]))

    def preprocess(self, images: np.ndarray) -> np.ndarray:
        """uint8 [B, H, W, C] -> float32 [-1, 1] [B, size, size, C]: centre crop, then resize."""
        height, width = images.shape[1:3]
        if self.crop is not None:
            top, left = (height - self.crop) // 2, (width - self.crop) // 2
            images = images[:, top : top + self.crop, left : left + self.crop]
        size = self.shape[0]
        if images.shape[1:3] != (size, size):
            images = np.stack([_resize(image, size) for image in images])
        return images.astype(np.float32) / 127.5 - 1.0


def _labels(examples: list[dict]) -> np.ndarray:
    return np.asarray([example["label"] for example in examples], np.int32)


@functools.lru_cache(maxsize=8)
def _epoch_order(seed: int, epoch: int, num_examples: int) -> np.ndarray:
    return np.random.default_rng([seed, epoch]).permutation(num_examples)


def _resize(image: np.ndarray, size: int) -> np.ndarray:
    squeezed = image[..., 0] if image.shape[-1] == 1 else image
    resized = np.asarray(Image.fromarray(squeezed).resize((size, size), Image.Resampling.BILINEAR))
    return resized.reshape(size, size, image.shape[-1])


def build(cfg) -> ImageDataset:
    """Opens (preparing first if needed) `cfg.tfds_name`'s `cfg.split` and checks it is readable."""
    builder = _builder(cfg.tfds_name, cfg.data_dir)
    if not builder.is_prepared():
        _prepare(builder, cfg)
        builder = _builder(cfg.tfds_name, cfg.data_dir)  # reads what was just written
    source = _open(builder, cfg.split)
    source_shape = tuple(source[0]["image"].shape)
    crop = cfg.crop
    if crop is not None and crop > min(source_shape[:2]):
        raise DataError(
            f"dataset.crop={crop}: larger than {cfg.tfds_name}'s "
            f"{source_shape[0]}x{source_shape[1]} images; use at most {min(source_shape[:2])}"
        )
    features = builder.info.features
    num_classes = features["label"].num_classes if "label" in features else 0
    return ImageDataset(cfg.tfds_name, (cfg.image_size, cfg.image_size, source_shape[2]), source, crop, num_classes)


def _builder(name: str, data_dir: str | None):
    import tensorflow_datasets as tfds

    try:
        return tfds.builder(name, data_dir=data_dir, file_format="array_record")
    except tfds.core.registered.DatasetNotFoundError as error:
        raise DataError(f"dataset.tfds_name={name!r}: not a TFDS dataset ({error})") from None


def _open(builder, split: str):
    where = Path(builder.data_dir)
    try:
        source = builder.as_data_source(split=split)
    except NotImplementedError:
        raise DataError(
            f"{builder.name} in {where} was prepared as {builder.info.file_format.value}; random access "
            f"needs array_record: run `tfds build {builder.name} --file_format=array_record "
            f"--data_dir {where.parents[1]}`, or delete {where} and run again"
        ) from None
    except KeyError:
        raise DataError(
            f"dataset.split={split!r}: {builder.name} has the splits {', '.join(builder.info.splits)}"
        ) from None
    try:
        source[0], source[len(source) - 1]
    except Exception as error:  # noqa: BLE001 - any failure to read means the same thing
        raise DataError(
            f"{where} holds a damaged copy of {builder.name} ({type(error).__name__}: "
            f"{error}); delete {where} and run again to prepare it anew"
        ) from None
    return source


def _prepare(builder, cfg) -> None:
    data_root = Path(builder.data_dir).parents[1]
    data_root.mkdir(parents=True, exist_ok=True)
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    with rundir.file_lock(data_root / f".{builder.name}.prepare.lock"):
        if builder.is_prepared():  # another job of the sweep prepared it meanwhile
            return
        if builder.name == "fashion_mnist" and debian_fashion_mnist_present():
            log.info("preparing fashion_mnist in %s from %s (once; about 20 s)", data_root, DEBIAN_FASHION_MNIST)
            prepare_fashion_mnist_from_debian(data_root)
            return
        unreachable = _unreachable_hosts(builder) if cfg.download else ["downloads disabled"]
        if unreachable:
            raise DataError(_missing_data_message(builder, data_root, unreachable))
        log.info("downloading and preparing %s in %s", builder.name, data_root)
        _tensorflow_for_preparation(builder.name)
        builder.download_and_prepare(file_format="array_record")


def _missing_data_message(builder, data_root: Path, reasons: list[str]) -> str:
    name = builder.name
    message = (
        f"dataset {name} is not prepared in {data_root} and cannot be downloaded "
        f"({'; '.join(reasons)}). On a machine with internet run\n"
        f"    tfds build {name} --file_format=array_record --data_dir DIR\n"
        f"and copy DIR/{name} to {data_root}/{name}, or set dataset.data_dir to a directory that holds it."
    )
    if name == "fashion_mnist":
        message += (
            " Offline, Debian's package dataset-fashion-mnist provides it (apt-get install dataset-fashion-mnist)."
        )
    return message


def _unreachable_hosts(builder) -> list[str]:
    """Empty when every host the dataset downloads from accepts a connection within seconds.

    TFDS itself retries for minutes before it gives up on a dead network.
    """
    hosts = sorted({urllib.parse.urlsplit(url).hostname for url in (builder.url_infos or {})})
    problems = []
    for host in hosts:
        try:
            socket.create_connection((host, 443), timeout=NETWORK_TIMEOUT_S).close()
        except OSError as error:
            problems.append(f"cannot reach {host}: {error}")
    return problems


def _tensorflow_for_preparation(name: str) -> None:
    try:
        import tensorflow  # noqa: F401  TFDS writes datasets with it; reading needs none
    except ImportError:
        raise DataError(f"preparing {name} needs TensorFlow: pip install tensorflow-cpu") from None


def debian_fashion_mnist_present() -> bool:
    """Whether Debian's dataset-fashion-mnist has installed all four IDX files."""
    return all((DEBIAN_FASHION_MNIST / f).is_file() for f in FASHION_MNIST_FILES)


FASHION_MNIST_COUNTS = (60000, 60000, 10000, 10000)  # the files' items, in FASHION_MNIST_FILES' order


def prepare_fashion_mnist_from_debian(
    data_root: Path,
    source: Path = DEBIAN_FASHION_MNIST,
    counts: tuple[int, ...] | None = FASHION_MNIST_COUNTS,
) -> Path:
    """Prepares TFDS's fashion_mnist (array_record) in `data_root` from Debian's IDX files.

    Debian re-compressed the upstream files, so their sha256 differ from the ones TFDS
    registered while the images and labels inside are the same. Instead of switching
    checksum validation off, the builder is told the checksums of the files at hand,
    after their contents have been checked (IDX headers and example counts).
    `counts=None` accepts any number of examples (the tests write small IDX files).
    """
    import tensorflow_datasets as tfds
    from tensorflow_datasets.core.download import checksums
    from tensorflow_datasets.image_classification.mnist import FashionMNIST

    _tensorflow_for_preparation("fashion_mnist")
    items = [
        _check_idx(source / filename, count)
        for filename, count in zip(FASHION_MNIST_FILES, counts or (None,) * 4, strict=True)
    ]
    if items[0] != items[1] or items[2] != items[3]:
        raise DataError(f"{source}: image and label files disagree on their counts ({items})")
    local_files = {FashionMNIST.URL + f: checksums.compute_url_info(source / f) for f in FASHION_MNIST_FILES}

    class DebianFashionMNIST(FashionMNIST, skip_registration=True):  # type: ignore[call-arg]
        name = "fashion_mnist"  # the same dataset, version and features as TFDS's
        url_infos = local_files

        def _generate_examples(self, num_examples, data_path, label_path):
            # TFDS hard-codes 60,000 / 10,000; the IDX header says how many there are.
            count = {FASHION_MNIST_COUNTS[0]: items[0], FASHION_MNIST_COUNTS[2]: items[2]}[num_examples]
            return super()._generate_examples(count, data_path, label_path)

    builder = DebianFashionMNIST(data_dir=str(data_root), file_format="array_record")
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(source)))
    return Path(builder.data_dir)


def _check_idx(path: Path, count: int | None) -> int:
    """The number of items in an IDX file, after checking its header (and `count`, if given)."""
    with gzip.open(path, "rb") as handle:
        header = handle.read(8)
    magic, items = int.from_bytes(header[:4], "big"), int.from_bytes(header[4:8], "big")
    if magic not in (2049, 2051) or (count is not None and items != count):
        raise DataError(
            f"{path}: not Fashion-MNIST's IDX file (magic {magic}, {items} items; "
            f"expected {count}); reinstall dataset-fashion-mnist"
        )
    return items


# --- schema and registration: dataset=<name> -----------------------------------------


@dataclass
class ImageDataConfig:
    """A TFDS image dataset, read as an array_record data source."""

    name: str = one_of(lambda: names_where(lambda p: p.schema is ImageDataConfig))
    tfds_name: str = MISSING
    split: str = MISSING
    # null: TFDS's default ($TFDS_DATA_DIR, else ~/tensorflow_datasets).
    data_dir: str | None = MISSING
    image_size: int = at_least(1)  # the models see size x size images
    crop: int | None = optional_positive(MISSING)  # centre crop before resizing (CelebA: 108)
    download: bool = MISSING  # false: never touch the network; fail at once when not prepared
    workers: int = at_least(0)  # processes that read and decode batches; 0: a thread of the training process


def _constant(channels: int | None):
    return None if channels is None else lambda cfg: channels


# name -> the classes of its `label` feature (celeb_a has none; tfds: whichever dataset it names), its channels
for _name, _classes, _channels in (
    ("mnist", 10, 1),
    ("fashion_mnist", 10, 1),
    ("cifar10", 10, 3),
    ("celeb_a", 0, 3),
    ("tfds", None, None),
):
    register(
        DatasetPart(
            _name,
            ImageDataConfig,
            build,
            image_size=lambda c: c.image_size,
            num_classes=_classes,
            channels=_constant(_channels),
        )
    )
