"""Optimisers for the two players: `optim.lr` for both, `optim.g_lr` / `optim.d_lr` override."""

from __future__ import annotations

import optax

OPTIMISERS = {
    "adam": lambda lr, cfg: optax.adam(lr, b1=cfg.b1, b2=cfg.b2),
    "rmsprop": lambda lr, cfg: optax.rmsprop(lr),
    "sgd": lambda lr, cfg: optax.sgd(lr),
}


def build(cfg) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Returns (generator optimiser, discriminator optimiser)."""
    make = OPTIMISERS[cfg.name]
    g_lr = cfg.lr if cfg.g_lr is None else cfg.g_lr
    d_lr = cfg.lr if cfg.d_lr is None else cfg.d_lr
    return make(g_lr, cfg), make(d_lr, cfg)
