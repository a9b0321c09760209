"""StyleGAN2's path-length regularisation of G (Karras et al. 2020b, "Analyzing and improving
the image quality of StyleGAN", Sec. 3.2 and Appendix B):

    w = map_latents(z, c),  x = synthesise(w)  [B, H, W, C],  y ~ N(0, I) / sqrt(H W)
    J^T y   = grad_w sum(x * y)                       [B, num_ws, w_dim]
    l_i     = sqrt(mean_ws sum_w_dim (J^T y)^2)       the path length of example i
    a      <- a + decay * (mean_i l_i - a)            a = pl_mean, the term's state
    R_pl    = weight * mean_i (l_i - a)^2

on the first B // batch_shrink latents (at least one) of G's lazy batch and their classes, as
NVIDIA's stylegan2-ada-pytorch computes it (training/loss.py, StyleGAN2Loss, commit d72cc7d):
weight 2 (pl_weight), decay 0.01 (pl_decay), batch_shrink 2 (pl_batch_shrink), every 4
iterations (training_loop.py's G_reg_interval; lazy: the value x 4, G's Adam rescaled). The
updated a enters R_pl with its gradient through mean_i l_i, as NVIDIA's (undetached) lerp
does; mean_i l_i is averaged over the devices first, so a does not depend on how the batch
is split (the gradient is that of this device's batch). a starts at 0 and is logged as
`path_length_pl_mean`, R_pl as `g_path_length`. y is drawn per example from the term's keys,
and so are G's own draws as in its main phase (as NVIDIA's run_G in the Greg phase): styles
mixed in map_latents (w then holds the mixed styles) and the per-layer random noise.

It needs a generator that exposes `map_latents(z, labels, example_keys=)` and
`synthesise(ws, example_keys=)` (StyleGAN2, gan_jax/models/stylegan2.py); with any other the
step's trace, before the first iteration, stops with a ConfigError saying so.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.errors import ConfigError
from gan_jax.penalties import BuildContext, PenaltyConfig, PenaltyPart, register
from gan_jax.schema import at_least, in_range
from gan_jax.terms import GENERATOR, GView, Term, TermResult

REQUIRED_METHODS = ("map_latents", "synthesise")
NOISE_PURPOSE = 0  # folded into the term's per-example keys for y
GENERATOR_PURPOSE = 1  # ... and for G's own draws (style mixing, random noise)


@dataclass
class PathLengthConfig(PenaltyConfig):
    decay: float = in_range(0.0, 1.0)  # of pl_mean's moving average (NVIDIA's pl_decay)
    batch_shrink: int = at_least(1)  # the term runs on batch // batch_shrink examples (pl_batch_shrink)


def path_lengths(jacobian_transpose_y: jax.Array) -> jax.Array:
    """[B, num_ws, w_dim] -> [B]: sqrt(mean over ws of the sum over w_dim of (J^T y)^2)."""
    return jnp.sqrt(jnp.mean(jnp.sum(jacobian_transpose_y**2, axis=2), axis=1))


def image_noise(keys: jax.Array, image_shape: tuple[int, ...]) -> jax.Array:
    """y ~ N(0, I) / sqrt(H W), one draw per example key; image_shape [H, W, C]."""
    height, width = image_shape[0], image_shape[1]
    draw = lambda key: jax.random.normal(jax.random.fold_in(key, NOISE_PURPOSE), image_shape)  # noqa: E731
    return jax.vmap(draw)(keys) / jnp.sqrt(height * width)


def _apply(view: GView, method: str, *args: Any, labels: jax.Array | None, example_keys: jax.Array) -> jax.Array:
    """view.apply_generator, with a generator that lacks `method` reported as a ConfigError."""
    try:
        return view.apply_generator(method, *args, labels=labels, example_keys=example_keys)
    except AttributeError as error:
        if f'"{method}"' not in str(error) and f"'{method}'" not in str(error):
            raise
        raise ConfigError(
            f"penalty=path_length needs a generator with {' and '.join(REQUIRED_METHODS)} (model=stylegan2); "
            f"this one has no {method!r}: drop path_length from penalty= or choose such a model"
        ) from error


def path_length_term(name: str, weight: float, decay: float, batch_shrink: int, interval: int) -> Term:
    def fn(view: GView, state: dict[str, jax.Array]) -> TermResult:
        n = max(1, view.latent.shape[0] // batch_shrink)
        labels = None if view.labels is None else view.labels[:n]
        own = jax.vmap(lambda key: jax.random.fold_in(key, GENERATOR_PURPOSE))(view.keys[:n])
        ws = _apply(view, "map_latents", view.latent[:n], labels=labels, example_keys=own)
        images, pullback = jax.vjp(lambda w: _apply(view, "synthesise", w, labels=labels, example_keys=own), ws)
        (jacobian_transpose_y,) = pullback(image_noise(view.keys[:n], images.shape[1:]))
        lengths = path_lengths(jacobian_transpose_y)
        local_mean = jnp.mean(lengths)
        # The devices' mean as a value, this device's batch for the gradient.
        batch_mean = local_mean + jax.lax.stop_gradient(view.mean_over_devices(local_mean) - local_mean)
        pl_mean = state["pl_mean"] + decay * (batch_mean - state["pl_mean"])
        value = weight * jnp.mean((lengths - pl_mean) ** 2)
        return TermResult(value, {"pl_mean": jax.lax.stop_gradient(pl_mean)})

    def init() -> dict[str, jax.Array]:
        return {"pl_mean": jnp.zeros((), jnp.float32)}

    return Term(name, GENERATOR, fn, interval=interval, init=init)


def _build(cfg: Any, context: BuildContext) -> tuple[Term, ...]:
    return (path_length_term(context.name, cfg.weight, cfg.decay, cfg.batch_shrink, cfg.interval),)


register(
    PenaltyPart(
        "path_length", _build, schema=PathLengthConfig, may_be_lazy=True, needs_generator_methods=REQUIRED_METHODS
    )
)
