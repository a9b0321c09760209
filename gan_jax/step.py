"""The per-device update: Goodfellow et al.'s Algorithm 1 as one pure function of phases.

`train_step(parts, batch_size, axis_name, state, real_batches) -> (state, metrics)` runs one
training iteration as a schedule of phases:

    D main        `d_steps` times: D's update on the sum of its main terms
    D lazy        on iterations 0, N, 2N, ...: D's update on its lazy terms x N (if any)
    G main        G's update on the sum of its main terms, against the updated D (or, with
                  simultaneous updates, against the D both players started from)
    G lazy        likewise for G's lazy terms
    EMA           G's moving average (gan_jax/ema.py), if any

The terms (gan_jax/terms.py) are what the parts contributed: the adversarial loss, the
class loss of a conditional D, the regularisers; this module names none of them. Each
term sees D's outputs on the main batch, the batches, D (or G) as a function, its own
per-example keys and its own state (`GANState.terms`), which it returns updated.

With `train.grad_accum` M, each main update averages the gradients of M micro-batches of
batch_size / M examples (lax.scan: one micro-batch's activations live at a time); the
per-example draws are those of the whole batch, so the update equals one batch's to float
tolerance for a D and G without batch norm and a loss that is a mean over examples
(batch norm then normalises each micro-batch over itself; a relativistic loss, and LeCam's
moving averages, follow each micro-batch's own means).

Gradients, metrics and the terms' states are averaged over `axis_name` with `lax.pmean`,
so the same function runs under `jit` (axis_name=None), `shard_map` and `pmap`
(gan_jax/parallel.py), `vmap` and `lax.scan`. Every random draw comes from a key derived
from (seed, step, stream, sub-step, example index): a run's numbers do not depend on how
many devices share the batch. Toy data is drawn the same way, inside the step; image
batches come from the host, {"images": [d_steps, batch_size, H, W, C]} per step, with
"labels" [d_steps, batch_size] for a class-conditional model (whose generated examples'
classes are drawn uniformly, per example, like the latents). With augmentation
(`GANParts.augment`), every image D sees, real or generated, in either player's update
and at the regularisers' points, is augmented first, with per-example keys.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, cast

import flax
import jax
import jax.numpy as jnp
import optax
from jax import lax

from gan_jax import terms as terms_lib
from gan_jax.data import Dataset, SampledDataset
from gan_jax.ema import EMA
from gan_jax.models import GANModels
from gan_jax.schedules import Schedules
from gan_jax.terms import DISCRIMINATOR, GENERATOR, DView, GView, Term


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
    D_PENALTY = 8  # D's terms' keys
    D_LABEL = 9
    G_LABEL = 10
    D_AUGMENT_REAL = 11
    D_AUGMENT_FAKE = 12
    G_AUGMENT_REAL = 13
    G_AUGMENT_FAKE = 14
    D_LAZY = 15  # D's lazy phase: its latents, classes, augmentations and terms' keys
    G_LAZY = 16
    G_TERM = 17  # G's terms' keys
    G_OWN = 18  # G's own draws in training (noise, style mixing): D's sub-steps, then G's main and lazy


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
    method: str | None = None,
    example_keys: jax.Array | None = None,
) -> tuple[jax.Array, Any]:
    """Runs `module` (or its `method`) with the player's variables (`params` overrides, for
    gradients), and the examples' classes when given (a class-conditional model).

    `example_keys`: one PRNG key per example, for a model that draws randomness of its own.

    Returns (output, model_state); the state is updated only when `update_stats`.
    BatchNorm averages its statistics over `axis_name`'s devices.
    """
    variables = {"params": player.params if params is None else params, **player.model_state}
    extra: dict[str, Any] = {} if labels is None else {"labels": labels}
    if method is not None:
        extra["method"] = method
    if example_keys is not None:
        extra["example_keys"] = example_keys
    if update_stats and player.model_state:
        out, new_state = module.apply(
            variables, x, update_stats=True, axis_name=axis_name, mutable=list(player.model_state), **extra
        )
        return out, new_state
    return module.apply(variables, x, update_stats=False, axis_name=axis_name, **extra), player.model_state


def _init_player(
    module,
    key: jax.Array,
    example: jax.Array,
    optimiser: optax.GradientTransformation,
    labels: jax.Array | None,
    weights: Any = None,
) -> PlayerState:
    """A player's parameters, model state and optimiser state: `weights` (variables loaded from a
    file) when given, else the module's initialisation from `key`."""
    if weights is not None:
        variables = dict(jax.tree.map(jnp.asarray, weights))
    else:
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
    # The terms' states by term name (a lazy term's also holds its latest value, "last").
    terms: Any = field(default_factory=dict)
    # A population member's values of the keys it varies ({"optim.lr": ..., "loss.name":
    # index}; gan_jax/population.py): state, so PBT can copy and perturb them. {}: none.
    hyperparams: Any = field(default_factory=dict)

    if TYPE_CHECKING:

        def replace(self, **changes: Any) -> GANState: ...


