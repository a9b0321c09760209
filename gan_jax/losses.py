"""GAN loss formulations as pure functions of the discriminator's raw outputs.

Every loss takes `real_out` and `fake_out`, D's raw outputs (shape [batch, 1]) on a real
and a generated batch, and returns a scalar: means over the batch. With s = sigmoid,
D_r = D(x), D_f = D(G(z)) and E the batch mean:

    minimax         D: E[-log s(D_r)] + E[-log(1 - s(D_f))]          G: E[log(1 - s(D_f))]
    non_saturating  D: as minimax                                    G: E[-log s(D_f)]
    wgan            D: E[D_f] - E[D_r]                               G: -E[D_f]
    hinge           D: E[relu(1 - D_r)] + E[relu(1 + D_f)]           G: -E[D_f]
    lsgan           D: 1/2 E[(D_r - 1)^2] + 1/2 E[D_f^2]             G: 1/2 E[(D_f - 1)^2]
    relativistic    D: E[-log s(D_r - E[D_f])] + E[-log(1 - s(D_f - E[D_r]))]
                    G: E[-log s(D_f - E[D_r])] + E[-log(1 - s(D_r - E[D_f]))]

Goodfellow et al. 2014 (minimax, non-saturating); Arjovsky et al. 2017 (WGAN, whose
critic is kept Lipschitz by weight clipping, `loss.weight_clip`); Lim & Ye 2017 and
Miyato et al. 2018 (hinge); Mao et al. 2017 (least squares, 0-1 coding);
Jolicoeur-Martineau 2018 (relativistic average standard GAN). log s(a) = -softplus(-a)
and log(1 - s(a)) = -softplus(a) keep them finite for any output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import jax
import jax.numpy as jnp

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

softplus = jax.nn.softplus


@dataclass(frozen=True)
class GANLoss:
    name: str
    discriminator: LossFn
    generator: LossFn


def _bce_discriminator(real_out, fake_out):
    return jnp.mean(softplus(-real_out)) + jnp.mean(softplus(fake_out))


def _minimax_generator(real_out, fake_out):
    return -jnp.mean(softplus(fake_out))


def _non_saturating_generator(real_out, fake_out):
    return jnp.mean(softplus(-fake_out))


def _wgan_discriminator(real_out, fake_out):
    return jnp.mean(fake_out) - jnp.mean(real_out)


def _critic_generator(real_out, fake_out):
    return -jnp.mean(fake_out)


def _hinge_discriminator(real_out, fake_out):
    return jnp.mean(jax.nn.relu(1 - real_out)) + jnp.mean(jax.nn.relu(1 + fake_out))


def _lsgan_discriminator(real_out, fake_out):
    return 0.5 * jnp.mean((real_out - 1) ** 2) + 0.5 * jnp.mean(fake_out**2)


def _lsgan_generator(real_out, fake_out):
    return 0.5 * jnp.mean((fake_out - 1) ** 2)


def _relativistic_discriminator(real_out, fake_out):
    return _bce_discriminator(real_out - jnp.mean(fake_out), fake_out - jnp.mean(real_out))


def _relativistic_generator(real_out, fake_out):
    # The discriminator's loss with the roles of real and generated data swapped.
    return _bce_discriminator(fake_out - jnp.mean(real_out), real_out - jnp.mean(fake_out))


_REGISTRY = {
    loss.name: loss
    for loss in (
        GANLoss("minimax", _bce_discriminator, _minimax_generator),
        GANLoss("non_saturating", _bce_discriminator, _non_saturating_generator),
        GANLoss("wgan", _wgan_discriminator, _critic_generator),
        GANLoss("hinge", _hinge_discriminator, _critic_generator),
        GANLoss("lsgan", _lsgan_discriminator, _lsgan_generator),
        GANLoss("relativistic", _relativistic_discriminator, _relativistic_generator),
    )
}


def names() -> tuple[str, ...]:
    return tuple(_REGISTRY)


def get(name: str) -> GANLoss:
    try:
        return _REGISTRY[name]
    except KeyError:
        raise KeyError(f"unknown loss {name!r}; valid losses: {', '.join(names())}") from None
