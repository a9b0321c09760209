"""Evaluation metrics computed from generated samples (host side, NumPy).

Image metrics (pure functions of feature arrays, float64 inside; see distances.py for the
formulas and the reference implementations each one matches):

    from gan_jax import metrics
    metrics.frechet_distance(features_a, features_b)                    # -> float
    metrics.kernel_inception_distance(a, b, num_subsets=100, subset_size=1000, seed=0)  # -> (mean, std)
    metrics.inception_score(logits, splits=10)                          # -> (mean, std)
    metrics.precision_recall(real, fake, k=3)                           # -> {"precision", "recall"}
    metrics.density_coverage(real, fake, k=5)                           # -> {"density", "coverage"}

Feature networks: `metrics.inception_v3(weights_path)` (pytorch-fid's FID Inception) and
`metrics.fashion_mnist_classifier()` (a small CNN shipped with the package).
"""

from gan_jax.metrics.distances import (
    SmallSampleWarning,
    density_coverage,
    feature_statistics,
    frechet_distance,
    frechet_distance_from_statistics,
    inception_score,
    kernel_inception_distance,
    precision_recall,
    sample_size_notes,
)

__all__ = [
    "SmallSampleWarning", "density_coverage", "feature_statistics", "frechet_distance",
    "frechet_distance_from_statistics", "inception_score", "kernel_inception_distance",
    "precision_recall", "sample_size_notes",
]
