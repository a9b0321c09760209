"""Small Fashion-MNIST-shaped IDX files, written by the tests themselves.

The same format and file names as the upstream (and Debian's) files, so they go through
the real preparation path; the images are class-dependent shapes plus noise, so a
tiny GAN has something to learn and every pixel value from 0 to 255 occurs.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np

from gan_jax.data.images import FASHION_MNIST_FILES


def synthetic_images(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [count, 28, 28] images and uint8 [count] labels in 0..9."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 10, count).astype(np.uint8)
    rows, cols = np.mgrid[0:28, 0:28]
    images = rng.integers(0, 40, (count, 28, 28))
    for i, label in enumerate(labels):  # a bar whose place and width say the class
        top = 2 + 2 * int(label)
        images[i, top : top + 3 + int(label) % 3, 4:24] += 180
    images[:, 0, 0], images[:, -1, -1] = 0, 255
    return np.clip(images, 0, 255).astype(np.uint8), labels


def write_idx(path: Path, array: np.ndarray) -> None:
    """IDX: magic (0, 0, uint8 type 0x08, number of dimensions), the sizes, the bytes."""
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(int(n).to_bytes(4, "big") for n in array.shape)
    with gzip.open(path, "wb") as handle:
        handle.write(header + array.tobytes())


def write_fashion_mnist_like(directory: Path, train: int = 512, test: int = 128) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    train_images, train_labels = synthetic_images(train, seed=0)
    test_images, test_labels = synthetic_images(test, seed=1)
    for name, array in zip(FASHION_MNIST_FILES, (train_images, train_labels, test_images, test_labels), strict=True):
        write_idx(directory / name, array)
    return directory
