"""A Fashion-MNIST classifier as the feature network for 28x28 grey images (TF-GAN's MNIST
Frechet distance does the same with MNIST): trained by gan_jax on the train split, its
weights (0.8 MB) ship in gan_jax/metrics/weights/, so FID/KID/PRDC on its features and a
classifier score work offline.

    extract = fashion_mnist_classifier()
    features, logits = extract(images)  # [N, 28, 28, 1] in [-1, 1] -> [N, 128], [N, 10]
    extract(images_32)                   # other square grey sizes: resized to 28x28 first
    extract.provenance                   # network, weights sha256, test accuracy, training command

Network: conv3x3(32) -> maxpool2 -> conv3x3(64) -> maxpool2 -> flatten (7x7x64) ->
dense(128) + ReLU = the features (penultimate layer) -> dense(10) = logits. The weights
are stored as float16 (0.8 MB; computed in float32); the recorded accuracy is that of the
stored weights.

Training (the weights shipped were made by this command; its metadata JSON records the
command, date, seconds and test accuracy):

    python -m gan_jax.metrics.classifier train --out gan_jax/metrics/weights [--idx-dir DIR]

`--idx-dir`: the Fashion-MNIST IDX files (train/t10k images and labels, .gz), by default
Debian's /usr/share/datasets/fashion-mnist (`apt-get install dataset-fashion-mnist`); they
are the files TFDS's fashion_mnist is built from. `python -m gan_jax.metrics.classifier
evaluate` recomputes the test accuracy of the shipped (or `--weights`) file.
"""

from __future__ import annotations

import argparse
import datetime
import gzip
import hashlib
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

WEIGHTS_DIR = Path(__file__).parent / "weights"
WEIGHTS_NAME = "fashion_mnist_classifier"
DEBIAN_IDX_DIR = Path("/usr/share/datasets/fashion-mnist")
IDX_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
FEATURE_DIM = 128
NUM_CLASSES = 10


class Classifier(nn.Module):
    """[N, 28, 28, C] in [-1, 1] -> (features [N, 128], logits [N, num_classes])."""

    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x):
        for features in (32, 64):
            x = nn.relu(nn.Conv(features, (3, 3))(x))
            x = nn.max_pool(x, (2, 2), strides=(2, 2))
        hidden = nn.relu(nn.Dense(FEATURE_DIM)(x.reshape(len(x), -1)))
        return hidden, nn.Dense(self.num_classes)(hidden)


# --- data -------------------------------------------------------------------------------


def load_idx(split: str, idx_dir: Path | str = DEBIAN_IDX_DIR) -> tuple[np.ndarray, np.ndarray]:
    """(images float32 [N, 28, 28, 1] in [-1, 1] as gan_jax's image pipeline scales them, labels int32 [N])."""
    idx_dir = Path(idx_dir)
    paths = [idx_dir / name for name in IDX_FILES[split]]
    missing = [str(p) for p in paths if not p.is_file()]
    if missing:
        raise FileNotFoundError(
            f"Fashion-MNIST IDX files missing: {', '.join(missing)}. Debian's package "
            f"provides them (apt-get install dataset-fashion-mnist), or pass --idx-dir"
        )
    with gzip.open(paths[0], "rb") as handle:
        raw = handle.read()
    count, rows, cols = (int.from_bytes(raw[i : i + 4], "big") for i in (4, 8, 12))
    images = np.frombuffer(raw, np.uint8, offset=16).reshape(count, rows, cols, 1)
    with gzip.open(paths[1], "rb") as handle:
        labels = np.frombuffer(handle.read(), np.uint8, offset=8).astype(np.int32)
    if len(labels) != count:
        raise ValueError(f"{paths}: {count} images but {len(labels)} labels")
    return images.astype(np.float32) / 127.5 - 1.0, labels


# --- weights ----------------------------------------------------------------------------


