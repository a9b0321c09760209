"""Layers shared by the model families: cross-device batch norm, maxout, and packing.

Packing (Lin et al. 2018, PacGAN): D judges `pack` examples at once, all real or all
generated, concatenated along the feature (channel) axis. The packs are consecutive
examples of a batch, so a device's share of the batch packs the same way as the whole
batch whenever that share is a multiple of `pack` (gan_jax.config checks it).
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax import lax


def pack_examples(x: jax.Array, pack: int) -> jax.Array:
    """[B, ..., C] -> [B / pack, ..., pack * C]: each run of `pack` consecutive examples
    concatenated along the last axis (features for vectors, channels for images)."""
    if pack == 1:
        return x
    batch, *rest = x.shape
    if batch % pack:
        raise ValueError(f"a packed discriminator needs a batch divisible by pack={pack}; got {batch} examples")
    grouped = jnp.moveaxis(x.reshape(batch // pack, pack, *rest), 1, -2)  # [B / pack, ..., pack, C]
    return grouped.reshape(batch // pack, *rest[:-1], pack * rest[-1])


def maxout(x: jax.Array, pieces: int) -> jax.Array:
    """[..., units * pieces] -> [..., units]: each unit the largest of its `pieces` linear
    pieces (Goodfellow et al. 2013)."""
    return jnp.max(x.reshape(*x.shape[:-1], x.shape[-1] // pieces, pieces), axis=-1)


def _ones(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    return jnp.ones(shape, dtype)


class BatchNorm(nn.Module):
    """Normalises with the batch's statistics, averaged over the devices on `axis_name`
    (so splitting a batch over devices does not change the numbers); running averages are
    recorded (for inspection and checkpoints) only when `update_stats`. Without `affine`
    the learned scale and bias are left out (a conditional batch norm supplies its own)."""

    momentum: float = 0.9
    epsilon: float = 1e-5
    scale_init: Callable = _ones
    affine: bool = True

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool, axis_name: str | None) -> jax.Array:
        features = x.shape[-1]
        axes = tuple(range(x.ndim - 1))
        # Statistics in float32 even when x is bfloat16: E[x^2] - E[x]^2 cancels.
        wide = x.astype(jnp.promote_types(x.dtype, jnp.float32))
        mean, mean_of_squares = jnp.mean(wide, axes), jnp.mean(jnp.square(wide), axes)
        if axis_name is not None:
            mean, mean_of_squares = lax.pmean((mean, mean_of_squares), axis_name)
        var = jnp.maximum(mean_of_squares - jnp.square(mean), 0.0)
        running_mean = self.variable("batch_stats", "mean", jnp.zeros, (features,))
        running_var = self.variable("batch_stats", "var", jnp.ones, (features,))
        if update_stats and not self.is_initializing():
            running_mean.value = self.momentum * running_mean.value + (1 - self.momentum) * mean
            running_var.value = self.momentum * running_var.value + (1 - self.momentum) * var
        normalised = (wide - mean) * lax.rsqrt(var + self.epsilon)
        if not self.affine:
            return normalised.astype(x.dtype)
        scale = self.param("scale", self.scale_init, (features,))
        bias = self.param("bias", nn.initializers.zeros, (features,))
        return (normalised * scale + bias).astype(x.dtype)


def maybe_spectral(module: nn.Module, inputs: jax.Array, spectral_norm: bool, update_stats: bool) -> jax.Array:
    """`module(inputs)`, its weights divided by their largest singular value when `spectral_norm`
    (Miyato et al. 2018: one power iteration per call with update_stats; the iteration's
    vectors live in the "batch_stats" collection)."""
    if spectral_norm:
        return nn.SpectralNorm(module, n_steps=1)(inputs, update_stats=update_stats)
    return module(inputs)
