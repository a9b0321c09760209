"""Dirac-GAN (Mescheder et al. 2018): G_theta(z) = theta and D_psi(x) = psi * x.

With data a point mass at 0, the game's unique equilibrium is theta = psi = 0.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


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