@dataclass(frozen=True)
class GANParts:
    """Everything static that the compiled step closes over."""

    data: Dataset
    models: GANModels
    g_optimiser: optax.GradientTransformation
    d_optimiser: optax.GradientTransformation
    d_steps: int
    terms: tuple[Term, ...]  # both players' objectives, in the order they are summed
    # (images, per-example keys, the terms' states, the steps completed) -> augmented images; None: off.
    augment: Callable[[jax.Array, jax.Array, dict[str, Any], Any], jax.Array] | None = None
    # (D's params, the iteration's settings) -> params, after each D update (WGAN's weight clipping).
    d_constraint: Callable[[Any, Any], Any] | None = None
    simultaneous: bool = False
    ema: EMA | None = None
    grad_accum: int = 1  # micro-batches per main update
    # the iteration's settings -> the optimiser settings that vary (None: none do); the
    # schedules and population keys themselves, whose values each logged row carries.
    g_hyperparams: Callable[[Any], dict[str, jax.Array]] | None = None
    d_hyperparams: Callable[[Any], dict[str, jax.Array]] | None = None
    schedules: Schedules = field(default_factory=Schedules)


def stream_key(rng: jax.Array, step: jax.Array, stream: Stream, substep: Any = 0) -> jax.Array:
    return jax.random.fold_in(jax.random.fold_in(jax.random.fold_in(rng, step), stream), substep)


def sample_batch(
    sample_one: Callable[[jax.Array], jax.Array], key: jax.Array, first_index: Any, size: int
) -> jax.Array:
    """Examples first_index .. first_index+size-1 of the global batch drawn from `key`."""
    indices = first_index + jnp.arange(size)
    return jax.vmap(sample_one)(jax.vmap(jax.random.fold_in, (None, 0))(key, indices))


def initial_term_states(parts: GANParts) -> dict[str, Any]:
    """GANState.terms of a fresh run: each stateful term's initial value, and each lazy
    term's latest value (0 until it first runs)."""
    states = {}
    for term in parts.terms:
        own = {} if term.init is None else {"state": term.init()}
        if term.lazy:
            states[term.name] = {"last": jnp.zeros((), jnp.float32), **own}
        elif term.init is not None:
            states[term.name] = term.init()
    return states


def init_state(parts: GANParts, seed: int, hyperparams: Any = None) -> GANState:
    rng = jax.random.PRNGKey(seed)
    models = parts.models
    labels = jnp.zeros((2 * models.d_pack,), jnp.int32) if models.conditional else None
    generator = _init_player(
        models.generator,
        jax.random.fold_in(rng, Stream.INIT_G),
        jnp.zeros((2, models.latent_dim)),
        parts.g_optimiser,
        None if labels is None else labels[:2],
        models.generator_weights,
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
            models.discriminator_weights,
        ),
        generator_ema=generator.params if parts.ema is not None else None,
        terms=initial_term_states(parts),
        hyperparams=dict(hyperparams or {}),
    )


def init_population(parts: GANParts, seeds: Any, hyperparams: Any = None) -> GANState:
    """Independent replicas, one per seed, stacked on a leading axis (vmap the step over it);
    `hyperparams`: each varied key's value per replica ({key: [replicas]}, population.numeric_values)."""
    hyper = {k: jnp.asarray(v) for k, v in (hyperparams or {}).items()}
    return jax.vmap(lambda seed, values: init_state(parts, seed, values))(jnp.asarray(seeds), hyper)


