"""The exponential moving average (EMA) of G's parameters: samples and evaluation use it.

Two parametrisations (train.ema_decay, or train.ema_kimg for StyleGAN's):

    fixed decay     beta = train.ema_decay
    half-life       beta = 0.5 ** (batch / n), n = train.ema_kimg * 1000 images, and with
                    the ramp-up train.ema_rampup r: n = min(n, images seen so far * r)
                    (Karras et al.'s code: the average follows G closely early on)

and average <- beta * average + (1 - beta) * params after each G update. With a schedule on
train.ema_decay or train.ema_kimg (gan_jax/schedules.py), that value is the schedule's at the
step (R3GAN's half-life grows from 0 to 5M images). Before
train.ema_start steps (beta 0) the average copies G. The average is state of the run
(GANState.generator_ema), checkpointed with it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp


@dataclass(frozen=True)
class EMA:
    decay: float | None  # a fixed beta; None: from half_life_kimg
    start: int = 0  # steps before the average starts (it copies G until then)
    half_life_kimg: float | None = None
    rampup: float | None = None
    batch_size: int = 1  # the global batch: images seen per step
    # the iteration's values -> the varying value of the parametrisation in use (decay or
    # half_life_kimg: a schedule's, a population member's); None: the constant
    scheduled: Callable[[Any], jax.Array] | None = None

    def beta(self, step: jax.Array, values: Any = None) -> jax.Array:
        """The decay of the update after `step` steps completed; `values`: the iteration's
        values of the settings that vary (schedules.Values)."""
        if self.half_life_kimg is None:
            beta: Any = self.decay if self.scheduled is None else self.scheduled(values)
        else:
            kimg = self.half_life_kimg if self.scheduled is None else self.scheduled(values)
            images = jnp.asarray(kimg * 1000, jnp.float32)
            if self.rampup is not None:
                images = jnp.minimum(images, step.astype(jnp.float32) * self.batch_size * self.rampup)
            beta = 0.5 ** (self.batch_size / jnp.maximum(images, 1e-8))
        return jnp.where(step >= self.start, beta, 0.0)

    def update(self, average: Any, params: Any, step: jax.Array, values: Any = None) -> Any:
        beta = self.beta(step, values)
        return jax.tree.map(lambda a, p: beta * a + (1.0 - beta) * p, average, params)


def from_config(train: Any, schedules: Any = None) -> EMA | None:
    """train.ema_decay / ema_kimg / ema_rampup / ema_start -> the EMA, None without one;
    `schedules` (gan_jax/schedules.py) may move the decay or the half-life."""
    half_life = train.get("ema_kimg")
    if train.ema_decay is None and half_life is None:
        return None
    key = "train.ema_decay" if half_life is None else "train.ema_kimg"
    scheduled = None if schedules is None else schedules.reader(key)
    return EMA(train.ema_decay, train.ema_start, half_life, train.get("ema_rampup"), train.batch_size, scheduled)
