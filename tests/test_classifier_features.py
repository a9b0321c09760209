"""The shipped Fashion-MNIST classifier: its recorded accuracy, a real check on the test split
where Debian's dataset-fashion-mnist is installed, and FID on its features behaving as a
distance between image distributions should."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import jax
import numpy as np
import pytest

from gan_jax import metrics
from gan_jax.metrics import classifier

WEIGHTS = classifier.WEIGHTS_DIR / f"{classifier.WEIGHTS_NAME}.npz"
IDX_DIR = Path(os.environ.get("GAN_JAX_FASHION_MNIST_IDX", classifier.DEBIAN_IDX_DIR))
needs_data = pytest.mark.skipif(
    not all((IDX_DIR / f).is_file() for files in classifier.IDX_FILES.values() for f in files),
    reason=f"Fashion-MNIST IDX files not in {IDX_DIR}: apt-get install dataset-fashion-mnist "
    f"(or set GAN_JAX_FASHION_MNIST_IDX to a directory holding them)",
)


@pytest.fixture(scope="module")
def extract():
    return metrics.fashion_mnist_classifier(progress=False)


@pytest.fixture(scope="module")
def splits():
    train, _ = classifier.load_idx("train", IDX_DIR)
    test, labels = classifier.load_idx("test", IDX_DIR)
    return train, test, labels


def test_shipped_weights_and_their_record():
    record = json.loads(WEIGHTS.with_suffix(".json").read_text())
    assert record["test_accuracy"] >= 0.90
    assert record["command"].startswith("python -m gan_jax.metrics.classifier train")
    assert record["date"] and record["test_split"].startswith("test (10000")
    assert record["weights_sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert WEIGHTS.stat().st_size < 1_000_000


def test_features_and_logits_offline(extract):
    images = np.random.default_rng(0).uniform(-1, 1, (7, 28, 28, 1)).astype(np.float32)
    features, logits = extract(images)
    assert features.shape == (7, classifier.FEATURE_DIM) and logits.shape == (7, 10)
    assert extract.provenance["weights_sha256"] == hashlib.sha256(WEIGHTS.read_bytes()).hexdigest()
    assert extract.provenance["test_accuracy"] >= 0.90
    with pytest.raises(ValueError, match=r"square grey images \[N, S, S, 1\]"):
        extract(np.zeros((2, 32, 28, 1), np.float32))


def test_other_sizes_are_resized_to_28_with_antialiasing(extract):
    images = np.random.default_rng(1).uniform(-1, 1, (5, 32, 32, 1)).astype(np.float32)
    resized = np.asarray(jax.image.resize(images, (5, 28, 28, 1), "linear", antialias=True))
    np.testing.assert_allclose(extract(images)[0], extract(resized)[0], rtol=1e-5, atol=1e-6)
    assert "antialiased" in extract.provenance["resizer"]


def test_wrong_weights_are_named(tmp_path):
    with np.load(WEIGHTS) as stored:
        flat = dict(stored)
    key = sorted(flat)[0]
    flat[key] = np.zeros((1, 2, 3), np.float32)
    np.savez(tmp_path / "bad.npz", **flat)
    with pytest.raises(ValueError, match=f"tensor {key} has shape \\(1, 2, 3\\)"):
        metrics.fashion_mnist_classifier(tmp_path / "bad.npz")


@needs_data
def test_accuracy_on_the_test_split(extract, splits):
    _, test, labels = splits
    accuracy = classifier.accuracy(extract(test)[1], labels)
    assert accuracy >= 0.90
    assert accuracy == pytest.approx(extract.metadata["test_accuracy"], abs=2e-3)


@needs_data
def test_fid_train_vs_test_is_far_below_noise(extract, splits):
    train, test, _ = splits
    n = 5000
    train_features = extract(train[:n])[0]
    test_features = extract(test[:n])[0]
    noise = np.random.default_rng(1).uniform(-1, 1, test[:n].shape).astype(np.float32)
    floor = metrics.frechet_distance(train_features, test_features)
    to_noise = metrics.frechet_distance(test_features, extract(noise)[0])
    assert floor * 100 < to_noise, (floor, to_noise)


@needs_data
def test_fid_grows_with_gaussian_noise(extract, splits):
    train, test, _ = splits
    n = 3000
    reference = extract(train[:n])[0]
    rng = np.random.default_rng(2)
    fids = []
    for sigma in (0.0, 0.05, 0.1, 0.2, 0.4, 0.8):
        noisy = np.clip(test[:n] + sigma * rng.standard_normal(test[:n].shape), -1, 1).astype(np.float32)
        fids.append(metrics.frechet_distance(reference, extract(noisy)[0]))
    assert all(a < b for a, b in zip(fids, fids[1:], strict=False)), fids
