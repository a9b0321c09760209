"""Multi-layer perceptrons for the generator and the discriminator of toy GANs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.parts import ModelPart, latent_distributions, register
from gan_jax.schema import MISSING, at_least, one_of

ACTIVATIONS: dict[str, Callable[[jax.Array], jax.Array]] = {
    "relu": nn.relu,
    "leaky_relu": partial(nn.leaky_relu, negative_slope=0.2),
    "elu": nn.elu,
    "gelu": nn.gelu,
    "tanh": nn.tanh,
    "softplus": nn.softplus,
}


class MLP(nn.Module):
    """`depth` hidden layers of `width` units, then a linear layer of `out_dim` units.

    With `spectral_norm`, every layer's weight is divided by its largest singular value,
    estimated by one power iteration per training step (Miyato et al. 2018); the
    iteration's vectors live in the "batch_stats" collection.
    """

    width: int
    depth: int
    out_dim: int
    activation: str
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        def dense(features: int, inputs: jax.Array) -> jax.Array:
            if self.spectral_norm:
                return nn.SpectralNorm(nn.Dense(features), n_steps=1)(inputs, update_stats=update_stats)
            return nn.Dense(features)(inputs)

        act = ACTIVATIONS[self.activation]
        for _ in range(self.depth):
            x = act(dense(self.width, x))
        return dense(self.out_dim, x)


class Generator(nn.Module):
    """z -> loc + scale * MLP(z): the network works in standardised data coordinates.

    Images (Goodfellow et al.'s MNIST MLPs) are generated flat, then shaped.
    """

    net: MLP
    loc: tuple[float, ...]
    scale: tuple[float, ...]
    data_shape: tuple[int, ...]

    def __call__(self, z: jax.Array, update_stats: bool = False, axis_name=None) -> jax.Array:
        x = jnp.asarray(self.loc) + jnp.asarray(self.scale) * self.net(z, update_stats)
        return x.reshape(z.shape[0], *self.data_shape)


class Discriminator(nn.Module):
    """x -> MLP((x - loc) / scale), a logit per example (images are flattened)."""

    net: MLP
    loc: tuple[float, ...]
    scale: tuple[float, ...]

    def __call__(self, x: jax.Array, update_stats: bool = False, axis_name=None) -> jax.Array:
        x = (x - jnp.asarray(self.loc, x.dtype)) / jnp.asarray(self.scale, x.dtype)  # float32 constants would widen x
        return self.net(x.reshape(x.shape[0], -1), update_stats)


def build(cfg, data) -> tuple[nn.Module, nn.Module]:
    """Generator maps [batch, latent_dim] to [batch, *data.shape]; discriminator to logits [batch, 1].

    With `cfg.standardize`, both networks see data standardised by the dataset's mean
    and std, so a target's location and scale do not change how hard it is to learn
    (ReLU units start with their kinks at 0, where standardised data lies).
    """
    g, d = cfg.generator, cfg.discriminator
    loc, scale = (data.loc, data.scale) if cfg.standardize else ((0.0,), (1.0,))
    generator = Generator(
        MLP(g.width, g.depth, math.prod(data.shape), g.activation, g.spectral_norm), loc, scale, data.shape
    )
    discriminator = Discriminator(MLP(d.width, d.depth, 1, d.activation, d.spectral_norm), loc, scale)
    return generator, discriminator


@dataclass
class MLPNetConfig:
    width: int = at_least(1)
    depth: int = at_least(0)
    activation: str = one_of(lambda: tuple(ACTIVATIONS))
    spectral_norm: bool = MISSING


@dataclass
class MLPConfig:
    name: str = "mlp"
    latent_dim: int = at_least(1)
    latent_dist: str = one_of(latent_distributions)
    standardize: bool = MISSING
    generator: MLPNetConfig = field(default_factory=MLPNetConfig)
    discriminator: MLPNetConfig = field(default_factory=MLPNetConfig)


register(ModelPart("mlp", MLPConfig, build))
