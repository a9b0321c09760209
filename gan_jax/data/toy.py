"""Toy distributions, sampled on the device inside the compiled step.

Each dataset draws one example from one key; the step vmaps it over per-example keys,
so a batch depends only on (seed, step, purpose, example index) and never on how
the batch is split across devices.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
from scipy import stats

from gan_jax.data.base import DatasetPart, register
from gan_jax.schema import MISSING, at_least, positive


@dataclass(frozen=True)
class ToyDataset:
    name: str
    dim: int
    sample_one: Callable[[jax.Array], jax.Array]  # key -> [dim]
    modes: np.ndarray | None = None  # [num_modes, dim] for mixtures
    std: float = 1.0  # per-component std
    density: Callable[[np.ndarray], np.ndarray] | None = None  # 1-D only: p_data(x)
    mean: float | None = None  # 1-D only
    # The distribution's exact per-dimension mean and std, to standardise model inputs.
    loc: tuple[float, ...] = (0.0,)
    scale: tuple[float, ...] = (1.0,)

    @property
    def shape(self) -> tuple[int]:
        return (self.dim,)

    @property
    def host_batches(self) -> bool:
        return False  # sampled inside the step


def gaussian_1d(mean: float, std: float) -> ToyDataset:
    def sample_one(key):
        return mean + std * jax.random.normal(key, (1,))

    return ToyDataset(
        "gaussian_1d",
        1,
        sample_one,
        std=std,
        mean=mean,
        density=lambda x: stats.norm.pdf(x, loc=mean, scale=std),
        loc=(float(mean),),
        scale=(float(std),),
    )


def dirac(location: float) -> ToyDataset:
    """A point mass at `location` (Mescheder et al. 2018)."""
    return ToyDataset("dirac", 1, lambda key: jnp.full((1,), location), std=0.0, loc=(float(location),), scale=(1.0,))


def _mixture(name: str, modes: np.ndarray, std: float) -> ToyDataset:
    centres = jnp.asarray(modes, dtype=jnp.float32)

    def sample_one(key):
        pick, noise = jax.random.split(key)
        index = jax.random.randint(pick, (), 0, centres.shape[0])
        return centres[index] + std * jax.random.normal(noise, (centres.shape[1],))

    # Equal-weight mixture: variance = spread of the means + each component's variance.
    scale = np.sqrt(modes.var(axis=0) + std**2)
    return ToyDataset(
        name,
        modes.shape[1],
        sample_one,
        modes=modes,
        std=std,
        loc=tuple(map(float, modes.mean(axis=0))),
        scale=tuple(map(float, scale)),
    )


def ring_2d(num_modes: int, radius: float, std: float) -> ToyDataset:
    """Gaussians with means evenly spaced on a circle (VEEGAN / PacGAN ring)."""
    angles = 2 * np.pi * np.arange(num_modes) / num_modes
    modes = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return _mixture("ring_2d", modes, std)


def grid_2d(num_modes_per_side: int, spacing: float, std: float) -> ToyDataset:
    """Gaussians on a square grid centred at 0 (VEEGAN / PacGAN grid: 5x5, spacing 2)."""
    axis = spacing * (np.arange(num_modes_per_side) - (num_modes_per_side - 1) / 2)
    modes = np.stack(np.meshgrid(axis, axis, indexing="ij"), axis=-1).reshape(-1, 2)
    return _mixture("grid_2d", modes, std)


# --- schemas and registration: dataset=<name> ----------------------------------------


@dataclass
class Gaussian1DConfig:
    name: str = "gaussian_1d"
    mean: float = MISSING
    std: float = positive()


@dataclass
class Ring2DConfig:
    name: str = "ring_2d"
    num_modes: int = at_least(1)
    radius: float = positive()
    std: float = positive()


@dataclass
class Grid2DConfig:
    name: str = "grid_2d"
    num_modes_per_side: int = at_least(1)
    spacing: float = positive()
    std: float = positive()


@dataclass
class DiracDataConfig:
    """A point mass (Mescheder et al. 2018's Dirac-GAN data)."""

    name: str = "dirac"
    location: float = MISSING


for _part in (
    DatasetPart("gaussian_1d", Gaussian1DConfig, lambda c: gaussian_1d(c.mean, c.std), shape=(1,)),
    DatasetPart("ring_2d", Ring2DConfig, lambda c: ring_2d(c.num_modes, c.radius, c.std), shape=(2,)),
    DatasetPart("grid_2d", Grid2DConfig, lambda c: grid_2d(c.num_modes_per_side, c.spacing, c.std), shape=(2,)),
    DatasetPart("dirac", DiracDataConfig, lambda c: dirac(c.location), shape=(1,)),
):
    register(_part)
