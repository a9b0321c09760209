"""Image metrics, registered by name: FID, KID, precision/recall, density/coverage, Inception score,
and FID_inf / IS_inf (Chong & Forsyth 2020: the values extrapolated to infinitely many samples).

Each is computed in the run's feature space (gan_jax/metrics/feature_space.py: the
dataset's classifier or the FID Inception), the generated samples' features against the
cached reference features of the real data. The samples' features are extracted once per
evaluation, whatever the number of metrics. With the classifier, `inception_score` is the
same formula on the classifier's logits (TF-GAN's "classifier score"); summary.json's
`eval_provenance` says which network gave every number.
"""

from __future__ import annotations

import warnings

from gan_jax import evaluators
from gan_jax.evaluators import EvalInputs, Measured
from gan_jax.metrics import feature_space
from gan_jax.metrics.distances import (
    SmallSampleWarning,
    density_coverage,
    feature_statistics,
    frechet_distance_from_statistics,
    frechet_distance_infinity,
    inception_score,
    inception_score_infinity,
    kernel_inception_distance,
    precision_recall,
)

INCEPTION_SCORE_SPLITS = 10


def is_image_data(dataset) -> bool:
    return len(dataset.shape) == 3


def quietly(compute):
    """Sample-size findings go to the provenance's notes once, not to a warning per evaluation."""

    def measured(inputs: EvalInputs) -> Measured:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SmallSampleWarning)
            return compute(inputs)

    return measured


def _fid(inputs: EvalInputs) -> Measured:
    fake, _ = inputs.fake_features()
    real = inputs.features.reference
    mu, sigma = feature_statistics(fake)
    return Measured({"fid": frechet_distance_from_statistics(mu, sigma, real.mu, real.sigma)})


def _kid(inputs: EvalInputs) -> Measured:
    fake, _ = inputs.fake_features()
    mean, std = kernel_inception_distance(
        inputs.features.reference.features,
        fake,
        num_subsets=feature_space.KID_NUM_SUBSETS,
        subset_size=feature_space.KID_SUBSET_SIZE,
    )
    return Measured({"kid": mean, "kid_std": std})


def _precision_recall(inputs: EvalInputs) -> Measured:
    fake, _ = inputs.fake_features()
    real, k = inputs.features.reference, feature_space.PRECISION_RECALL_K
    return Measured({**precision_recall(real.features, fake, k=k, real_radii=real.knn_radii(k))})


def _density_coverage(inputs: EvalInputs) -> Measured:
    fake, _ = inputs.fake_features()
    real, k = inputs.features.reference, feature_space.DENSITY_COVERAGE_K
    return Measured({**density_coverage(real.features, fake, k=k, real_radii=real.knn_radii(k))})


def _inception_score(inputs: EvalInputs) -> Measured:
    _, logits = inputs.fake_features()
    if logits is None:  # a feature network without classes (DINOv2)
        return Measured({"inception_score": None, "inception_score_std": None})
    mean, std = inception_score(logits, splits=min(INCEPTION_SCORE_SPLITS, len(logits)))
    return Measured({"inception_score": mean, "inception_score_std": std})


def _fid_inf(inputs: EvalInputs) -> Measured:
    fake, logits = inputs.fake_features()
    real = inputs.features.reference
    fid = frechet_distance_infinity(fake, real.mu, real.sigma)
    scalars: dict[str, float | None] = {"fid_inf": fid.at_infinity, "fid_inf_error": fid.error}
    if logits is not None:
        scalars["inception_score_inf"] = inception_score_infinity(logits).at_infinity
    return Measured(scalars)


for _name, _compute, _directions in (
    ("fid", _fid, {"fid": "min"}),
    ("kid", _kid, {"kid": "min", "kid_std": "none"}),
    ("precision_recall", _precision_recall, {"precision": "max", "recall": "max"}),
    ("density_coverage", _density_coverage, {"density": "none", "coverage": "max"}),
    ("inception_score", _inception_score, {"inception_score": "max", "inception_score_std": "none"}),
    ("fid_inf", _fid_inf, {"fid_inf": "min", "fid_inf_error": "none", "inception_score_inf": "max"}),
):
    evaluators.register(
        evaluators.Metric(
            _name,
            applies=is_image_data,
            compute=quietly(_compute),
            directions=_directions,
            needs_features=True,
            by_default=_name != "fid_inf",  # 15 FIDs an evaluation: only when eval.metrics names it
        )
    )
