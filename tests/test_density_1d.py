"""The 1-D theory's density estimate agrees with scipy's Gaussian KDE."""

from __future__ import annotations

import numpy as np
from scipy import stats

from gan_jax.metrics import density_1d


def test_kde_density_equals_scipys_gaussian_kde():
    samples = np.random.default_rng(0).normal(3.0, 0.7, size=5000)  # more than one chunk
    grid = np.linspace(-1, 7, 300)
    np.testing.assert_allclose(density_1d.kde_density(samples, grid, chunk=1000),
                               stats.gaussian_kde(samples)(grid), rtol=1e-9, atol=1e-12)


def test_kde_density_of_a_point_mass_is_one_grid_cell():
    grid = np.linspace(0, 1, 11)
    density = density_1d.kde_density(np.full(100, 0.5), grid)
    assert np.count_nonzero(density) == 1 and np.trapezoid(density, grid) > 0
