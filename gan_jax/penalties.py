"""Regularisers of the discriminator: functions of D (as a function of x) and the batch.

A penalty is called as `penalty(d_fn, real, fake, keys)`, where d_fn maps [n, ...] inputs
to D's raw outputs [n, 1] and `keys` holds one PRNG key per example (so the draws
depend on the example, not the device); it returns a scalar added to D's loss.

    wgan_gp  weight * E[(||grad D(x_hat)|| - 1)^2], x_hat = e x + (1 - e) G(z), e ~ U(0, 1)
             (Gulrajani et al. 2017, two-sided)
    r1       weight / 2 * E[||grad D(x)||^2] on real data    (Mescheder et al. 2018)
    r2       weight / 2 * E[||grad D(G(z))||^2] on generated data
    dragan   weight * E[(||grad D(x_hat)|| - 1)^2], x_hat = x + a * 0.5 * std * u,
             a, u ~ U(0, 1) (Kodali et al. 2017; std: the dataset's per-dimension std)

Gradients are taken per D output as the gradient of sum_j D_j, which is exact only for
a D that treats its inputs independently (no batch normalisation). A packed D (PacGAN)
has one output per pack of consecutive examples: the points are drawn per example, and
each norm is that of the gradient with respect to the whole pack, D's actual input.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.registry import Registry, Rule
from gan_jax.schema import MISSING, one_of, rule

Penalty = Callable[[Callable, jax.Array, jax.Array, jax.Array], jax.Array]


def _input_gradients(d_fn: Callable, x: jax.Array) -> jax.Array:
    """[n, ...] -> [outputs, features]: the gradient of each of D's outputs with respect to
    its input (one example, or the pack of n / outputs consecutive examples it judged)."""
    out, pullback = jax.vjp(d_fn, x)
    (grads,) = pullback(jnp.ones_like(out))
    return grads.reshape(out.shape[0], -1)


def _norms(grads: jax.Array) -> jax.Array:
    return jnp.sqrt(jnp.sum(grads**2, axis=-1) + 1e-12)


def _uniform(keys: jax.Array, shape: tuple[int, ...]) -> jax.Array:
    return jax.vmap(lambda k: jax.random.uniform(k, shape))(keys)


def wgan_gp(weight: float, data_scale: tuple[float, ...]) -> Penalty:
    def penalty(d_fn, real, fake, keys):
        e = _uniform(keys, (1,) * (real.ndim - 1))
        x_hat = e * real + (1 - e) * fake
        return weight * jnp.mean((_norms(_input_gradients(d_fn, x_hat)) - 1) ** 2)

    return penalty


def r1(weight: float, data_scale: tuple[float, ...]) -> Penalty:
    def penalty(d_fn, real, fake, keys):
        return weight / 2 * jnp.mean(jnp.sum(_input_gradients(d_fn, real) ** 2, axis=-1))

    return penalty


def r2(weight: float, data_scale: tuple[float, ...]) -> Penalty:
    def penalty(d_fn, real, fake, keys):
        return weight / 2 * jnp.mean(jnp.sum(_input_gradients(d_fn, fake) ** 2, axis=-1))

    return penalty


def dragan(weight: float, data_scale: tuple[float, ...]) -> Penalty:
    scale = jnp.asarray(data_scale)

    def penalty(d_fn, real, fake, keys):
        alpha_keys, noise_keys = jax.vmap(jax.random.split, out_axes=1)(keys)
        noise = 0.5 * scale * _uniform(noise_keys, real.shape[1:])
        a = _uniform(alpha_keys, (1,) * (real.ndim - 1))
        x_hat = real + a * noise
        return weight * jnp.mean((_norms(_input_gradients(d_fn, x_hat)) - 1) ** 2)

    return penalty


@dataclass
class PenaltyConfig:
    name: str = one_of(lambda: PENALTIES.names())
    weight: float = rule(MISSING, "a number >= 0", lambda v: v >= 0)  # lambda or gamma


def _weight_must_act(cfg: Any) -> str | None:
    if cfg.weight == 0:
        return f"penalty.weight=0 makes penalty={cfg.name} do nothing; use penalty=none or a weight > 0"
    return None


def _no_weight(cfg: Any) -> str | None:
    if cfg.weight != 0:
        return f"penalty.weight={cfg.weight} has no effect with penalty=none; choose a penalty"
    return None


@dataclass(frozen=True)
class PenaltyPart:
    """A regulariser as gan-train chooses it: `penalty=<name>` composes conf/penalty/<name>.yaml
    over `schema` (schema/penalty/<name>). `build(weight, data_scale)` makes the Penalty
    (None: no penalty); `per_example`: it takes D's gradient per example, which needs a D
    that treats examples independently; `replaces_clipping`: it bounds D instead of
    weight clipping (Gulrajani et al. 2017); `on_generated`: its points are generated
    examples (a class-conditional D judges them with the generated classes; the others'
    points, real, perturbed or interpolated, take the real examples' classes)."""

    name: str
    build: Callable[[float, tuple[float, ...]], Penalty] | None
    schema: type = PenaltyConfig
    per_example: bool = True
    on_generated: bool = False
    replaces_clipping: bool = False
    rules: tuple[Rule, ...] = (_weight_must_act,)


PENALTIES: Registry[PenaltyPart] = Registry("penalty")


def register(part: PenaltyPart, *, replace: bool = False) -> PenaltyPart:
    return PENALTIES.register(part.name, part, replace=replace)


for _part in (
    PenaltyPart("none", None, per_example=False, rules=(_no_weight,)),
    PenaltyPart("wgan_gp", wgan_gp, replaces_clipping=True),
    PenaltyPart("r1", r1),
    PenaltyPart("r2", r2, on_generated=True),
    PenaltyPart("dragan", dragan),
):
    register(_part)


def names() -> tuple[str, ...]:
    return PENALTIES.names()


def build(name: str, weight: float, data_scale: tuple[float, ...]) -> Penalty | None:
    make = PENALTIES.get(name).build
    return None if make is None else make(weight, data_scale)
