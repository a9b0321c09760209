"""Dirac-GAN (Mescheder et al. 2018): G_theta(z) = theta and D_psi(x) = psi * x.

With data a point mass at 0, the game's unique equilibrium is theta = psi = 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.data import DataFacts, names_where
from gan_jax.models.parts import ModelPart, register
from gan_jax.schema import MISSING


class DiracGenerator(nn.Module):
    theta_init: float

    @nn.compact
    def __call__(self, z: jax.Array, update_stats: bool = False, axis_name=None) -> jax.Array:
        theta = self.param("theta", nn.initializers.constant(self.theta_init), (1,))
        return jnp.broadcast_to(theta, (z.shape[0], 1))


class DiracDiscriminator(nn.Module):
    psi_init: float

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False, axis_name=None) -> jax.Array:
        psi = self.param("psi", nn.initializers.constant(self.psi_init), (1,))
        return x * psi


def build(cfg, data) -> tuple[nn.Module, nn.Module]:
    return DiracGenerator(cfg.theta_init), DiracDiscriminator(cfg.psi_init)


@dataclass
class DiracModelConfig:
    """G_theta(z) = theta, D_psi(x) = psi * x (Mescheder et al. 2018)."""

    name: str = "dirac"
    theta_init: float = MISSING
    psi_init: float = MISSING


def _needs_1d_data(cfg: Any, data: DataFacts) -> str | None:
    if data.shape != (1,):
        valid = ", ".join(sorted(names_where(lambda p: p.shape == (1,))))
        return (
            f"model=dirac: its generator is one number, so the data must be 1-D; "
            f"dataset={data.name} is not (valid: {valid})"
        )
    return None


register(ModelPart("dirac", DiracModelConfig, build, data_rule=_needs_1d_data))
