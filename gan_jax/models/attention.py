"""Self-attention for convolutional GANs (Zhang et al. 2019, SAGAN), as SAGAN's and
BigGAN's released code compute it (ajbrock/BigGAN-PyTorch layers.Attention):

    theta = conv_theta(x)              [B, H*W, C/8]
    phi   = maxpool_2x2(conv_phi(x))   [B, H*W/4, C/8]
    g     = maxpool_2x2(conv_g(x))     [B, H*W/4, C/2]
    beta  = softmax(theta phi^T)       [B, H*W, H*W/4]  (each position over the pooled ones)
    out   = x + gamma * conv_o(beta g) (conv_o: C/2 -> C; gamma learned, starting at 0)

The four convolutions are 1x1 without bias; the caller supplies them (`conv`), so a
model's own initialisation and spectral norm apply to them. Images NHWC; H and W even.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

# conv(features, name, inputs) -> outputs: a 1x1 convolution without bias, made (and named
# `name`) inside the attention module when called.
Conv1x1 = Callable[[int, str, jax.Array], jax.Array]
REDUCTIONS = {"theta": 8, "phi": 8, "g": 2}  # channels C / reduction of each projection


def plain_conv(features: int, name: str, inputs: jax.Array) -> jax.Array:
    return nn.Conv(features, (1, 1), use_bias=False, name=name)(inputs)


def attention_fits(channels: int, height: int, width: int) -> str | None:
    """Why a [.., height, width, channels] map cannot take the attention layer, or None."""
    if channels < max(REDUCTIONS.values()):
        return f"{channels} channels: attention needs at least {max(REDUCTIONS.values())} (theta and phi keep C / 8)"
    if height % 2 or width % 2:
        return f"a {height}x{width} map: attention max-pools phi and g 2x2, so it needs even sizes"
    return None


class SelfAttention(nn.Module):
    """x [B, H, W, C] -> x + gamma * attention(x), gamma (parameter 'gamma', a scalar) starting at 0."""

    @nn.compact
    def __call__(self, x: jax.Array, conv: Conv1x1 = plain_conv) -> jax.Array:
        batch, height, width, channels = x.shape
        problem = attention_fits(channels, height, width)
        if problem:
            raise ValueError(f"self-attention on {x.shape}: {problem}")
        reduced, values = channels // REDUCTIONS["theta"], channels // REDUCTIONS["g"]

        def pooled(h: jax.Array) -> jax.Array:
            return nn.max_pool(h, (2, 2), strides=(2, 2))

        theta = conv(reduced, "theta", x).reshape(batch, height * width, reduced)
        phi = pooled(conv(reduced, "phi", x)).reshape(batch, height * width // 4, reduced)
        g = pooled(conv(values, "g", x)).reshape(batch, height * width // 4, values)
        beta = jax.nn.softmax(jnp.einsum("bqc,bkc->bqk", theta, phi), axis=-1)
        attended = jnp.einsum("bqk,bkc->bqc", beta, g).reshape(batch, height, width, values)
        out = conv(channels, "o", attended)
        gamma = self.param("gamma", nn.initializers.zeros, ())
        return x + gamma.astype(out.dtype) * out
