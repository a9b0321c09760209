"""Optimisers for the two players: `optim.lr` for both, `optim.g_lr` / `optim.d_lr` override.

Each optimiser is registered (`OPTIMISERS`) with its config schema and its builder
`build(lr, cfg.optim) -> optax.GradientTransformation`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import optax

from gan_jax.registry import Registry, Rule
from gan_jax.schema import MISSING, in_range, one_of, optional_positive, positive


@dataclass
class OptimConfig:
    name: str = one_of(lambda: OPTIMISERS.names())
    lr: float = positive()
    g_lr: float | None = optional_positive(MISSING)
    d_lr: float | None = optional_positive(MISSING)


@dataclass
class AdamConfig(OptimConfig):
    """Adam's moment decay rates; the other optimisers have none to set."""

    b1: float = in_range(0.0, 1.0)
    b2: float = in_range(0.0, 1.0)


@dataclass(frozen=True)
class OptimPart:
    name: str
    build: Callable[[float, Any], optax.GradientTransformation]  # (lr, cfg.optim) -> optimiser
    schema: type = OptimConfig
    rules: tuple[Rule, ...] = ()


OPTIMISERS: Registry[OptimPart] = Registry("optimiser")


def register(part: OptimPart, *, replace: bool = False) -> OptimPart:
    return OPTIMISERS.register(part.name, part, replace=replace)


register(OptimPart("adam", lambda lr, cfg: optax.adam(lr, b1=cfg.b1, b2=cfg.b2), schema=AdamConfig))
register(OptimPart("rmsprop", lambda lr, cfg: optax.rmsprop(lr)))
register(OptimPart("sgd", lambda lr, cfg: optax.sgd(lr)))


def build(cfg) -> tuple[optax.GradientTransformation, optax.GradientTransformation]:
    """Returns (generator optimiser, discriminator optimiser)."""
    make = OPTIMISERS.get(cfg.name).build
    g_lr = cfg.lr if cfg.g_lr is None else cfg.g_lr
    d_lr = cfg.lr if cfg.d_lr is None else cfg.d_lr
    return make(g_lr, cfg), make(d_lr, cfg)
