"""The per-device update: Goodfellow et al.'s Algorithm 1 as one pure function.

`train_step(parts, batch_size, axis_name, state, real_batches) -> (state, metrics)` runs
`d_steps` discriminator updates, then one generator update (against the updated D, or,
with simultaneous updates, against the D both players started from), then moves the
generator's exponential moving average (EMA), if any. Gradients and metrics are averaged
over `axis_name` with `lax.pmean`, so the same function runs under `jit`
(axis_name=None), `shard_map` and `pmap` (gan_jax/parallel.py), `vmap` and `lax.scan`.
Every random draw comes from a key derived from (seed, step, stream, sub-step, example
index): a run's numbers do not depend on how many devices share the batch. Toy data is drawn the same way, inside the
step; image batches come from the host, {"images": [d_steps, batch_size, H, W, C]} per step,
with "labels" [d_steps, batch_size] for a class-conditional model (whose generated
examples' classes are drawn uniformly, per example, like the latents). With DiffAugment
(`GANParts.augment`), every image D sees, real or generated, in either player's step and
in the penalty, is augmented first, with per-example keys.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax

from gan_jax.data import Dataset, SampledDataset
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
    D_LABEL = 9
    G_LABEL = 10
    D_AUGMENT_REAL = 11
    D_AUGMENT_FAKE = 12
    G_AUGMENT_REAL = 13
    G_AUGMENT_FAKE = 14


@flax.struct.dataclass
class PlayerState:
    params: Any  # the trained variables (Flax collection "params")
    model_state: Any  # other collections, e.g. spectral norm's power-iteration vectors
    opt_state: Any

    if TYPE_CHECKING:  # flax.struct.dataclass adds it; mypy cannot see that

        def replace(self, **changes: Any) -> PlayerState: ...


def apply_model(
    module,
    player: PlayerState,
    x: jax.Array,
    params: Any = None,
    update_stats: bool = False,
    axis_name: str | None = None,
    labels: jax.Array | None = None,
) -> tuple[jax.Array, Any]:
    """Runs `module` with the player's variables (`params` overrides, for gradients), and
    the examples' classes when given (a class-conditional model).

    Returns (output, model_state); the state is updated only when `update_stats`.
    BatchNorm averages its statistics over `axis_name`'s devices.
    """
    variables = {"params": player.params if params is None else params, **player.model_state}
    conditioned = {} if labels is None else {"labels": labels}
    if update_stats and player.model_state:
        out, new_state = module.apply(
            variables, x, update_stats=True, axis_name=axis_name, mutable=list(player.model_state), **conditioned
        )
        return out, new_state
    return module.apply(variables, x, update_stats=False, axis_name=axis_name, **conditioned), player.model_state


def _init_player(
    module, key: jax.Array, example: jax.Array, optimiser: optax.GradientTransformation, labels: jax.Array | None
) -> PlayerState:
    variables = dict(module.init(key, example, **({} if labels is None else {"labels": labels})))
    params = variables.pop("params")
    return PlayerState(params, variables, optimiser.init(params))


@flax.struct.dataclass
class GANState:
    step: jax.Array  # steps completed
    rng: jax.Array  # the run's base key; keys are derived from it, it never advances
    generator: PlayerState
    discriminator: PlayerState
    generator_ema: Any = None  # EMA of G's params (None without EMA); samples come from it


@dataclass(frozen=True)
class GANParts:
    """Everything static that the compiled step closes over."""

    data: Dataset
    models: GANModels
    loss: GANLoss
    g_optimiser: optax.GradientTransformation
    d_optimiser: optax.GradientTransformation
    d_steps: int
    penalty: Penalty | None = None
    # The penalty's points take the generated examples' classes (R2), else the real ones'.
    penalty_on_generated: bool = False
    # DiffAugment: (images, per-example keys) -> augmented images; None: off.
    augment: Callable[[jax.Array, jax.Array], jax.Array] | None = None
    # Projects D's parameters after each update (WGAN's weight clipping).
    d_constraint: Callable[[Any], Any] | None = None
    simultaneous: bool = False
    ema_decay: float | None = None
    ema_start: int = 0  # steps before the EMA starts averaging (it copies G until then)


def stream_key(rng: jax.Array, step: jax.Array, stream: Stream, substep: Any = 0) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(rng, step), stream), substep)


def sample_batch(
    sample_one: Callable[[jax.Array], jax.Array], key: jax.Array, first_index: Any, size: int
) -> jax.Array:
    """Examples first_index .. first_index+size-1 of the global batch drawn from `key`."""
    indices = first_index + jnp.arange(size)
    return jax.vmap(sample_one)(jax.vmap(jax.random.fold_in, (None, 0))(key, indices))


def init_state(parts: GANParts, seed: int) -> GANState:
    rng = jax.random.PRNGKey(seed)
    models = parts.models
    labels = jnp.zeros((2 * models.d_pack,), jnp.int32) if models.conditional else None
    generator = _init_player(
        models.generator,
        jax.random.fold_in(rng, Stream.INIT_G),
        jnp.zeros((2, models.latent_dim)),
        parts.g_optimiser,
        None if labels is None else labels[:2],
    )
    return GANState(
        step=jnp.zeros((), jnp.int32),
        rng=rng,
        generator=generator,
        discriminator=_init_player(
            models.discriminator,
            jax.random.fold_in(rng, Stream.INIT_D),
            jnp.zeros((2 * models.d_pack, *parts.data.shape)),  # two of D's packs
            parts.d_optimiser,
            labels,
        ),
        generator_ema=generator.params if parts.ema_decay is not None else None,
    )


def init_population(parts: GANParts, seeds: Any) -> GANState:
    """Independent replicas, one per seed, stacked on a leading axis (vmap the step over it)."""
    return jax.vmap(lambda seed: init_state(parts, seed))(jnp.asarray(seeds))


def _mean_over_devices(tree: Any, axis_name: str | None) -> Any:
    return lax.pmean(tree, axis_name) if axis_name else tree


def _apply_gradients(optimiser: optax.GradientTransformation, player: PlayerState, grads: Any) -> PlayerState:
    updates, opt_state = optimiser.update(grads, player.opt_state, player.params)
    return player.replace(params=optax.apply_updates(player.params, updates), opt_state=opt_state)


def _moving_average(parts: GANParts, state: GANState, params: Any) -> Any:
    if parts.ema_decay is None:
        return None
    decay = jnp.where(state.step >= parts.ema_start, parts.ema_decay, 0.0)
    return jax.tree.map(lambda average, p: decay * average + (1.0 - decay) * p, state.generator_ema, params)


def _class_loss(class_logits: jax.Array | None, labels: jax.Array | None) -> jax.Array:
    """ACGAN's auxiliary loss (Odena et al. 2017): the mean cross-entropy of D's class
    logits; 0 for a D without them."""
    if class_logits is None or labels is None:
        return jnp.zeros((), jnp.float32)
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, labels))


def train_step(
    parts: GANParts,
    batch_size: int,
    axis_name: str | None,
    state: GANState,
    real_batches: dict[str, jax.Array] | None = None,
) -> tuple[GANState, dict[str, jax.Array]]:
    """One iteration of Algorithm 1 on this device's `batch_size` examples.

    `real_batches`: this device's image batches, one per D step (the G step, which reads real
    data only for relativistic losses, reuses the last), {"images": ..., "labels": ...};
    None for toy data.
    """
    models = parts.models
    generator, discriminator = models.generator, models.discriminator
    first_index = lax.axis_index(axis_name) * batch_size if axis_name else 0

    def draw(stream: Stream, substep: Any, sample_one: Callable) -> jax.Array:
        return sample_batch(sample_one, stream_key(state.rng, state.step, stream, substep), first_index, batch_size)

    def real_batch(stream: Stream, substep: Any) -> tuple[jax.Array, jax.Array | None]:
        """(images, labels or None) of D step `substep`'s real batch."""
        if real_batches is None:
            # No batches given: the data is sampled here (host_batches is False).
            return draw(stream, substep, cast(SampledDataset, parts.data).sample_one), None
        return real_batches["images"][substep], real_batches["labels"][substep] if models.conditional else None

    def generated_labels(stream: Stream, substep: Any) -> jax.Array | None:
        return draw(stream, substep, models.sample_label) if models.conditional else None

    def augmented(images: jax.Array, stream: Stream, substep: Any) -> jax.Array:
        if parts.augment is None:
            return images
        return parts.augment(images, draw(stream, substep, lambda key: key))

    def d_update(player: PlayerState, substep: int):
        real, real_labels = real_batch(Stream.D_REAL, substep)
        fake_labels = generated_labels(Stream.D_LABEL, substep)
        fake, _ = apply_model(
            generator,
            state.generator,
            draw(Stream.D_LATENT, substep, models.sample_latent),
            axis_name=axis_name,
            labels=fake_labels,
        )
        real = augmented(real, Stream.D_AUGMENT_REAL, substep)
        fake = augmented(fake, Stream.D_AUGMENT_FAKE, substep)
        penalty_keys = draw(Stream.D_PENALTY, substep, lambda key: key)
        both_labels = None
        if real_labels is not None and fake_labels is not None:
            both_labels = jnp.concatenate([real_labels, fake_labels])

        def discriminate(params):
            if models.d_batch_norm:
                # Separate passes, as the DCGAN reference does: D's batch statistics then
                # match the all-generated batch it judges in G's step.
                real_out, model_state = apply_model(
                    discriminator, player, real, params, update_stats=True, axis_name=axis_name, labels=real_labels
                )
                fake_out, model_state = apply_model(
                    discriminator,
                    player.replace(model_state=model_state),
                    fake,
                    params,
                    update_stats=True,
                    axis_name=axis_name,
                    labels=fake_labels,
                )
                return real_out, fake_out, model_state
            # One pass over real and fake together: half the kernel launches.
            out, model_state = apply_model(
                discriminator,
                player,
                jnp.concatenate([real, fake]),
                params,
                update_stats=True,
                axis_name=axis_name,
                labels=both_labels,
            )
            return *jnp.split(out, 2), model_state

        def loss_fn(params):
            real_out, fake_out, model_state = discriminate(params)
            (real_out, real_classes), (fake_out, fake_classes) = map(models.split_d_output, (real_out, fake_out))
            loss = parts.loss.discriminator(real_out, fake_out)
            class_loss = _class_loss(real_classes, real_labels) + _class_loss(fake_classes, fake_labels)
            penalty: jax.Array | float = 0.0
            if parts.penalty is not None:
                point_labels = fake_labels if parts.penalty_on_generated else real_labels

                def d_fn(x):
                    out = apply_model(discriminator, player, x, params, axis_name=axis_name, labels=point_labels)[0]
                    return models.split_d_output(out)[0]

                penalty = parts.penalty(d_fn, real, fake, penalty_keys)
            if models.conditioning == "acgan":
                loss = loss + models.class_loss_weight * class_loss
            return loss + penalty, (loss, penalty, class_loss, real_out, fake_out, model_state)

        (_, (loss, penalty, class_loss, real_out, fake_out, model_state)), grads = jax.value_and_grad(
            loss_fn, has_aux=True
        )(player.params)
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
        if models.conditioning == "acgan":
            metrics["d_class_loss"] = class_loss
        return player, metrics

    # A Python loop, not lax.scan: XLA's CPU backend ran DCGAN's D step 8x slower inside
    # a loop body (experiments/throughput/README.md). d_steps is small.
    d_player = state.discriminator
    for substep in range(parts.d_steps):
        d_player, d_metrics = d_update(d_player, substep)

    g_real, g_real_labels = real_batch(Stream.G_REAL, 0 if real_batches is None else parts.d_steps - 1)
    g_real = augmented(g_real, Stream.G_AUGMENT_REAL, 0)
    latent = draw(Stream.G_LATENT, 0, models.sample_latent)
    g_labels = generated_labels(Stream.G_LABEL, 0)

    # Alternating: G plays against the D just updated; simultaneous: against the old one.
    opponent = state.discriminator if parts.simultaneous else d_player

    def g_loss_fn(params):
        fake, g_model_state = apply_model(
            generator, state.generator, latent, params, update_stats=True, axis_name=axis_name, labels=g_labels
        )
        fake = augmented(fake, Stream.G_AUGMENT_FAKE, 0)
        fake_out, fake_classes = models.split_d_output(
            apply_model(discriminator, opponent, fake, axis_name=axis_name, labels=g_labels)[0]
        )
        # Only relativistic losses read real_out; XLA drops this pass for the others.
        real_out, _ = models.split_d_output(
            apply_model(discriminator, opponent, g_real, axis_name=axis_name, labels=g_real_labels)[0]
        )
        g_loss = parts.loss.generator(real_out, fake_out)
        if models.conditioning == "acgan":
            g_loss = g_loss + models.class_loss_weight * _class_loss(fake_classes, g_labels)
        return g_loss, g_model_state

    (g_loss, g_model_state), g_grads = jax.value_and_grad(g_loss_fn, has_aux=True)(state.generator.params)
    g_grads = _mean_over_devices(g_grads, axis_name)
    g_player = _apply_gradients(parts.g_optimiser, state.generator.replace(model_state=g_model_state), g_grads)

    metrics = {**d_metrics, "g_loss": g_loss, "g_grad_norm": optax.tree.norm(g_grads)}
    new_state = GANState(state.step + 1, state.rng, g_player, d_player, _moving_average(parts, state, g_player.params))
    return new_state, _mean_over_devices(metrics, axis_name)


