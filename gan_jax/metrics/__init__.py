"""Evaluation metrics computed from generated samples (host side, NumPy).

Image metrics (pure functions of feature arrays, float64 inside; see distances.py for the
formulas and the reference implementations each one matches):

    from gan_jax import metrics
    metrics.frechet_distance(features_a, features_b)                    # -> float
    metrics.kernel_inception_distance(a, b, num_subsets=100, subset_size=1000, seed=0)  # -> (mean, std)
    metrics.inception_score(logits, splits=10)                          # -> (mean, std)
    metrics.precision_recall(real, fake, k=3)                           # -> {"precision", "recall"}
    metrics.density_coverage(real, fake, k=5)                           # -> {"density", "coverage"}
    metrics.frechet_distance_infinity(fake, real_mu, real_sigma)        # -> Extrapolated(at_infinity, error, ...)

Resizing (`resize(images, size, mode)`: legacy_pytorch, clean, nearest, bilinear, bicubic,
lanczos, box; see resizing.py) and `quantize(images)` (to the 256 levels of a saved image).

Feature networks: `metrics.inception_v3(weights_path)` (pytorch-fid's FID Inception) and
`metrics.fashion_mnist_classifier()` (a small CNN shipped with the package).
"""

from gan_jax.metrics.distances import (
    SmallSampleWarning,
    density_coverage,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
    frechet_distance_infinity,
    inception_score,
    inception_score_infinity,
    kernel_inception_distance,
    precision_recall,
    sample_size_notes,
)
from gan_jax.metrics.resizing import quantize, resize


def inception_v3(weights_path=None, batch_size: int = 50, progress: bool = True):
    """pytorch-fid's FID Inception in Flax: images [N, H, W, 1|3] in [-1, 1] -> (pool [N, 2048],
    logits [N, 1008]). See gan_jax.metrics.inception (imported on first use: it needs JAX)."""
    from gan_jax.metrics.inception import inception_v3 as build

    return build(weights_path, batch_size=batch_size, progress=progress)


def dinov2(weights_path=None, arch: str = "vitl14", batch_size: int = 50, progress: bool = True):
    """DINOv2's ViT (the authors' hub backbone; FD_DINOv2's network) in Flax: images [N, H, W, 1|3] in
    [-1, 1] -> (class-token features [N, D], None), preprocessed as dgm-eval does. See
    gan_jax.metrics.dino (imported on first use: it needs JAX)."""
    from gan_jax.metrics.dino import dinov2 as build

    return build(weights_path, arch=arch, batch_size=batch_size, progress=progress)


def fashion_mnist_classifier(weights=None, batch_size: int = 500, progress: bool = True):
    """The shipped Fashion-MNIST classifier: images [N, 28, 28, 1] in [-1, 1] (other square grey sizes
    are resized to 28x28) -> (features [N, 128], logits [N, 10]). See gan_jax.metrics.classifier
    (imported on first use: it needs JAX)."""
    from gan_jax.metrics.classifier import fashion_mnist_classifier as build

    return build(weights, batch_size=batch_size, progress=progress)


__all__ = [
    "SmallSampleWarning",
    "density_coverage",
    "dinov2",
    "feature_statistics",
    "frechet_distance",
    "fashion_mnist_classifier",
    "frechet_distance_from_statistics",
    "inception_score",
    "inception_score_infinity",
    "frechet_distance_infinity",
    "kernel_inception_distance",
    "inception_v3",
    "precision_recall",
    "quantize",
    "resize",
    "sample_size_notes",
]
