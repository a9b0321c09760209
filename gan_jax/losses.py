"""GAN loss formulations as pure functions of the discriminator's raw outputs.

Every loss takes `real_out` and `fake_out`, D's outputs (logits, shape [batch, 1]) on a
real and a generated batch, and returns a scalar: the mean over the batch. With
s = sigmoid:

    minimax         D: -log s(D(x)) - log(1 - s(D(G(z))))    G:  log(1 - s(D(G(z))))
    non_saturating  D: as minimax                            G: -log s(D(G(z)))

(Goodfellow et al. 2014.) log s(a) = -softplus(-a) and log(1 - s(a)) = -softplus(a)
keep them finite for any logit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array, jax.Array], jax.Array]


@dataclass(frozen=True)
class GANLoss:
    name: str
    discriminator: LossFn
    generator: LossFn


def _bce_discriminator(real_out: jax.Array, fake_out: jax.Array) -> jax.Array:
    return jnp.mean(jax.nn.softplus(-real_out)) + jnp.mean(jax.nn.softplus(fake_out))


def _minimax_generator(real_out: jax.Array, fake_out: jax.Array) -> jax.Array:
    del real_out
    return -jnp.mean(jax.nn.softplus(fake_out))


def _non_saturating_generator(real_out: jax.Array, fake_out: jax.Array) -> jax.Array:
    del real_out
    return jnp.mean(jax.nn.softplus(-fake_out))


_REGISTRY = {
    loss.name: loss
    for loss in (
        GANLoss("minimax", _bce_discriminator, _minimax_generator),
        GANLoss("non_saturating", _bce_discriminator, _non_saturating_generator),
    )
}


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> GANLoss:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid losses: {', '.join(names())}") from None