def _flatten(tree: dict, prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = np.asarray(value, np.float32)
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = tree
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = jnp.asarray(value, jnp.float32)
    return tree


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def load_weights(weights: Path | str | None = None) -> tuple[dict, dict]:
    """(Flax variables, metadata) from `weights` (.npz; its .json beside it), by default the shipped ones."""
    path = Path(weights) if weights else WEIGHTS_DIR / f"{WEIGHTS_NAME}.npz"
    if not path.is_file():
        raise FileNotFoundError(
            f"classifier weights not found: {path}. Train them with "
            f"`python -m gan_jax.metrics.classifier train --out DIR`"
        )
    with np.load(path) as stored:
        flat = dict(stored)
    meta_path = path.with_suffix(".json")
    metadata = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
    expected = jax.eval_shape(Classifier().init, jax.random.key(0), jnp.zeros((1, 28, 28, 1)))["params"]
    expected = {k: tuple(v.shape) for k, v in _flatten(jax.tree.map(lambda s: np.zeros(s.shape), expected)).items()}
    found = {k: tuple(v.shape) for k, v in flat.items()}
    if found != expected:
        bad = next(k for k in sorted(set(expected) | set(found)) if expected.get(k) != found.get(k))
        raise ValueError(
            f"{path}: tensor {bad} has shape {found.get(bad, 'missing')}, expected "
            f"{expected.get(bad, 'none (unexpected tensor)')}"
        )
    return {"params": _unflatten(flat)}, {**metadata, "weights_sha256": _sha256(path), "weights": path.name}


RESIZER = "none at 28x28; other sizes: bilinear, antialiased (jax.image.resize) to 28x28"


def takes(shape: tuple[int, ...]) -> bool:
    """Whether the classifier takes images of this (H, W, C): square grey ones."""
    return len(shape) == 3 and shape[0] == shape[1] and shape[2] == 1


def to_input_size(images: jax.Array) -> jax.Array:
    """[N, S, S, 1] -> [N, 28, 28, 1]. 32x32 Fashion-MNIST (StyleGAN2 needs a power of two) is measured
    on the classifier trained at 28x28; real and generated images take the same resize."""
    if images.shape[1:3] == (28, 28):
        return images
    return jax.image.resize(images, (images.shape[0], 28, 28, images.shape[3]), "linear", antialias=True)


@dataclass
class ClassifierFeatures:
    """images [N, 28, 28, 1] (or another square grey size) in [-1, 1] -> (features [N, 128], logits [N, 10])
    as float32 NumPy."""

    variables: dict
    metadata: dict
    batch_size: int = 500
    progress: bool = True
    provenance: dict = field(init=False)

    def __post_init__(self):
        self.provenance = {
            "features": "fashion_mnist_classifier",
            "network": "gan_jax Fashion-MNIST CNN, penultimate layer (128)",
            "weights": self.metadata.get("weights"),
            "weights_sha256": self.metadata.get("weights_sha256"),
            "test_accuracy": self.metadata.get("test_accuracy"),
            "resizer": RESIZER,
        }
        self._apply = jax.jit(lambda variables, images: Classifier().apply(variables, to_input_size(images)))

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        from gan_jax.metrics.inception import extract_in_batches

        images = np.asarray(images)
        if not takes(images.shape[1:]):
            raise ValueError(
                "images: the Fashion-MNIST classifier takes square grey images [N, S, S, 1] in [-1, 1] "
                f"(28x28, or resized to it), got shape {images.shape}"
            )
        return extract_in_batches(
            lambda batch: self._apply(self.variables, batch),
            images,
            self.batch_size,
            self.progress,
            "classifier features",
        )


def fashion_mnist_classifier(
    weights: Path | str | None = None, batch_size: int = 500, progress: bool = True
) -> ClassifierFeatures:
    """The shipped Fashion-MNIST classifier (or `weights`) as a feature extractor."""
    variables, metadata = load_weights(weights)
    return ClassifierFeatures(variables, metadata, batch_size, progress)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((np.asarray(logits).argmax(axis=1) == labels).mean())


# --- training ---------------------------------------------------------------------------


def fit(
    images: np.ndarray,
    labels: np.ndarray,
    num_classes: int,
    epochs: int = 5,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    after_epoch: Any = None,
    progress: bool = False,
) -> dict:
    """A Classifier's parameters trained on `images` [N, 28, 28, C] in [-1, 1] and their int
    `labels` (Adam with cosine decay, cross-entropy); `after_epoch(epoch, params, losses)`."""
    import optax
    from tqdm.auto import tqdm

    model = Classifier(num_classes)
    params = model.init(jax.random.key(seed), jnp.zeros((1, *images.shape[1:])))["params"]
    batch_size = min(batch_size, len(images))
    steps_per_epoch = len(images) // batch_size
    optimiser = optax.adam(optax.cosine_decay_schedule(learning_rate, epochs * steps_per_epoch))
    opt_state = optimiser.init(params)

    @jax.jit
    def step(params, opt_state, batch, batch_labels):
        def loss_fn(params):
            _, logits = model.apply({"params": params}, batch)
            return optax.softmax_cross_entropy_with_integer_labels(logits, batch_labels).mean()

        loss, grads = jax.value_and_grad(loss_fn)(params)
        updates, opt_state = optimiser.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        order = rng.permutation(len(images))
        losses = []
        for b in tqdm(range(steps_per_epoch), desc=f"epoch {epoch + 1}/{epochs}", leave=False, disable=not progress):
            idx = order[b * batch_size : (b + 1) * batch_size]
            params, opt_state, loss = step(params, opt_state, images[idx], labels[idx])
            losses.append(loss)
        if after_epoch is not None:
            after_epoch(epoch, params, losses)
    return params


def train(
    idx_dir: Path,
    out: Path,
    epochs: int = 5,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    seed: int = 0,
    command: str | None = None,
) -> dict:
    """Trains on the train split (Adam, cross-entropy), writes out/NAME.npz + NAME.json; returns the metadata."""

    started = time.time()
    train_images, train_labels = load_idx("train", idx_dir)
    test_images, test_labels = load_idx("test", idx_dir)
    test_accuracy = 0.0

    def report(epoch: int, params: dict, losses: list) -> None:
        nonlocal test_accuracy
        stored = _unflatten({k: v.astype(np.float16) for k, v in _flatten(jax.device_get(params)).items()})
        extract = ClassifierFeatures({"params": stored}, {}, progress=False)  # what will be shipped
        test_accuracy = accuracy(extract(test_images)[1], test_labels)
        print(
            f"epoch {epoch + 1}: train loss {float(np.mean(jax.device_get(losses))):.4f}, "
            f"test accuracy {test_accuracy:.4f}",
            flush=True,
        )

    params = fit(train_images, train_labels, NUM_CLASSES, epochs, batch_size, learning_rate, seed, report, True)
    out.mkdir(parents=True, exist_ok=True)
    weights_path = out / f"{WEIGHTS_NAME}.npz"
    halves = {k: v.astype(np.float16) for k, v in _flatten(jax.device_get(params)).items()}
    np.savez_compressed(weights_path, **halves)  # type: ignore[arg-type]  # numpy's stubs: **kwds as allow_pickle
    metadata = {
        "dataset": "fashion_mnist",
        "train_split": f"train ({len(train_images)} examples)",
        "test_split": f"test ({len(test_images)} examples)",
        "test_accuracy": test_accuracy,
        "architecture": "conv3x3(32)-maxpool2-conv3x3(64)-maxpool2-flatten-dense(128)-dense(10)",
        "stored_as": "float16",
        "features": f"penultimate layer, {FEATURE_DIM} (after ReLU)",
        "input": "[N, 28, 28, 1] in [-1, 1]",
        "training": {
            "epochs": epochs,
            "batch_size": batch_size,
            "optimiser": "adam, cosine decay",
            "learning_rate": learning_rate,
            "seed": seed,
        },
        "command": command,
        "date": datetime.date.today().isoformat(),
        "train_seconds": round(time.time() - started, 1),
        "jax": jax.__version__,
        "weights_sha256": _sha256(weights_path),
        "idx_sha256": {name: _sha256(Path(idx_dir) / name) for files in IDX_FILES.values() for name in files},
    }
    weights_path.with_suffix(".json").write_text(json.dumps(metadata, indent=2) + "\n")
    return metadata


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m gan_jax.metrics.classifier", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train_parser = sub.add_parser("train", help="train on Fashion-MNIST's train split; write NAME.npz and NAME.json")
    train_parser.add_argument("--out", type=Path, required=True)
    train_parser.add_argument("--idx-dir", type=Path, default=DEBIAN_IDX_DIR)
    train_parser.add_argument("--epochs", type=int, default=5)
    train_parser.add_argument("--batch-size", type=int, default=128)
    train_parser.add_argument("--learning-rate", type=float, default=1e-3)
    train_parser.add_argument("--seed", type=int, default=0)
    evaluate_parser = sub.add_parser("evaluate", help="test accuracy of the shipped (or --weights) classifier")
    evaluate_parser.add_argument("--weights", type=Path)
    evaluate_parser.add_argument("--idx-dir", type=Path, default=DEBIAN_IDX_DIR)
    args = parser.parse_args(argv)
    if args.command == "train":
        command = "python -m gan_jax.metrics.classifier " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        metadata = train(args.idx_dir, args.out, args.epochs, args.batch_size, args.learning_rate, args.seed, command)
        print(json.dumps({k: metadata[k] for k in ("test_accuracy", "train_seconds", "weights_sha256")}))
    else:
        extract = fashion_mnist_classifier(args.weights)
        images, labels = load_idx("test", args.idx_dir)
        print(
            json.dumps(
                {
                    "test_accuracy": accuracy(extract(images)[1], labels),
                    "recorded": extract.metadata.get("test_accuracy"),
                }
            )
        )


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    main()
