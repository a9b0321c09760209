"""The per-device update: Goodfellow et al.'s Algorithm 1 as one pure function.

`train_step(parts, batch_size, axis_name, state) -> (state, metrics)` runs `d_steps`
discriminator updates, then one generator update (against the updated D, or, with
simultaneous updates, against the D both players started from). Gradients and metrics are averaged
over `axis_name` with `lax.pmean`, so the same function runs under `jit`
(axis_name=None), `pmap`, `vmap` and `lax.scan`. Every random draw comes from a key
derived from (seed, step, stream, sub-step, example index): a run's numbers do not
depend on how many devices share the batch.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable, Optional

import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax

from gan_jax.data import ToyDataset
from gan_jax.losses import GANLoss
from gan_jax.models import GANModels
from gan_jax.penalties import Penalty


class Stream(enum.IntEnum):
    """What a key is for; folded into every key so no two purposes share randomness."""

    INIT_G = 0
    INIT_D = 1
    D_REAL = 2
    D_LATENT = 3
    G_REAL = 4
    G_LATENT = 5
    EVAL_LATENT = 6
    EVAL_REAL = 7
    D_PENALTY = 8


@flax.struct.dataclass
class PlayerState:
    params: Any  # the trained variables (Flax collection "params")
    model_state: Any  # other collections, e.g. spectral norm's power-iteration vectors
    opt_state: Any


def apply_model(module, player: PlayerState, x: jax.Array, params: Any = None,
                update_stats: bool = False) -> tuple[jax.Array, Any]:
    """Runs `module` with the player's variables (`params` overrides, for gradients).

    Returns (output, model_state); the state is updated only when `update_stats`.
    """
    variables = {"params": player.params if params is None else params, **player.model_state}
    if update_stats and player.model_state:
        out, new_state = module.apply(variables, x, update_stats=True, mutable=list(player.model_state))
        return out, new_state
    return module.apply(variables, x, update_stats=False), player.model_state


def _init_player(module, key: jax.Array, example: jax.Array,
                 optimiser: optax.GradientTransformation) -> PlayerState:
    variables = dict(module.init(key, example))
    params = variables.pop("params")
    return PlayerState(params, variables, optimiser.init(params))


@flax.struct.dataclass
class GANState:
    step: jax.Array  # steps completed
    rng: jax.Array  # the run's base key; keys are derived from it, it never advances
    generator: PlayerState
    discriminator: PlayerState


@dataclass(frozen=True)
class GANParts:
    """Everything static that the compiled step closes over."""

    data: ToyDataset
    models: GANModels
    loss: GANLoss
    g_optimiser: optax.GradientTransformation
    d_optimiser: optax.GradientTransformation
    d_steps: int
    penalty: Optional[Penalty] = None
    # Projects D's parameters after each update (WGAN's weight clipping).
    d_constraint: Optional[Callable[[Any], Any]] = None
    simultaneous: bool = False


def stream_key(rng: jax.Array, step: jax.Array, stream: Stream, substep: Any = 0) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(rng, step), stream), substep)


def sample_batch(sample_one: Callable[[jax.Array], jax.Array], key: jax.Array,
                 first_index: Any, size: int) -> jax.Array:
    """Examples first_index .. first_index+size-1 of the global batch drawn from `key`."""
    indices = first_index + jnp.arange(size)
    return jax.vmap(sample_one)(jax.vmap(jax.random.fold_in, (None, 0))(key, indices))


def init_state(parts: GANParts, seed: int) -> GANState:
    rng = jax.random.PRNGKey(seed)
    models = parts.models
    return GANState(
        step=jnp.zeros((), jnp.int32),
        rng=rng,
        generator=_init_player(models.generator, jax.random.fold_in(rng, Stream.INIT_G),
                               jnp.zeros((1, models.latent_dim)), parts.g_optimiser),
        discriminator=_init_player(models.discriminator, jax.random.fold_in(rng, Stream.INIT_D),
                                   jnp.zeros((1, parts.data.dim)), parts.d_optimiser),
    )


def init_population(parts: GANParts, seeds: Any) -> GANState:
    """Independent replicas, one per seed, stacked on a leading axis (vmap the step over it)."""
    return jax.vmap(lambda seed: init_state(parts, seed))(jnp.asarray(seeds))


def _mean_over_devices(tree: Any, axis_name: Optional[str]) -> Any:
    return lax.pmean(tree, axis_name) if axis_name else tree


def _apply_gradients(optimiser: optax.GradientTransformation, player: PlayerState,
                     grads: Any) -> PlayerState:
    updates, opt_state = optimiser.update(grads, player.opt_state, player.params)
    return player.replace(params=optax.apply_updates(player.params, updates), opt_state=opt_state)


def train_step(parts: GANParts, batch_size: int, axis_name: Optional[str],
               state: GANState) -> tuple[GANState, dict[str, jax.Array]]:
    """One iteration of Algorithm 1 on this device's `batch_size` examples."""
    generator, discriminator = parts.models.generator, parts.models.discriminator
    first_index = lax.axis_index(axis_name) * batch_size if axis_name else 0

    def draw(stream: Stream, substep: Any, sample_one: Callable) -> jax.Array:
        return sample_batch(sample_one, stream_key(state.rng, state.step, stream, substep),
                            first_index, batch_size)

    def d_update(player: PlayerState, substep: jax.Array):
        real = draw(Stream.D_REAL, substep, parts.data.sample_one)
        fake, _ = apply_model(generator, state.generator,
                              draw(Stream.D_LATENT, substep, parts.models.sample_latent))
        penalty_keys = draw(Stream.D_PENALTY, substep, lambda key: key)

        def loss_fn(params):
            # One pass over real and fake together: half the kernel launches.
            out, model_state = apply_model(discriminator, player, jnp.concatenate([real, fake]),
                                           params, update_stats=True)
            real_out, fake_out = jnp.split(out, 2)
            loss = parts.loss.discriminator(real_out, fake_out)
            penalty = 0.0
            if parts.penalty is not None:
                d_fn = lambda x: apply_model(discriminator, player, x, params)[0]  # noqa: E731
                penalty = parts.penalty(d_fn, real, fake, penalty_keys)
            return loss + penalty, (loss, penalty, real_out, fake_out, model_state)

        (_, (loss, penalty, real_out, fake_out, model_state)), grads = jax.value_and_grad(
            loss_fn, has_aux=True)(player.params)
        grads = _mean_over_devices(grads, axis_name)
        player = _apply_gradients(parts.d_optimiser, player.replace(model_state=model_state), grads)
        if parts.d_constraint is not None:
            player = player.replace(params=parts.d_constraint(player.params))
        metrics = {
            "d_loss": loss,
            "d_penalty": jnp.asarray(penalty, jnp.float32),
            "d_real": jnp.mean(jax.nn.sigmoid(real_out)),
            "d_fake": jnp.mean(jax.nn.sigmoid(fake_out)),
            "d_real_raw": jnp.mean(real_out),
            "d_fake_raw": jnp.mean(fake_out),
            "d_grad_norm": optax.tree.norm(grads),
        }
        return player, metrics

    d_player, d_metrics = lax.scan(d_update, state.discriminator, jnp.arange(parts.d_steps))
    d_metrics = jax.tree.map(lambda m: m[-1], d_metrics)

    real = draw(Stream.G_REAL, 0, parts.data.sample_one)
    latent = draw(Stream.G_LATENT, 0, parts.models.sample_latent)

    # Alternating: G plays against the D just updated; simultaneous: against the old one.
    opponent = state.discriminator if parts.simultaneous else d_player

    def g_loss_fn(params):
        fake, g_model_state = apply_model(generator, state.generator, latent, params, update_stats=True)
        fake_out, _ = apply_model(discriminator, opponent, fake)
        # Only relativistic losses read real_out; XLA drops this pass for the others.
        real_out, _ = apply_model(discriminator, opponent, real)
        return parts.loss.generator(real_out, fake_out), g_model_state

    (g_loss, g_model_state), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(
        state.generator.params)
    g_grads = _mean_over_devices(g_grads, axis_name)
    g_player = _apply_gradients(parts.g_optimiser, state.generator.replace(model_state=g_model_state),
                                g_grads)

    metrics = {**d_metrics, "g_loss": g_loss, "g_grad_norm": optax.tree.norm(g_grads)}
    new_state = GANState(state.step + 1, state.rng, g_player, d_player)
    return new_state, _mean_over_devices(metrics, axis_name)


def train_steps(parts: GANParts, batch_size: int, axis_name: Optional[str],
                state: GANState, num_steps: int) -> tuple[GANState, dict[str, jax.Array]]:
    """`num_steps` iterations in one program; metrics come back stacked, [num_steps]."""
    def body(carry, _):
        return train_step(parts, batch_size, axis_name, carry)

    return lax.scan(body, state, None, length=num_steps)


def generate(parts: GANParts, generator: PlayerState, rng: jax.Array, num_samples: int) -> jax.Array:
    """The evaluation samples: fixed latents, so successive evaluations are comparable."""
    latent = sample_batch(parts.models.sample_latent, jax.random.fold_in(rng, Stream.EVAL_LATENT),
                          0, num_samples)
    return apply_model(parts.models.generator, generator, latent)[0]


def real_samples(parts: GANParts, rng: jax.Array, num_samples: int) -> jax.Array:
    return sample_batch(parts.data.sample_one, jax.random.fold_in(rng, Stream.EVAL_REAL),
                        0, num_samples)
