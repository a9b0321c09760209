"""Sample-quality metrics on feature arrays: pure NumPy/SciPy functions, float64 inside.

| metric | formula | reference implementation it matches |
|---|---|---|
| `frechet_distance` | \\|mu_a - mu_b\\|^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b)) | pytorch-fid `calculate_frechet_distance` |
| `kernel_inception_distance` | unbiased MMD^2, k(x, y) = (x.y / d + 1)^3, mean/std over random subsets | torch-fidelity `kid_features_to_metric` |
| `inception_score` | exp E_x KL(p(y\\|x) \\|\\| p(y)) per split, mean/std over splits | OpenAI's / torch-fidelity's `isc_features_to_metric` |
| `precision_recall` | fraction of fake (real) inside the union of real (fake) k-NN balls | Kynkaanniemi et al. 2019; the `prdc` package |
| `density_coverage` | density: mean count of real k-NN balls holding a fake, / k; coverage: fraction of real balls holding a fake | Naeem et al. 2020; the `prdc` package |

Inputs are [N, D] arrays (any float dtype; computed in float64). Scores depend on N
(FID is biased upwards for small N; PR and DC need >= 10k samples to be stable): when N
is below KID's subset size or below the feature dimension a `SmallSampleWarning` is
issued; `sample_size_notes` returns the same findings as strings for a provenance record.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
from scipy import linalg

# pytorch-fid's tolerance for the imaginary part of sqrtm's diagonal.
IMAGINARY_ATOL = 1e-3
# pytorch-fid's offset added to the covariances' diagonal when sqrtm is not finite.
SINGULAR_EPS = 1e-6
# Rows of a pairwise-distance block (block: ROWS x N float64): bounds memory at large N.
DISTANCE_BLOCK_ROWS = 1024


class SmallSampleWarning(UserWarning):
    """Fewer samples than a metric needs to be reliable (the number is still computed)."""


def sample_size_notes(num_a: int, num_b: int, dim: int, kid_subset_size: int | None = None) -> list[str]:
    """What is wrong with these sample counts for FID (N < D) and KID (N < subset size); [] when nothing."""
    notes = []
    for name, n in (("a", num_a), ("b", num_b)):
        if n <= dim:
            notes.append(
                f"N_{name}={n} <= feature dimension {dim}: the covariance is singular and FID "
                f"is dominated by its bias; use N >> {dim}"
            )
        if kid_subset_size is not None and n < kid_subset_size:
            notes.append(
                f"N_{name}={n} < KID subset size {kid_subset_size}: subsets shrink to {min(num_a, num_b)} samples"
            )
    return notes


def _warn(notes: list[str]) -> None:
    for note in notes:
        warnings.warn(note, SmallSampleWarning, stacklevel=3)


def _features(x, name: str) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"{name}: expected a [N, D] array of features, got shape {x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"{name}: {int((~np.isfinite(x)).any(axis=1).sum())} of {len(x)} rows hold NaN or inf")
    return x


def _same_dim(a: np.ndarray, b: np.ndarray) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"feature dimensions differ: {a.shape[1]} vs {b.shape[1]}")


def feature_statistics(features) -> tuple[np.ndarray, np.ndarray]:
    """(mean [D], covariance [D, D]) in float64, as pytorch-fid (np.cov, rowvar=False): cacheable."""
    x = _features(features, "features")
    return x.mean(axis=0), np.atleast_2d(np.cov(x, rowvar=False))


def frechet_distance_from_statistics(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """Frechet distance between N(mu_a, sigma_a) and N(mu_b, sigma_b), as pytorch-fid computes it."""
    mu_a, mu_b = np.atleast_1d(mu_a).astype(np.float64), np.atleast_1d(mu_b).astype(np.float64)
    sigma_a, sigma_b = np.atleast_2d(sigma_a).astype(np.float64), np.atleast_2d(sigma_b).astype(np.float64)
    if mu_a.shape != mu_b.shape or sigma_a.shape != sigma_b.shape:
        raise ValueError(
            f"statistics of different shapes: mean {mu_a.shape} vs {mu_b.shape}, "
            f"covariance {sigma_a.shape} vs {sigma_b.shape}"
        )
    diff = mu_a - mu_b
    with warnings.catch_warnings():  # singular products are common (dead ReLU features): checked below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(sigma_a @ sigma_b)
    if not np.isfinite(covmean).all():
        warnings.warn(
            f"Frechet distance: singular product; adding {SINGULAR_EPS} to the covariances' diagonal",
            SmallSampleWarning,
            stacklevel=2,
        )
        offset = np.eye(len(sigma_a)) * SINGULAR_EPS
        covmean = linalg.sqrtm((sigma_a + offset) @ (sigma_b + offset))
    if np.iscomplexobj(covmean):  # rounding can leave a slight imaginary component
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=IMAGINARY_ATOL):
            raise ValueError(
                f"Frechet distance: sqrtm has an imaginary component of {np.max(np.abs(covmean.imag)):.3g}"
            )
        covmean = covmean.real
    return float(diff @ diff + np.trace(sigma_a) + np.trace(sigma_b) - 2 * np.trace(covmean))


def frechet_distance(features_a, features_b) -> float:
    """FID between two feature sets [N_a, D], [N_b, D] (float64 statistics and matrix square root)."""
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    _same_dim(a, b)
    _warn(sample_size_notes(len(a), len(b), a.shape[1]))
    return frechet_distance_from_statistics(*feature_statistics(a), *feature_statistics(b))


def _polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return (x @ y.T / x.shape[1] + 1.0) ** 3


def _unbiased_mmd2(k_xx: np.ndarray, k_xy: np.ndarray, k_yy: np.ndarray) -> float:
    m = len(k_xx)
    off_diagonal = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
    return float(off_diagonal - 2 * k_xy.sum() / (m * m))


def kernel_inception_distance(
    features_a, features_b, num_subsets: int = 100, subset_size: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """KID: (mean, std) of the unbiased MMD^2 with kernel (x.y/d + 1)^3 over `num_subsets` random subsets.

    Subsets are drawn as torch-fidelity draws them (np.random.RandomState(seed).choice without
    replacement, a then b, per subset), so with the same seed the numbers are the same
    (torch-fidelity's default seed is 2020). With fewer samples than `subset_size`, the
    subsets shrink to the smaller N and a SmallSampleWarning says so.
    """
    a, b = _features(features_a, "features_a"), _features(features_b, "features_b")
    _same_dim(a, b)
    notes = [n for n in sample_size_notes(len(a), len(b), a.shape[1], subset_size) if "KID" in n]
    _warn(notes)
    size = min(subset_size, len(a), len(b))
    if size < 2:
        raise ValueError(f"KID needs at least 2 samples on each side, got {len(a)} and {len(b)}")
    rng = np.random.RandomState(seed)
    mmds = np.empty(num_subsets)
    for i in range(num_subsets):
        x = a[rng.choice(len(a), size, replace=False)]
        y = b[rng.choice(len(b), size, replace=False)]
        mmds[i] = _unbiased_mmd2(_polynomial_kernel(x, x), _polynomial_kernel(x, y), _polynomial_kernel(y, y))
    return float(mmds.mean()), float(mmds.std())


@dataclass(frozen=True)
class Extrapolated:
    """A metric at several sample counts N, fitted as value(N) = at_infinity + slope / N
    (least squares in 1/N; Chong & Forsyth 2020): `at_infinity` is the bias-free value,
    `error` the fit's standard error of it."""

    at_infinity: float
    slope: float
    error: float
    sizes: tuple[int, ...]
    values: tuple[float, ...]


def extrapolate_in_one_over_n(sizes: Sequence[int] | np.ndarray, values: Sequence[float]) -> Extrapolated:
    x, y = 1.0 / np.asarray(sizes, np.float64), np.asarray(values, np.float64)
    design = np.stack([np.ones_like(x), x], axis=1)
    coefficients, residuals, _, _ = np.linalg.lstsq(design, y, rcond=None)
    dof = max(len(x) - 2, 1)
    variance = (float(residuals[0]) if len(residuals) else float(np.sum((design @ coefficients - y) ** 2))) / dof
    error = float(np.sqrt(variance * np.linalg.inv(design.T @ design)[0, 0]))
    return Extrapolated(
        float(coefficients[0]), float(coefficients[1]), error, tuple(map(int, sizes)), tuple(map(float, y))
    )


def infinity_sizes(count: int, num_points: int = 15, smallest: int = 5000) -> np.ndarray:
    """Chong & Forsyth's sample counts: `num_points` from `smallest` (at most a fifth of
    `count` here, for small evaluations) to `count`."""
    low = min(smallest, max(count // 5, 2))
    return np.unique(np.linspace(low, count, num_points).astype(int))


def frechet_distance_infinity(fake_features, real_mu, real_sigma, num_points: int = 15, seed: int = 0) -> Extrapolated:
    """FID_inf (Chong & Forsyth 2020): FID of random subsets of the generated features (of
    infinity_sizes' counts, reshuffled for each) against the real statistics, extrapolated to
    N = infinity. Their code: mchong6/FID_IS_infinity, `calculate_FID_infinity`."""
    x = _features(fake_features, "fake_features")
    rng = np.random.default_rng(seed)
    sizes = infinity_sizes(len(x), num_points)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SmallSampleWarning)
        for size in sizes:
            subset = x[rng.permutation(len(x))[:size]]
            values.append(frechet_distance_from_statistics(*feature_statistics(subset), real_mu, real_sigma))
    return extrapolate_in_one_over_n(sizes, values)


def inception_score_infinity(logits, num_points: int = 15, seed: int = 0) -> Extrapolated:
    """IS_inf (Chong & Forsyth 2020): the Inception score of random subsets (one split each),
    extrapolated to N = infinity."""
    x = _features(logits, "logits")
    rng = np.random.default_rng(seed)
    sizes = infinity_sizes(len(x), num_points)
    values = [inception_score(x[rng.permutation(len(x))[:size]], splits=1)[0] for size in sizes]
    return extrapolate_in_one_over_n(sizes, values)


def inception_score(logits, splits: int = 10, *, shuffle_seed: int | None = None) -> tuple[float, float]:
    """IS: (mean, std) over `splits` consecutive splits of exp(mean_x KL(p(y|x) || p(y))).

    `logits` [N, C] are pre-softmax class scores (for the FID Inception: pool features
    times the final layer's weights, without its bias, as the original IS code and
    torch-fidelity's `logits_unbiased`). With `shuffle_seed`, rows are permuted first as
    torch-fidelity does (its default: 2020); without, they are split in order, as OpenAI's code.
    """
    x = _features(logits, "logits")
    if splits < 1 or splits > len(x):
        raise ValueError(f"inception_score: splits={splits} must be between 1 and N={len(x)}")
    if shuffle_seed is not None:
        x = x[np.random.RandomState(shuffle_seed).permutation(len(x))]
    log_p = x - x.max(axis=1, keepdims=True)
    log_p = log_p - np.log(np.exp(log_p).sum(axis=1, keepdims=True))
    p = np.exp(log_p)
    n = len(x)
    scores = []
    for i in range(splits):
        part_p, part_log_p = (
            p[i * n // splits : (i + 1) * n // splits],
            log_p[i * n // splits : (i + 1) * n // splits],
        )
        log_marginal = np.log(part_p.mean(axis=0, keepdims=True))
        scores.append(np.exp((part_p * (part_log_p - log_marginal)).sum(axis=1).mean()))
    return float(np.mean(scores)), float(np.std(scores))


def _distance_blocks(x: np.ndarray, y: np.ndarray) -> Iterator[tuple[slice, np.ndarray]]:
    """Euclidean distances between x's rows and y's, DISTANCE_BLOCK_ROWS rows of x at a time."""
    y_sq = np.einsum("ij,ij->i", y, y)
    for start in range(0, len(x), DISTANCE_BLOCK_ROWS):
        rows = slice(start, start + DISTANCE_BLOCK_ROWS)
        block = x[rows]
        squared = np.einsum("ij,ij->i", block, block)[:, None] - 2 * block @ y.T + y_sq[None, :]
        yield rows, np.sqrt(np.maximum(squared, 0.0))


def _knn_radii(x: np.ndarray, k: int) -> np.ndarray:
    """Distance from each row to its k-th nearest other row (the row itself counts as the 0th)."""
    if k >= len(x):
        raise ValueError(f"k={k} nearest neighbours need more than {k} samples, got {len(x)}")
    radii = np.empty(len(x))
    for rows, distances in _distance_blocks(x, x):
        radii[rows] = np.partition(distances, k, axis=1)[:, k]
    return radii


def _prdc_inputs(real_features, fake_features, k: int):
    real, fake = _features(real_features, "real_features"), _features(fake_features, "fake_features")
    _same_dim(real, fake)
    if k < 1:
        raise ValueError(f"k={k}: must be at least 1")
    return real, fake


def knn_radii(features, k: int) -> np.ndarray:
    """Each row's distance to its k-th nearest other row: the real side's balls for
    precision/recall and density/coverage, computable once for a fixed reference."""
    return _knn_radii(_features(features, "features"), k)


def precision_recall(real_features, fake_features, k: int = 3, *, real_radii=None) -> dict[str, float]:
    """Improved precision and recall (Kynkaanniemi et al. 2019) with k-NN balls, as the prdc package.

    precision: fraction of fake samples inside some real sample's k-NN ball (quality);
    recall: fraction of real samples inside some fake sample's k-NN ball (coverage of the data).
    `real_radii`: `knn_radii(real_features, k)`, when already known.
    """
    real, fake = _prdc_inputs(real_features, fake_features, k)
    real_radii = _knn_radii(real, k) if real_radii is None else np.asarray(real_radii, np.float64)
    fake_radii = _knn_radii(fake, k)
    in_real_ball = np.zeros(len(fake), dtype=bool)
    in_fake_ball = np.zeros(len(real), dtype=bool)
    for rows, distances in _distance_blocks(real, fake):  # [a block of reals, all fakes]
        in_real_ball |= (distances < real_radii[rows, None]).any(axis=0)
        in_fake_ball[rows] = (distances < fake_radii[None, :]).any(axis=1)
    return {"precision": float(in_real_ball.mean()), "recall": float(in_fake_ball.mean())}


def density_coverage(real_features, fake_features, k: int = 5, *, real_radii=None) -> dict[str, float]:
    """Density and coverage (Naeem et al. 2020), as the prdc package.

    density: (1/k) x mean over fakes of how many real k-NN balls hold it (1 when the fakes
    are distributed like the reals); coverage: fraction of real balls whose centre's
    nearest fake lies inside them. `real_radii`: `knn_radii(real_features, k)`, when already known.
    """
    real, fake = _prdc_inputs(real_features, fake_features, k)
    real_radii = _knn_radii(real, k) if real_radii is None else np.asarray(real_radii, np.float64)
    counts = np.zeros(len(fake))
    covered = np.zeros(len(real), dtype=bool)
    for rows, distances in _distance_blocks(real, fake):
        inside = distances < real_radii[rows, None]
        counts += inside.sum(axis=0)
        covered[rows] = distances.min(axis=1) < real_radii[rows]
    return {"density": float(counts.mean() / k), "coverage": float(covered.mean())}
