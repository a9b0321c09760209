"""Image metrics against the packages people use: fixtures computed once by
tests/data/make_metric_fixtures.py with pytorch-fid, torch-fidelity and prdc (torch is not
needed here)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from gan_jax import metrics

DATA = Path(__file__).parent / "data"
RTOL = 1e-6


@pytest.fixture(scope="module")
def features():
    with np.load(DATA / "metric_features.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def references():
    return json.loads((DATA / "metric_references.json").read_text())


def test_frechet_distance_matches_pytorch_fid(features, references):
    fid = metrics.frechet_distance(features["fid_a"], features["fid_b"])
    assert fid == pytest.approx(references["frechet_distance"], rel=RTOL)
    assert metrics.frechet_distance(features["fid_a"], features["fid_a"]) == pytest.approx(0.0, abs=1e-6)


def test_frechet_distance_from_cached_statistics(features):
    stats_a, stats_b = (
        metrics.feature_statistics(features["fid_a"]),
        metrics.feature_statistics(features["fid_b"]),
    )
    assert metrics.frechet_distance_from_statistics(*stats_a, *stats_b) == metrics.frechet_distance(
        features["fid_a"], features["fid_b"]
    )


def test_kid_matches_torch_fidelity(features, references):
    ref = references["kid"]
    mean, std = metrics.kernel_inception_distance(
        features["kid_a"],
        features["kid_b"],
        num_subsets=ref["num_subsets"],
        subset_size=ref["subset_size"],
        seed=ref["seed"],
    )
    assert mean == pytest.approx(ref["mean"], rel=RTOL)
    assert std == pytest.approx(ref["std"], rel=RTOL)


def test_inception_score_matches_torch_fidelity(features, references):
    ref = references["inception_score"]
    ordered = metrics.inception_score(features["is_logits"], splits=ref["splits"])
    shuffled = metrics.inception_score(features["is_logits"], splits=ref["splits"], shuffle_seed=ref["shuffle_seed"])
    np.testing.assert_allclose(ordered, ref["ordered"], rtol=RTOL)
    np.testing.assert_allclose(shuffled, ref["shuffled"], rtol=RTOL)


def test_inception_score_bounds():
    confident = np.eye(10)[np.arange(1000) % 10] * 50.0  # every class equally often, each sure
    assert metrics.inception_score(confident, splits=10)[0] == pytest.approx(10.0, rel=1e-6)
    assert metrics.inception_score(np.zeros((100, 10)), splits=2)[0] == pytest.approx(1.0)


@pytest.mark.parametrize("k", [3, 5])
def test_prdc_matches_prdc_package(features, references, k):
    ref = references["prdc"][str(k)]
    pr = metrics.precision_recall(features["prdc_real"], features["prdc_fake"], k=k)
    dc = metrics.density_coverage(features["prdc_real"], features["prdc_fake"], k=k)
    for name, value in {**pr, **dc}.items():
        assert value == pytest.approx(ref[name], rel=RTOL), name
    # the real side's balls computed once (a cached reference) give the same numbers
    from gan_jax.metrics.distances import knn_radii

    radii = knn_radii(features["prdc_real"], k)
    assert metrics.precision_recall(features["prdc_real"], features["prdc_fake"], k=k, real_radii=radii) == pr
    assert metrics.density_coverage(features["prdc_real"], features["prdc_fake"], k=k, real_radii=radii) == dc


def test_prdc_blocks_do_not_change_the_result(features, monkeypatch):
    from gan_jax.metrics import distances

    whole = metrics.precision_recall(features["prdc_real"], features["prdc_fake"]) | metrics.density_coverage(
        features["prdc_real"], features["prdc_fake"]
    )
    monkeypatch.setattr(distances, "DISTANCE_BLOCK_ROWS", 7)
    blocked = metrics.precision_recall(features["prdc_real"], features["prdc_fake"]) | metrics.density_coverage(
        features["prdc_real"], features["prdc_fake"]
    )
    assert blocked == whole


def test_small_samples_warn_and_say_so():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(50, 64)), rng.normal(size=(60, 64))
    with pytest.warns(metrics.SmallSampleWarning, match="feature dimension 64"):
        metrics.frechet_distance(a, b)
    with pytest.warns(metrics.SmallSampleWarning, match="KID subset size 1000"):
        mean, _ = metrics.kernel_inception_distance(a, b, num_subsets=3)
    assert np.isfinite(mean)
    notes = metrics.sample_size_notes(50, 60, 64, kid_subset_size=1000)
    assert len(notes) == 4 and all("N_" in n for n in notes)
    assert metrics.sample_size_notes(5000, 5000, 64, kid_subset_size=1000) == []
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        metrics.kernel_inception_distance(
            rng.normal(size=(300, 8)), rng.normal(size=(300, 8)), num_subsets=2, subset_size=100
        )


def test_bad_inputs_are_named():
    good = np.zeros((10, 4))
    with pytest.raises(ValueError, match="feature dimensions differ: 4 vs 5"):
        metrics.frechet_distance(good, np.zeros((10, 5)))
    bad = good.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="fake_features: 1 of 10 rows hold NaN"):
        metrics.precision_recall(good, bad)
    with pytest.raises(ValueError, match=r"\[N, D\]"):
        metrics.inception_score(np.zeros(10))


def test_fid_infinity_recovers_a_known_fid_from_biased_finite_estimates():
    """Generated features N(mu, s^2 I) against real statistics N(0, I) (exact): the true FID is
    |mu|^2 + D (1 - s)^2. Each finite-N FID is biased upwards by about c / N; the intercept of
    the fit in 1/N recovers the true value within the fit's error and lies below FID at N."""
    dim, count, s = 64, 2000, 0.8
    rng = np.random.default_rng(0)
    mu = np.full(dim, 0.1)
    fake = mu + s * rng.standard_normal((count, dim))
    true_fid = float(mu @ mu + dim * (1 - s) ** 2)
    finite = metrics.frechet_distance_from_statistics(*metrics.feature_statistics(fake), np.zeros(dim), np.eye(dim))
    extrapolated = metrics.frechet_distance_infinity(fake, np.zeros(dim), np.eye(dim))
    assert len(extrapolated.sizes) == 15 and extrapolated.sizes[-1] == count and extrapolated.sizes[0] == count // 5
    assert finite - true_fid > 3 * extrapolated.error  # the bias the extrapolation removes is large here
    assert abs(extrapolated.at_infinity - true_fid) < 3 * extrapolated.error + 0.01 * true_fid
    assert extrapolated.at_infinity < finite and extrapolated.slope > 0


def test_inception_score_infinity_extrapolates_the_subsets_scores():
    logits = np.random.default_rng(1).standard_normal((2000, 10)) * 3
    extrapolated = metrics.inception_score_infinity(logits)
    assert extrapolated.values[-1] == pytest.approx(metrics.inception_score(logits, splits=1)[0])
    assert extrapolated.at_infinity > extrapolated.values[0]  # IS grows with N: its bias is downwards
