"""Feature spaces for image metrics: a feature network and the real data's reference features.

A `FeatureSpace` pairs a feature network (images in [-1, 1] -> (features, logits)) with
a `Reference`: the features of the first N images of a split of the real data. The
reference is computed once per (images, network weights) and cached on disk under
`<cache dir>/reference/`, keyed by the sha256 of the preprocessed images and of the
weights, so it can never be stale; a file lock makes the jobs of a sweep compute it once.

Feature networks are chosen by name (`eval.features`):
  fashion_mnist_classifier  the CNN shipped in gan_jax/metrics/weights (square grey images, resized
                            to the 28x28 it was trained at)
  inception_v3              pytorch-fid's FID Inception (any size, 1 or 3 channels; needs
                            its weights file: eval.inception_weights or $GAN_JAX_INCEPTION_WEIGHTS)
  dinov2                    DINOv2's ViT (eval.dinov2_arch, default L/14), class-token features:
                            FD_DINOv2 (Stein et al. 2023); needs the authors' weights file
                            (eval.dinov2_weights or $GAN_JAX_DINOV2_WEIGHTS). No logits: no IS
  auto                      the dataset's own classifier when it has one, else inception_v3
                            when its weights file is given, else none (no image metrics)
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import numpy as np

from gan_jax import rundir
from gan_jax.errors import ConfigError
from gan_jax.metrics import resizing
from gan_jax.metrics.distances import feature_statistics, knn_radii, sample_size_notes
from gan_jax.registry import Registry

log = logging.getLogger(__name__)

KID_NUM_SUBSETS = 100
KID_SUBSET_SIZE = 1000
PRECISION_RECALL_K = 3
DENSITY_COVERAGE_K = 5
REFERENCE_CHUNK = 1000  # real images read and featurised at a time


@dataclass(frozen=True)
class FeatureNetwork:
    """`accepts(shape)`: whether it takes images of this (H, W, C); `build(eval_cfg, progress)`
    -> an extractor: images -> (features, logits), with a `provenance` dict."""

    name: str
    accepts: Callable[[tuple[int, ...]], bool]
    build: Callable[[Any, bool], Any]
    takes: str  # completes "takes ..." in messages
    domain: str | None = None  # the dataset it was trained on, if a domain classifier
    input_size: int | None = None  # the square size it sees (its own resize's target), for eval.resize


FEATURE_NETWORKS: Registry[FeatureNetwork] = Registry("feature network")


def _classifier(eval_cfg: Any, progress: bool) -> Any:
    from gan_jax.metrics.classifier import fashion_mnist_classifier

    return fashion_mnist_classifier(batch_size=eval_cfg.batch_size, progress=progress)


def _classifier_takes(shape: tuple[int, ...]) -> bool:
    from gan_jax.metrics.classifier import takes

    return takes(tuple(shape))


def _inception(eval_cfg: Any, progress: bool) -> Any:
    from gan_jax.metrics.inception import inception_v3

    return inception_v3(eval_cfg.inception_weights, batch_size=min(eval_cfg.batch_size, 100), progress=progress)


FEATURE_NETWORKS.register(
    "fashion_mnist_classifier",
    FeatureNetwork(
        "fashion_mnist_classifier",
        accepts=_classifier_takes,
        build=_classifier,
        takes="square grey images (resized to 28x28)",
        domain="fashion_mnist",
        input_size=28,
    ),
)
FEATURE_NETWORKS.register(
    "inception_v3",
    FeatureNetwork(
        "inception_v3",
        accepts=lambda shape: len(shape) == 3 and shape[-1] in (1, 3),
        build=_inception,
        takes="images with 1 or 3 channels",
        input_size=299,
    ),
)


def _dinov2(eval_cfg: Any, progress: bool) -> Any:
    from gan_jax.metrics.dino import dinov2

    weights, arch = eval_cfg.get("dinov2_weights"), eval_cfg.get("dinov2_arch", "vitl14")
    return dinov2(weights, arch=arch, batch_size=min(eval_cfg.batch_size, 50), progress=progress)


FEATURE_NETWORKS.register(
    "dinov2",
    FeatureNetwork(
        "dinov2",
        accepts=lambda shape: len(shape) == 3 and shape[-1] in (1, 3),
        build=_dinov2,
        takes="images with 1 or 3 channels",
        input_size=224,
    ),
)


def inception_weights_given(eval_cfg: Any) -> bool:
    from gan_jax.metrics.inception import WEIGHTS_ENV

    return bool(eval_cfg.inception_weights or os.environ.get(WEIGHTS_ENV))


def choose_network(requested: str, dataset_name: str, shape: tuple[int, ...], eval_cfg: Any) -> str | None:
    """The feature network's name for `eval.features=requested` on this data; None when `auto`
    finds none. A named network that does not take the data's images is a ConfigError."""
    if requested != "auto":
        network = FEATURE_NETWORKS.get(requested)
        if not network.accepts(shape):
            raise ConfigError(
                f"eval.features={requested}: takes {network.takes}, and {dataset_name} gives "
                f"{'x'.join(map(str, shape))}; valid values for it are {', '.join(networks_for(shape))}"
            )
        return requested
    for network in FEATURE_NETWORKS:
        if network.domain == dataset_name and network.accepts(shape):
            return network.name
    if inception_weights_given(eval_cfg):
        return "inception_v3"
    return None