def _mean_over_devices(tree: Any, axis_name: str | None) -> Any:
    return lax.pmean(tree, axis_name) if axis_name else tree


def _apply_gradients(
    optimiser: optax.GradientTransformation, player: PlayerState, grads: Any, hyperparams: dict[str, Any] | None = None
) -> PlayerState:
    """One optimiser update; `hyperparams`: the scheduled settings to use (set in its state first)."""
    opt_state = player.opt_state
    if hyperparams:
        opt_state = opt_state._replace(hyperparams={**opt_state.hyperparams, **hyperparams})
    updates, opt_state = optimiser.update(grads, opt_state, player.params)
    return player.replace(params=optax.apply_updates(player.params, updates), opt_state=opt_state)


def _sum(values: list[Any]) -> Any:
    """values[0] + values[1] + ..., left to right (the order fixes the float sums); 0.0 for none."""
    total: Any = 0.0
    for i, value in enumerate(values):
        total = value if i == 0 else total + value
    return total


@dataclass(frozen=True)
class _Objective:
    """A player's terms summed, in order: "loss" terms, then regularisers (each logged as
    <prefix>_<name>), x `scale` (a lazy phase's interval)."""

    terms: tuple[Term, ...]
    prefix: str  # "d" or "g"
    scale: int = 1

    def per_term_views(self, views: dict[str, Any], states: dict[str, Any]) -> tuple[Any, dict, dict]:
        """(value to differentiate, the terms' new states, {"loss", "penalty", "terms": metrics});
        `views`: each term's view (they differ in its keys)."""
        losses, regularisers, new_states, metrics = [], [], {}, {}
        for term in self.terms:
            stored = states.get(term.name)
            own = stored.get("state") if term.lazy and stored is not None else stored
            result = term.fn(views[term.name], own)
            value = result.value
            if term.kind == "loss":
                losses.append(value)
            elif term.kind == "regulariser":
                regularisers.append(value)
                metrics[f"{self.prefix}_{term.name}"] = jnp.asarray(value, jnp.float32)
            metrics.update(result.metrics)
            if term.lazy:
                new_states[term.name] = {
                    "last": jnp.asarray(value, jnp.float32),
                    **({} if result.state is None else {"state": result.state}),
                }
            elif result.state is not None:
                new_states[term.name] = result.state
        loss, regularisation = _sum(losses), _sum(regularisers)
        total = loss + regularisation
        if self.scale != 1:
            total = total * self.scale
        return total, new_states, {"loss": loss, "penalty": regularisation, "terms": metrics}


def _accumulate(
    loss_fn: Callable[[Any, Any, Any], tuple[Any, tuple[Any, Any]]],
    params: Any,
    model_state: Any,
    inputs: Any,
    micro_batches: int,
) -> tuple[Any, Any, Any]:
    """(grads, aux, model_state) of `loss_fn(params, inputs, model_state) -> (value, (aux,
    model_state))`, inputs being per-example arrays [n, ...]: with micro_batches M > 1 the
    gradients and aux values are averaged over M equal slices of the inputs, computed one
    after another, and the model state (batch norm's statistics) is threaded through them."""
    grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
    if micro_batches == 1:
        (_, (aux, model_state)), grads = grad_fn(params, inputs, model_state)
        return grads, aux, model_state
    sliced = jax.tree.map(lambda x: x.reshape(micro_batches, x.shape[0] // micro_batches, *x.shape[1:]), inputs)

    def add_micro_batch(carry, micro):
        grads_sum, aux_sum, model_state = carry
        (_, (aux, model_state)), grads = grad_fn(params, micro, model_state)
        return (jax.tree.map(jnp.add, grads_sum, grads), jax.tree.map(jnp.add, aux_sum, aux), model_state), None

    # Every micro-batch inside the scan, from zeros: a first one outside it would be free to
    # run beside the others, and the peak memory would not fall (measured: M=2 did not).
    (_, (aux_shape, _)), grads_shape = jax.eval_shape(
        grad_fn, params, jax.tree.map(lambda x: x[0], sliced), model_state
    )
    zeros = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), (grads_shape, aux_shape))
    (grads, aux, model_state), _ = lax.scan(add_micro_batch, (*zeros, model_state), sliced)
    mean = lambda x: x / micro_batches if jnp.issubdtype(x.dtype, jnp.inexact) else x // micro_batches  # noqa: E731
    return jax.tree.map(mean, (grads, aux)) + (model_state,)