def train_steps(
    parts: GANParts,
    batch_size: int,
    axis_name: str | None,
    state: GANState,
    num_steps: int,
    real_batches: dict[str, jax.Array] | None = None,
) -> tuple[GANState, dict[str, jax.Array]]:
    """`num_steps` iterations in one program; metrics come back stacked, [num_steps].

    `real_batches`: None, or image batches {"images": [num_steps, d_steps, batch_size, H, W, C],
    "labels": [num_steps, d_steps, batch_size]}.
    """

    def body(carry, real_for_step):
        return train_step(parts, batch_size, axis_name, carry, real_for_step)

    if num_steps == 1:  # no loop: XLA's CPU convolutions run ~8x slower inside one
        state, metrics = body(state, None if real_batches is None else jax.tree.map(lambda x: x[0], real_batches))
        return state, jax.tree.map(lambda m: m[None], metrics)
    return lax.scan(body, state, real_batches, length=num_steps)


def sampling_generator(state: GANState) -> PlayerState:
    """G as samples are drawn from it: with the EMA's parameters when there is one."""
    if state.generator_ema is None:
        return state.generator
    return state.generator.replace(params=state.generator_ema)


def evaluation_labels(parts: GANParts, first_index: Any, num_samples: int) -> jax.Array | None:
    """The classes of evaluation samples first_index ..: index mod classes (every class
    equally often); None for an unconditional model."""
    if not parts.models.conditional:
        return None
    return (first_index + jnp.arange(num_samples)) % parts.models.num_classes