def networks_for(shape: tuple[int, ...]) -> list[str]:
    return ["auto", *(n.name for n in FEATURE_NETWORKS if n.accepts(shape))]


@dataclass(frozen=True)
class Reference:
    """The real side of every image metric: N real images' features and their statistics."""

    features: np.ndarray  # [N, D] float32
    mu: np.ndarray  # [D] float64
    sigma: np.ndarray  # [D, D] float64
    split: str
    images_sha256: str  # of the float32 images the features came from
    _radii: dict[int, np.ndarray] = field(default_factory=dict, repr=False, compare=False)

    @property
    def num(self) -> int:
        return len(self.features)

    def knn_radii(self, k: int) -> np.ndarray:
        """The real k-NN balls of precision/recall and density/coverage, computed once per k."""
        if k not in self._radii:
            self._radii[k] = knn_radii(self.features, k)
        return self._radii[k]


@dataclass
class FeatureSpace:
    extractor: Any  # images -> (features, logits), with .provenance
    reference: Reference
    dataset_name: str
    reference_labels: np.ndarray | None = None  # the reference images' classes, when the data has labels
    classifies_dataset: bool = False  # the network is a classifier of this dataset: its logits are its classes
    reference_data: dict[str, Any] | None = None  # the reference dataset's own provenance (a folder's resize ...)
    reference_source: Any = None  # the opened reference split, for metrics that need its images (cas)

    def extract(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.extractor(images)

    def provenance(self, num_fake: int) -> dict[str, Any]:
        """How the numbers were obtained: network, weights, resizer, N real / N fake, split, KID
        subsets, and what is wrong with the sample sizes (notes), for summary.json and eval.json."""
        dim = self.reference.features.shape[1]
        return {
            **self.extractor.provenance,
            "feature_dim": dim,
            "reference": {
                "dataset": self.dataset_name,
                "split": self.reference.split,
                "num_real": self.reference.num,
                "images_sha256": self.reference.images_sha256[:16],
                **({"data": self.reference_data} if self.reference_data is not None else {}),
            },
            "num_fake": num_fake,
            "kid": {"num_subsets": KID_NUM_SUBSETS, "subset_size": KID_SUBSET_SIZE},
            "precision_recall_k": PRECISION_RECALL_K,
            "density_coverage_k": DENSITY_COVERAGE_K,
            "notes": sample_size_notes(self.reference.num, num_fake, dim, KID_SUBSET_SIZE),
        }


def reference_dataset(dataset_cfg: Any, split: str) -> Any:
    """`split` of the dataset `dataset_cfg` configures (an ImageDataset)."""
    from omegaconf import OmegaConf

    from gan_jax import data

    try:
        return data.build(OmegaConf.merge(dataset_cfg, {"split": split}))
    except ValueError as error:  # TFDS's "Unknown split"; the dataset's own DataError says it itself
        if isinstance(error, ConfigError) or "split" not in str(error).lower():
            raise
        raise ConfigError(f"eval.reference_split={split}: {error}") from None


def reference_images(dataset_cfg: Any, split: str, count: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(images, labels) of the first `count` examples of `split` (all of it when None or smaller),
    preprocessed as training sees them; labels None when the dataset has none."""
    return images_of(reference_dataset(dataset_cfg, split), count)


def images_of(real: Any, count: int | None) -> tuple[np.ndarray, np.ndarray | None]:
    """(images, labels) of the first `count` examples of an opened ImageDataset (None: all)."""
    count = real.num_examples if count is None else min(count, real.num_examples)
    chunks = [
        real.examples(start, min(REFERENCE_CHUNK, count - start), labels=real.num_classes > 0)
        for start in range(0, count, REFERENCE_CHUNK)
    ]
    images = np.concatenate([chunk[0] for chunk in chunks])
    labels = None if real.num_classes == 0 else np.concatenate([cast(np.ndarray, chunk[1]) for chunk in chunks])
    return images, labels


def _file_safe(text: str) -> str:
    return re.sub(r"[^\w.-]+", "_", text)


def _sha256(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def cache_dir(eval_cfg: Any) -> Path:
    from gan_jax.metrics.inception import cache_dir as default_cache_dir

    return Path(eval_cfg.cache_dir).expanduser() if eval_cfg.cache_dir else default_cache_dir()


def reference(extractor: Any, images: np.ndarray, split: str, directory: Path) -> Reference:
    """The reference features of `images`, read from the cache or computed and cached (whole
    files only: temp + rename, under a lock so concurrent jobs compute them once)."""
    images_sha = _sha256(images)
    made = extractor.provenance
    weights_sha = str(made.get("weights_sha256") or "none")
    # Everything the features depend on: network and weights, resize and quantisation, split, images, N.
    handling = f"{made.get('resize', 'network')}-q{int(bool(made.get('quantize')))}"
    name = f"{made['features']}-{weights_sha[:16]}-{handling}-{_file_safe(split)}-{images_sha[:16]}-n{len(images)}.npz"
    path = directory / "reference" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    with rundir.file_lock(path.with_suffix(".lock")):
        if path.is_file():
            try:
                with np.load(path) as stored:
                    return Reference(stored["features"], stored["mu"], stored["sigma"], split, images_sha)
            except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile) as error:  # a damaged file
                log.warning("%s cannot be read (%s); computing the reference features again", path, error)
        log.info("computing reference features of %d real images (cached in %s)", len(images), path)
        features, _ = extractor(images)
        mu, sigma = feature_statistics(features)
        rundir.write_atomic(path, lambda handle: np.savez(handle, features=features, mu=mu, sigma=sigma))
    return Reference(features, mu, sigma, split, images_sha)


@dataclass
class ProtocolExtractor:
    """A feature network behind the protocol's handling of images (eval.quantize, eval.resize):
    images rounded to uint8 levels, then resized on the host to the network's input size by
    gan_jax.metrics.resize (the network's own resize is then the identity), in chunks."""

    network: Any  # images -> (features, logits), with .provenance
    resize: str | None  # None: the network's own
    quantize: bool
    input_size: int | None
    protocol: str | None = None
    chunk: int = 500  # images resized at a time: 10,000 at 299x299x3 would be 10 GB
    provenance: dict = field(init=False)

    def __post_init__(self):
        if self.resize is not None and self.input_size is None:
            raise ConfigError(f"eval.resize={self.resize}: the feature network has no fixed input size to resize to")
        handling = {"protocol": self.protocol, "quantize": self.quantize, "resize": self.resize or "network"}
        if self.resize is not None:
            handling["resizer"] = f"{resizing.DESCRIPTIONS[self.resize]}, to {self.input_size}x{self.input_size}"
        self.provenance = {**self.network.provenance, **handling}

    def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if self.resize is None and not self.quantize:
            return self.network(images)
        outputs = [self.network(self._prepared(images[i : i + self.chunk])) for i in range(0, len(images), self.chunk)]
        features, logits = (_joined(parts) for parts in zip(*outputs, strict=True))
        return features, logits

    def _prepared(self, images: np.ndarray) -> np.ndarray:
        if self.quantize:
            images = resizing.quantize(images)
        if self.resize is not None and self.input_size is not None:
            images = resizing.resize(images, self.input_size, self.resize)
        return images


def _joined(parts: tuple[Any, ...]) -> Any:
    return None if parts[0] is None else np.concatenate(parts)


def build(dataset: Any, dataset_cfg: Any, eval_cfg: Any, network: str, progress: bool = False) -> FeatureSpace:
    """`network`'s feature space on this dataset, with the reference of eval.reference_split
    (`choose_network` picks the network from eval.features), behind eval.quantize and eval.resize."""
    chosen = FEATURE_NETWORKS.get(network)
    extractor = ProtocolExtractor(
        chosen.build(eval_cfg, progress),
        eval_cfg.get("resize"),
        eval_cfg.get("quantize", False) is not False,  # null: on; a config saved before the key: off, as then
        chosen.input_size,
        eval_cfg.get("protocol"),
    )
    real = reference_dataset(dataset_cfg, eval_cfg.reference_split)
    images, labels = images_of(real, eval_cfg.reference_num_samples)
    return FeatureSpace(
        extractor,
        reference(extractor, images, eval_cfg.reference_split, cache_dir(eval_cfg)),
        dataset.name,
        labels,
        classifies_dataset=chosen.domain == dataset.name,
        reference_data=getattr(real, "provenance", None),
        reference_source=real,
    )