def _term_keys(base: jax.Array, terms: tuple[Term, ...]) -> dict[str, jax.Array]:
    """Per-example keys for each term: the first regulariser takes the stream's own keys
    (those the single penalty always had), the others fold in their rank."""
    keys, rank = {}, 0
    for term in terms:
        if term.kind == "regulariser":
            keys[term.name] = base if rank == 0 else jax.vmap(jax.random.fold_in, (0, None))(base, rank)
            rank += 1
        else:
            keys[term.name] = jax.vmap(jax.random.fold_in, (0, None))(base, 1000 + rank)
    return keys


def _merge_states(states: dict[str, Any], new: dict[str, Any], terms: tuple[Term, ...], axis_name: str | None):
    """`states` with the terms' new states, those with mean_state averaged over the devices."""
    averaged = {t.name for t in terms if t.mean_state}
    return {
        **states,
        **{name: _mean_over_devices(value, axis_name) if name in averaged else value for name, value in new.items()},
    }


def _lazy_metrics(prefix: str, lazy_terms: tuple[Term, ...], states: dict[str, Any]) -> dict[str, jax.Array]:
    """What a lazy term logs at every step: its latest value and its state's scalars."""
    metrics = {}
    for term in lazy_terms:
        stored = states[term.name]
        metrics[f"{prefix}_{term.name}"] = stored["last"]
        for key, value in (stored.get("state") or {}).items():
            if jnp.ndim(value) == 0:
                metrics[f"{term.name}_{key}"] = value
    return metrics


