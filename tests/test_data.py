"""Toy distributions: samples have the moments and modes the protocols specify."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from gan_jax.data import toy
from gan_jax.step import sample_batch


def _draw(dataset, n=20000, seed=0):
    return np.asarray(sample_batch(dataset.sample_one, jax.random.PRNGKey(seed), 0, n))


def test_gaussian_1d_moments():
    x = _draw(toy.gaussian_1d(-3.0, 2.0))
    assert x.shape == (20000, 1)
    assert x.mean() == pytest.approx(-3.0, abs=0.05)
    assert x.std() == pytest.approx(2.0, rel=0.02)


def test_ring_modes_and_spread():
    ring = toy.ring_2d(8, 1.0, 0.01)
    x = _draw(ring)
    assert np.allclose(np.linalg.norm(ring.modes, axis=1), 1.0)
    nearest = np.linalg.norm(x[:, None] - ring.modes[None], axis=-1).min(1)
    assert np.all(nearest < 6 * 0.01)
    counts = np.bincount(np.linalg.norm(x[:, None] - ring.modes[None], axis=-1).argmin(1), minlength=8)
    assert counts.min() > 0.8 * 20000 / 8


def test_grid_modes_are_the_pacgan_grid():
    grid = toy.grid_2d(5, 2.0, 0.05)
    assert sorted(set(grid.modes[:, 0])) == [-4.0, -2.0, 0.0, 2.0, 4.0]
    assert grid.modes.shape == (25, 2)


@pytest.mark.parametrize("dataset", [toy.gaussian_1d(4.0, 0.5), toy.ring_2d(8, 1.0, 0.01), toy.grid_2d(5, 2.0, 0.05)])
def test_standardisation_constants_are_the_exact_moments(dataset):
    x = _draw(dataset, n=50000)
    np.testing.assert_allclose(x.mean(0), dataset.loc, atol=0.03 * np.max(dataset.scale))
    np.testing.assert_allclose(x.std(0), dataset.scale, rtol=0.03)


def test_an_example_depends_only_on_its_index():
    """Examples 100..199 drawn alone equal the same examples inside a larger batch."""
    ring = toy.ring_2d(8, 1.0, 0.01)
    key = jax.random.PRNGKey(3)
    whole = np.asarray(sample_batch(ring.sample_one, key, 0, 400))
    part = np.asarray(sample_batch(ring.sample_one, key, 100, 100))
    np.testing.assert_array_equal(whole[100:200], part)
