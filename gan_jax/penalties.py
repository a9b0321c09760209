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

Gradients are taken per example as the gradient of sum_i D(x_i), which is exact only
for a D that treats examples independently (no batch normalisation).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

Penalty = Callable[[Callable, jax.Array, jax.Array, jax.Array], jax.Array]


def _input_gradients(d_fn: Callable, x: jax.Array) -> jax.Array:
    """[n, ...] -> [n, features]: grad of D's output w.r.t. each example's input."""
    grads = jax.grad(lambda inputs: jnp.sum(d_fn(inputs)))(x)
    return grads.reshape(x.shape[0], -1)


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


_REGISTRY = {"wgan_gp": wgan_gp, "r1": r1, "r2": r2, "dragan": dragan}


def names() -> tuple[str, ...]:
    return ("none",) + tuple(_REGISTRY)


def build(name: str, weight: float, data_scale: tuple[float, ...]) -> Penalty | None:
    if name == "none":
        return None
    return _REGISTRY[name](weight, data_scale)