@dataclass(frozen=True)
class _Iteration:
    """What every phase of one iteration reads: the parts, this device's share of the batch,
    the state the iteration started from, and the draws keyed by (seed, step, stream)."""

    parts: GANParts
    batch_size: int
    axis_name: str | None
    state: GANState
    real_batches: dict[str, jax.Array] | None
    settings: dict[str, jax.Array]  # the values of the settings that vary, at this iteration

    @property
    def models(self) -> GANModels:
        return self.parts.models

    def mean_over_devices(self, tree: Any) -> Any:
        return _mean_over_devices(tree, self.axis_name)

    @property
    def g_hyperparams(self) -> dict[str, jax.Array] | None:
        """G's optimiser settings at this step, where a schedule moves them."""
        return None if self.parts.g_hyperparams is None else self.parts.g_hyperparams(self.settings)

    @property
    def d_hyperparams(self) -> dict[str, jax.Array] | None:
        return None if self.parts.d_hyperparams is None else self.parts.d_hyperparams(self.settings)

    def draw(self, stream: Stream, substep: Any, sample_one: Callable) -> jax.Array:
        first_index = lax.axis_index(self.axis_name) * self.batch_size if self.axis_name else 0
        key = stream_key(self.state.rng, self.state.step, stream, substep)
        return sample_batch(sample_one, key, first_index, self.batch_size)

    def keys(self, stream: Stream, substep: Any) -> jax.Array:
        return self.draw(stream, substep, lambda key: key)

    def real_batch(self, stream: Stream, substep: Any) -> tuple[jax.Array, jax.Array | None]:
        """(images, labels or None) of D step `substep`'s real batch."""
        if self.real_batches is None:
            # No batches given: the data is sampled here (host_batches is False).
            return self.draw(stream, substep, cast(SampledDataset, self.parts.data).sample_one), None
        labels = self.real_batches["labels"][substep] if self.models.conditional else None
        return self.real_batches["images"][substep], labels

    def last_real_batch(self, stream: Stream) -> tuple[jax.Array, jax.Array | None]:
        """The real batch of the iteration's last D step (G's and the lazy phases')."""
        return self.real_batch(stream, 0 if self.real_batches is None else self.parts.d_steps - 1)

    def generated_labels(self, stream: Stream, substep: Any) -> jax.Array | None:
        return self.draw(stream, substep, self.models.sample_label) if self.models.conditional else None

    def augment_keys(self, stream: Stream, substep: Any) -> jax.Array | None:
        return self.keys(stream, substep) if self.parts.augment is not None else None

    @property
    def augment(self) -> Callable[[jax.Array, jax.Array], jax.Array] | None:
        """The augmentation as this iteration applies it: with the states it started with (ADA's p)."""
        pipeline = self.parts.augment
        return (
            None if pipeline is None else lambda images, keys: pipeline(images, keys, self.state.terms, self.settings)
        )

    def augmented(self, images: jax.Array, example_keys: jax.Array | None) -> jax.Array:
        if self.augment is None or example_keys is None:
            return images
        return self.augment(images, example_keys)

    def generator_keys(self, substep: Any) -> jax.Array | None:
        """Per-example keys for G's own draws (None for a G without any)."""
        return self.keys(Stream.G_OWN, substep) if self.models.generator_keys else None

    def generate_fixed(
        self, latent: jax.Array, labels: jax.Array | None, example_keys: jax.Array | None = None
    ) -> jax.Array:
        """G as D's updates see it: the parameters the iteration started with."""
        return apply_model(
            self.models.generator,
            self.state.generator,
            latent,
            axis_name=self.axis_name,
            labels=labels,
            example_keys=example_keys,
        )[0]

    def d_of(self, player: PlayerState, params: Any) -> Callable[[jax.Array, jax.Array | None], jax.Array]:
        """D's raw adversarial outputs as a function of its input, with `params`."""

        def d(x, labels):
            out = apply_model(self.models.discriminator, player, x, params, axis_name=self.axis_name, labels=labels)[0]
            return self.models.split_d_output(out)[0]

        return d

    def discriminate(self, player: PlayerState, params: Any, real, fake, real_labels, fake_labels):
        """D's outputs on the real and the generated batch, and its new model state."""
        discriminator, axis_name = self.models.discriminator, self.axis_name
        if self.models.d_batch_norm:
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
        both_labels = None
        if real_labels is not None and fake_labels is not None:
            both_labels = jnp.concatenate([real_labels, fake_labels])
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

    def d_view(self, player: PlayerState, params: Any, **fields: Any) -> DView:
        return DView(
            d=self.d_of(player, params),
            augment=self.augment,
            step=self.state.step,
            mean_over_devices=self.mean_over_devices,
            generate=self.generate_fixed,
            settings=self.settings,
            **fields,
        )

    def finish_d_update(self, player: PlayerState, grads: Any) -> PlayerState:
        player = _apply_gradients(self.parts.d_optimiser, player, grads, self.d_hyperparams)
        if self.parts.d_constraint is not None:
            player = player.replace(params=self.parts.d_constraint(player.params, self.settings))
        return player

    def discriminate_fixed(self, opponent: PlayerState, x: jax.Array, labels: jax.Array | None):
        """(adversarial logits, class logits) of the fixed `opponent` D, as G's updates see it."""
        out = apply_model(self.models.discriminator, opponent, x, axis_name=self.axis_name, labels=labels)[0]
        return self.models.split_d_output(out)

    def g_view(self, opponent: PlayerState, params: Any, model_state: Any, **fields: Any) -> GView:
        generator, axis_name = self.models.generator, self.axis_name
        current = self.state.generator.replace(model_state=model_state)

        def apply_generator(method, *args, labels=None, **kwargs):
            variables = {"params": params, **current.model_state}
            conditioned = {} if labels is None else {"labels": labels}
            return generator.apply(
                variables, *args, update_stats=False, axis_name=axis_name, method=method, **conditioned, **kwargs
            )

        return GView(
            params=params,
            generate=lambda z, y: apply_model(generator, current, z, params, axis_name=axis_name, labels=y)[0],
            apply_generator=apply_generator,
            discriminate=lambda x, y: self.discriminate_fixed(opponent, x, y)[0],
            step=self.state.step,
            mean_over_devices=self.mean_over_devices,
            settings=self.settings,
            **fields,
        )


