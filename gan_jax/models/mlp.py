"""Multi-layer perceptrons for the generator and the discriminator of toy GANs."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.data import DataFacts
from gan_jax.models.layers import BatchNorm, maxout, pack_examples
from gan_jax.models.parts import ModelPart, latent_distributions, register
from gan_jax.registry import Rule
from gan_jax.schema import MISSING, at_least, one_of, optional_positive, rule

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

    Each hidden layer is dense -> [batch norm] -> activation. `activation="maxout"`: the
    dense layer has `width * maxout_pieces` units and each hidden unit is the largest of
    its pieces (Goodfellow et al. 2013; PacGAN's LinearMaxout). With `norm="batch"` the
    hidden dense layers have no bias (the norm's shift replaces it). `init_std`: weights
    from N(0, init_std) (DCGAN, PacGAN) instead of Flax's LeCun normal. With
    `spectral_norm`, every layer's weight is divided by its largest singular value,
    estimated by one power iteration per training step (Miyato et al. 2018); the
    iteration's vectors live in the "batch_stats" collection.
    """

    width: int
    depth: int
    out_dim: int
    activation: str
    spectral_norm: bool = False
    norm: str = "none"
    maxout_pieces: int | None = None
    init_std: float | None = None

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False, axis_name: str | None = None) -> jax.Array:
        kernel_init = nn.linear.default_kernel_init if self.init_std is None else nn.initializers.normal(self.init_std)

        def dense(features: int, inputs: jax.Array, use_bias: bool = True) -> jax.Array:
            layer = nn.Dense(features, use_bias=use_bias, kernel_init=kernel_init)
            if self.spectral_norm:
                return nn.SpectralNorm(layer, n_steps=1)(inputs, update_stats=update_stats)
            return layer(inputs)

        pieces = self.maxout_pieces or 1  # set only with activation="maxout" (the part's rule)
        for _ in range(self.depth):
            x = dense(self.width * pieces, x, use_bias=self.norm == "none")
            if self.norm == "batch":
                x = BatchNorm()(x, update_stats, axis_name)
            x = maxout(x, pieces) if pieces > 1 else ACTIVATIONS[self.activation](x)
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
        x = jnp.asarray(self.loc) + jnp.asarray(self.scale) * self.net(z, update_stats, axis_name)
        return x.reshape(z.shape[0], *self.data_shape)


class Discriminator(nn.Module):
    """x -> MLP((x - loc) / scale): a logit per example (images are flattened), or with
    `pack` > 1 one per run of `pack` consecutive examples, concatenated (Lin et al. 2018)."""

    net: MLP
    loc: tuple[float, ...]
    scale: tuple[float, ...]
    pack: int = 1

    def __call__(self, x: jax.Array, update_stats: bool = False, axis_name=None) -> jax.Array:
        x = (x - jnp.asarray(self.loc, x.dtype)) / jnp.asarray(self.scale, x.dtype)  # float32 constants would widen x
        return self.net(pack_examples(x.reshape(x.shape[0], -1), self.pack), update_stats, axis_name)


def build(cfg, data) -> tuple[nn.Module, nn.Module]:
    """Generator maps [batch, latent_dim] to [batch, *data.shape]; discriminator to logits
    [batch / pack, 1].

    With `cfg.standardize`, both networks see data standardised by the dataset's mean
    and std, so a target's location and scale do not change how hard it is to learn
    (ReLU units start with their kinks at 0, where standardised data lies).
    """
    g, d = cfg.generator, cfg.discriminator
    loc, scale = (data.loc, data.scale) if cfg.standardize else ((0.0,), (1.0,))
    generator = Generator(_net(g, math.prod(data.shape)), loc, scale, data.shape)
    discriminator = Discriminator(_net(d, 1), loc, scale, d.pack)
    return generator, discriminator


def _net(cfg, out_dim: int) -> MLP:
    return MLP(
        cfg.width, cfg.depth, out_dim, cfg.activation, cfg.spectral_norm, cfg.norm, cfg.maxout_pieces, cfg.init_std
    )


NORMS = ("none", "batch")


@dataclass
class MLPNetConfig:
    width: int = at_least(1)
    depth: int = at_least(0)
    activation: str = one_of(lambda: (*ACTIVATIONS, "maxout"))
    maxout_pieces: int | None = rule(MISSING, "null or an integer >= 2", lambda v: v is None or v >= 2)
    norm: str = one_of(lambda: NORMS)
    init_std: float | None = optional_positive(MISSING)
    spectral_norm: bool = MISSING


@dataclass
class MLPDiscriminatorConfig(MLPNetConfig):
    pack: int = at_least(1)  # PacGAN: examples judged per decision, concatenated


@dataclass
class MLPConfig:
    name: str = "mlp"
    latent_dim: int = at_least(1)
    latent_dist: str = one_of(latent_distributions)
    standardize: bool = MISSING
    generator: MLPNetConfig = field(default_factory=MLPNetConfig)
    discriminator: MLPDiscriminatorConfig = field(default_factory=MLPDiscriminatorConfig)


def _maxout_needs_pieces(player: str) -> Rule:
    def check(cfg: Any) -> str | None:
        net = cfg[player]
        if net.activation == "maxout" and net.maxout_pieces is None:
            return f"model.{player}.activation=maxout: set model.{player}.maxout_pieces (an integer >= 2)"
        if net.activation != "maxout" and net.maxout_pieces is not None:
            return (
                f"model.{player}.maxout_pieces={net.maxout_pieces} has no effect with "
                f"model.{player}.activation={net.activation}; set it to null or the activation to maxout"
            )
        return None

    return check


def _packing_needs_points_of_more_than_one_dimension(cfg: Any, data: DataFacts) -> str | None:
    if cfg.discriminator.pack > 1 and data.shape == (1,):
        return (
            f"model.discriminator.pack={cfg.discriminator.pack}: 1-D data is evaluated by D(x) at "
            f"single points (Goodfellow et al.'s Figure 1), which a packed D does not define; "
            f"use pack=1 with dataset={data.name}"
        )
    return None


register(
    ModelPart(
        "mlp",
        MLPConfig,
        build,
        data_rule=_packing_needs_points_of_more_than_one_dimension,
        d_batch_norm=lambda cfg: cfg.discriminator.norm == "batch",
        d_pack=lambda cfg: cfg.discriminator.pack,
        rules=(_maxout_needs_pieces("generator"), _maxout_needs_pieces("discriminator")),
    )
)