def generate(parts: GANParts, generator: PlayerState, rng: jax.Array, first_index: Any, num_samples: int) -> jax.Array:
    """Evaluation samples first_index .. first_index+num_samples-1: fixed latents (one per
    index), so successive evaluations are comparable and any chunking gives the same samples;
    a conditional model's sample i is of class i mod classes."""
    latent = sample_batch(
        parts.models.sample_latent, jax.random.fold_in(rng, Stream.EVAL_LATENT), first_index, num_samples
    )
    labels = evaluation_labels(parts, first_index, num_samples)
    return apply_model(parts.models.generator, generator, latent, labels=labels)[0]


def generate_class_rows(parts: GANParts, generator: PlayerState, rng: jax.Array, columns: int) -> jax.Array:
    """[classes * columns, ...]: row c is class c, column j the latent of evaluation sample j
    (the same latents in every row), for a conditional model's sample grid."""
    latent = sample_batch(parts.models.sample_latent, jax.random.fold_in(rng, Stream.EVAL_LATENT), 0, columns)
    classes = parts.models.num_classes
    labels = jnp.repeat(jnp.arange(classes), columns)
    return apply_model(parts.models.generator, generator, jnp.tile(latent, (classes, 1)), labels=labels)[0]


def real_samples(parts: GANParts, rng: jax.Array, num_samples: int) -> jax.Array:
    """Real examples drawn on the device (a dataset with host_batches False)."""
    return sample_batch(
        cast(SampledDataset, parts.data).sample_one, jax.random.fold_in(rng, Stream.EVAL_REAL), 0, num_samples
    )