def _d_main_update(it: _Iteration, player: PlayerState, term_states: dict, substep: int):
    """One of D's `d_steps` main updates: the sum of its main terms on a fresh batch."""
    d_main = terms_lib.of_player(it.parts.terms, DISCRIMINATOR, lazy=False)
    objective = _Objective(d_main, "d")
    real_plain, real_labels = it.real_batch(Stream.D_REAL, substep)
    inputs = {
        "real": real_plain,
        "real_labels": real_labels,
        "latent": it.draw(Stream.D_LATENT, substep, it.models.sample_latent),
        "fake_labels": it.generated_labels(Stream.D_LABEL, substep),
        "generator_keys": it.generator_keys(substep),
        "augment_real": it.augment_keys(Stream.D_AUGMENT_REAL, substep),
        "augment_fake": it.augment_keys(Stream.D_AUGMENT_FAKE, substep),
        "term_keys": _term_keys(it.keys(Stream.D_PENALTY, substep), d_main),
    }

    def loss_fn(params, micro, model_state):
        current = player.replace(model_state=model_state)
        fake_plain = it.generate_fixed(micro["latent"], micro["fake_labels"], micro["generator_keys"])
        real = it.augmented(micro["real"], micro["augment_real"])
        fake = it.augmented(fake_plain, micro["augment_fake"])
        real_out, fake_out, new_model_state = it.discriminate(
            current, params, real, fake, micro["real_labels"], micro["fake_labels"]
        )
        (real_out, real_classes), (fake_out, fake_classes) = map(it.models.split_d_output, (real_out, fake_out))
        views = {
            name: it.d_view(
                current,
                params,
                real_out=real_out,
                fake_out=fake_out,
                real_classes=real_classes,
                fake_classes=fake_classes,
                real=real,
                fake=fake,
                real_plain=micro["real"],
                fake_plain=fake_plain,
                real_labels=micro["real_labels"],
                fake_labels=micro["fake_labels"],
                keys=term_keys,
                latent=micro["latent"],
            )
            for name, term_keys in micro["term_keys"].items()
        }
        total, new_states, parts_of = objective.per_term_views(views, term_states)
        outputs = {
            "d_real": jnp.mean(jax.nn.sigmoid(real_out)),
            "d_fake": jnp.mean(jax.nn.sigmoid(fake_out)),
            "d_real_raw": jnp.mean(real_out),
            "d_fake_raw": jnp.mean(fake_out),
        }
        return total, ({**parts_of, "states": new_states, "outputs": outputs}, new_model_state)

    grads, aux, model_state = _accumulate(loss_fn, player.params, player.model_state, inputs, it.parts.grad_accum)
    grads = it.mean_over_devices(grads)
    player = it.finish_d_update(player.replace(model_state=model_state), grads)
    metrics = {
        "d_loss": aux["loss"],
        "d_penalty": jnp.asarray(aux["penalty"], jnp.float32),
        **aux["outputs"],
        "d_grad_norm": optax.tree.norm(grads),
        **aux["terms"],
    }
    return player, _merge_states(term_states, aux["states"], d_main, it.axis_name), metrics


def _d_lazy_update(it: _Iteration, interval: int, carry: tuple[PlayerState, dict]) -> tuple[PlayerState, dict]:
    """D's lazy phase: its lazy terms x `interval`, on the last D step's real batch and a
    generated batch of its own, without D's main outputs."""
    player, term_states = carry
    d_lazy = terms_lib.of_player(it.parts.terms, DISCRIMINATOR, lazy=True)
    objective = _Objective(d_lazy, "d", scale=interval)
    real_plain, real_labels = it.last_real_batch(Stream.D_REAL)
    fake_labels = it.generated_labels(Stream.D_LAZY, 1)
    latent = it.draw(Stream.D_LAZY, 0, it.models.sample_latent)
    fake_plain = it.generate_fixed(latent, fake_labels, it.generator_keys(2000))
    real = it.augmented(real_plain, it.augment_keys(Stream.D_LAZY, 2))
    fake = it.augmented(fake_plain, it.augment_keys(Stream.D_LAZY, 3))
    term_keys = _term_keys(it.keys(Stream.D_LAZY, 4), d_lazy)

    def loss_fn(params):
        views = {
            name: it.d_view(
                player,
                params,
                real_out=None,
                fake_out=None,
                real_classes=None,
                fake_classes=None,
                real=real,
                fake=fake,
                real_plain=real_plain,
                fake_plain=fake_plain,
                real_labels=real_labels,
                fake_labels=fake_labels,
                keys=example_keys,
                latent=latent,
            )
            for name, example_keys in term_keys.items()
        }
        total, new_states, _ = objective.per_term_views(views, term_states)
        return total, new_states

    (_, new_states), grads = jax.value_and_grad(loss_fn, has_aux=True)(player.params)
    player = it.finish_d_update(player, it.mean_over_devices(grads))
    return player, _merge_states(term_states, new_states, d_lazy, it.axis_name)


def _g_main_update(it: _Iteration, opponent: PlayerState, term_states: dict):
    """G's main update: the sum of its main terms against the fixed `opponent`."""
    g_main = terms_lib.of_player(it.parts.terms, GENERATOR, lazy=False)
    objective = _Objective(g_main, "g")
    real_plain, real_labels = it.last_real_batch(Stream.G_REAL)
    inputs = {
        "real": real_plain,
        "real_labels": real_labels,
        "latent": it.draw(Stream.G_LATENT, 0, it.models.sample_latent),
        "labels": it.generated_labels(Stream.G_LABEL, 0),
        "generator_keys": it.generator_keys(1000),
        "augment_real": it.augment_keys(Stream.G_AUGMENT_REAL, 0),
        "augment_fake": it.augment_keys(Stream.G_AUGMENT_FAKE, 0),
        "term_keys": _term_keys(it.keys(Stream.G_TERM, 0), g_main),
    }

    def loss_fn(params, micro, model_state):
        fake, new_model_state = apply_model(
            it.models.generator,
            it.state.generator.replace(model_state=model_state),
            micro["latent"],
            params,
            update_stats=True,
            axis_name=it.axis_name,
            labels=micro["labels"],
            example_keys=micro["generator_keys"],
        )
        fake = it.augmented(fake, micro["augment_fake"])
        fake_out, fake_classes = it.discriminate_fixed(opponent, fake, micro["labels"])
        # Only relativistic losses read real_out; XLA drops this pass for the others.
        real = it.augmented(micro["real"], micro["augment_real"])
        real_out, _ = it.discriminate_fixed(opponent, real, micro["real_labels"])
        views = {
            name: it.g_view(
                opponent,
                params,
                model_state,
                fake_out=fake_out,
                real_out=real_out,
                fake_classes=fake_classes,
                fake=fake,
                latent=micro["latent"],
                labels=micro["labels"],
                keys=term_keys,
            )
            for name, term_keys in micro["term_keys"].items()
        }
        total, new_states, parts_of = objective.per_term_views(views, term_states)
        return total, ({**parts_of, "states": new_states}, new_model_state)

    generator = it.state.generator
    grads, aux, model_state = _accumulate(loss_fn, generator.params, generator.model_state, inputs, it.parts.grad_accum)
    grads = it.mean_over_devices(grads)
    player = _apply_gradients(it.parts.g_optimiser, generator.replace(model_state=model_state), grads, it.g_hyperparams)
    metrics = {"g_loss": aux["loss"], "g_grad_norm": optax.tree.norm(grads)}
    if any(t.kind == "regulariser" and t.player == GENERATOR for t in it.parts.terms):
        metrics["g_penalty"] = jnp.asarray(aux["penalty"], jnp.float32)
    metrics.update(aux["terms"])
    return player, _merge_states(term_states, aux["states"], g_main, it.axis_name), metrics


def _g_lazy_update(
    it: _Iteration, opponent: PlayerState, interval: int, carry: tuple[PlayerState, dict]
) -> tuple[PlayerState, dict]:
    """G's lazy phase: its lazy terms x `interval`, on a latent batch of its own."""
    player, term_states = carry
    g_lazy = terms_lib.of_player(it.parts.terms, GENERATOR, lazy=True)
    objective = _Objective(g_lazy, "g", scale=interval)
    latent = it.draw(Stream.G_LAZY, 0, it.models.sample_latent)
    labels = it.generated_labels(Stream.G_LAZY, 1)
    term_keys = _term_keys(it.keys(Stream.G_LAZY, 4), g_lazy)

    def loss_fn(params):
        fake = apply_model(
            it.models.generator,
            player,
            latent,
            params,
            axis_name=it.axis_name,
            labels=labels,
            example_keys=it.generator_keys(3000),
        )[0]
        views = {
            name: it.g_view(
                opponent,
                params,
                player.model_state,
                fake_out=None,
                real_out=None,
                fake_classes=None,
                fake=fake,
                latent=latent,
                labels=labels,
                keys=example_keys,
            )
            for name, example_keys in term_keys.items()
        }
        total, new_states, _ = objective.per_term_views(views, term_states)
        return total, new_states

    (_, new_states), grads = jax.value_and_grad(loss_fn, has_aux=True)(player.params)
    player = _apply_gradients(it.parts.g_optimiser, player, it.mean_over_devices(grads), it.g_hyperparams)
    return player, _merge_states(term_states, new_states, g_lazy, it.axis_name)


def _lazy_phase(update: Callable, interval: int | None, step: jax.Array, carry: tuple) -> tuple:
    """`update(interval, carry)` on iterations 0, interval, 2 interval, ...; `carry` unchanged between."""
    if interval is None:
        return carry
    return lax.cond(step % interval == 0, partial(update, interval), lambda unchanged: unchanged, carry)


def train_step(
    parts: GANParts,
    batch_size: int,
    axis_name: str | None,
    state: GANState,
    real_batches: dict[str, jax.Array] | None = None,
) -> tuple[GANState, dict[str, jax.Array]]:
    """One iteration of Algorithm 1 on this device's `batch_size` examples, as its phases.

    `real_batches`: this device's image batches, one per D step (the G step, which reads real
    data only for relativistic losses, and the lazy phases reuse the last),
    {"images": ..., "labels": ...}; None for toy data.
    """
    settings = parts.schedules.values(state.step, state.hyperparams)
    it = _Iteration(parts, batch_size, axis_name, state, real_batches, settings)
    d_interval = terms_lib.lazy_interval(parts.terms, DISCRIMINATOR)
    g_interval = terms_lib.lazy_interval(parts.terms, GENERATOR)

    # A Python loop, not lax.scan: XLA's CPU backend ran DCGAN's D step 8x slower inside
    # a loop body (experiments/throughput/README.md). d_steps is small.
    d_player, term_states = state.discriminator, state.terms
    for substep in range(parts.d_steps):
        d_player, term_states, d_metrics = _d_main_update(it, d_player, term_states, substep)
    d_player, term_states = _lazy_phase(partial(_d_lazy_update, it), d_interval, state.step, (d_player, term_states))

    # Alternating: G plays against the D just updated; simultaneous: against the old one.
    opponent = state.discriminator if parts.simultaneous else d_player
    g_player, term_states, g_metrics = _g_main_update(it, opponent, term_states)
    g_player, term_states = _lazy_phase(
        partial(_g_lazy_update, it, opponent), g_interval, state.step, (g_player, term_states)
    )

    metrics = {
        **parts.schedules.metrics(settings, state.hyperparams),
        **d_metrics,
        **_lazy_metrics("d", terms_lib.of_player(parts.terms, DISCRIMINATOR, lazy=True), term_states),
        **g_metrics,
        **_lazy_metrics("g", terms_lib.of_player(parts.terms, GENERATOR, lazy=True), term_states),
    }
    ema = None if parts.ema is None else parts.ema.update(state.generator_ema, g_player.params, state.step, settings)
    new_state = state.replace(
        step=state.step + 1, generator=g_player, discriminator=d_player, generator_ema=ema, terms=term_states
    )
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
