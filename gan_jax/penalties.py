"""Regularisers: the terms a run adds to D's (or G's) objective, chosen by `penalty=`.

`penalty=r1` picks one, `'penalty=[r1,lecam]'` several, each with its own settings under
`penalty.<name>.` (`penalty.r1.weight=1 penalty.r1.interval=16`). Every regulariser has
a `weight` (its lambda or gamma) and an `interval`: 1 puts it in the player's main
update; N > 1 makes it lazy (Karras et al. 2020, Appendix B): its own phase on
iterations 0, N, 2N, ..., its value multiplied by N, with the player's Adam rescaled by
N / (N + 1) (gan_jax/optim.py). A regulariser is a `PenaltyPart` whose `build` returns
its terms (gan_jax/terms.py); the gradient penalties below, LeCam, consistency
regularisation, top-k, the orthogonal penalty and StyleGAN2's path length (gan_jax/regularisers/, registered
when gan_jax.config or gan_jax.parts is imported) are the built-in ones.

The gradient penalties are functions `penalty(d_fn, real, fake, keys)`, d_fn mapping
[n, ...] inputs to D's raw outputs [n, 1], `keys` one PRNG key per example (so the draws
depend on the example, not the device):

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

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.registry import Registry
from gan_jax.schedules import Schedules
from gan_jax.schema import MISSING, at_least, rule
from gan_jax.terms import DISCRIMINATOR, DView, Term, TermResult

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


GRADIENT_PENALTIES: dict[str, Callable[[float, tuple[float, ...]], Penalty]] = {
    "wgan_gp": wgan_gp,
    "r1": r1,
    "r2": r2,
    "dragan": dragan,
}


def build(name: str, weight: float, data_scale: tuple[float, ...]) -> Penalty:
    """The gradient penalty `name` as a function of (d_fn, real, fake, keys)."""
    return GRADIENT_PENALTIES[name](weight, data_scale)


@dataclass
class PenaltyConfig:
    """What every regulariser has: its weight and how often it runs."""

    weight: float = rule(MISSING, "a number > 0 (penalty=none for no regulariser)", lambda v: v > 0)
    interval: int = at_least(1)  # 1: in the main update; N > 1: lazy, every N iterations, scaled by N


@dataclass(frozen=True)
class BuildContext:
    """What a regulariser's `build` may read besides its own settings."""

    name: str  # its key under penalty. (and so its terms' names)
    data_scale: tuple[float, ...]  # the data's per-dimension std (DRAGAN's perturbation)
    batch_size: int  # the global batch
    steps: int  # train.steps
    loss: Any  # the run's GANLoss (top-k re-weights G's adversarial loss)


@dataclass(frozen=True)
class PenaltyPart:
    """A regulariser as gan-train chooses it: `penalty=<name>` (or a list) composes
    conf/penalty/<name>.yaml at `penalty.<name>` over `schema` (schema/penalty/<name>).

    `build(cfg.penalty.<name>, context) -> terms` (gan_jax/terms.py). Properties for the
    rules between families: `per_example`: it takes D's gradient per example, which needs
    a D that treats examples independently (no batch norm); `on_generated`: its points are
    generated examples (judged with the generated classes); `replaces_clipping`: it
    bounds D instead of weight clipping (Gulrajani et al. 2017); `needs_images`: it
    transforms images; `needs_augment`: it compares D on augmented and plain images (it
    takes its transforms from `augment.policy`); `may_be_lazy`: it needs nothing of the
    main update, so `interval` > 1 is allowed; `needs_generator_methods`: the generator
    methods its terms call (a model lists those it has); `selects_examples`: it hands the
    loss a subset of the generated examples' outputs. `rules`: its own, on its config
    node (called as rule(name, node))."""

    name: str
    build: Callable[[Any, BuildContext], tuple[Term, ...]]
    schema: type = PenaltyConfig
    per_example: bool = False
    on_generated: bool = False
    replaces_clipping: bool = False
    needs_images: bool = False
    needs_augment: bool = False
    may_be_lazy: bool = False
    rules: tuple[Callable[[str, Any], str | None], ...] = ()
    needs_generator_methods: tuple[str, ...] = ()  # e.g. path length: G's map_latents and synthesise
    # It passes the loss only some of the generated examples' outputs (top-k).
    selects_examples: bool = False


PENALTIES: Registry[PenaltyPart] = Registry("regulariser")


def register(part: PenaltyPart, *, replace: bool = False) -> PenaltyPart:
    return PENALTIES.register(part.name, part, replace=replace)


def gradient_penalty_term(name: str, penalty: Penalty, on_generated: bool, interval: int) -> Term:
    """A D term of a gradient penalty: its points take the generated classes when they are
    generated examples (R2), else the real ones."""

    def fn(view: DView, state: Any) -> TermResult:
        labels = view.fake_labels if on_generated else view.real_labels
        return TermResult(penalty(lambda x: view.d(x, labels), view.real, view.fake, view.keys))

    return Term(name, DISCRIMINATOR, fn, interval=interval)


def _gradient_penalty_part(name: str, **properties: Any) -> PenaltyPart:
    def build_terms(cfg: Any, context: BuildContext) -> tuple[Term, ...]:
        penalty = GRADIENT_PENALTIES[name](cfg.weight, context.data_scale)
        return (gradient_penalty_term(context.name, penalty, properties.get("on_generated", False), cfg.interval),)

    return PenaltyPart(name, build_terms, per_example=True, may_be_lazy=True, **properties)


for _part in (
    _gradient_penalty_part("wgan_gp", replaces_clipping=True),
    _gradient_penalty_part("r1"),
    _gradient_penalty_part("r2", on_generated=True),
    _gradient_penalty_part("dragan"),
):
    register(_part)


def names() -> tuple[str, ...]:
    return PENALTIES.names()


def chosen(penalty_cfg: Any) -> list[str]:
    """The regularisers a config's `penalty` node names, in order."""
    return [] if penalty_cfg is None else [str(k) for k in penalty_cfg]


def build_terms(penalty_cfg: Any, context: dict[str, Any], curves: Schedules | None = None) -> tuple[Term, ...]:
    """Every chosen regulariser's terms, in the order the config lists them; a regulariser
    whose weight follows a schedule has its terms' values scaled by weight(step) / weight."""
    terms: tuple[Term, ...] = ()
    for name in chosen(penalty_cfg):
        built = PENALTIES.get(name).build(penalty_cfg[name], BuildContext(name=name, **context))
        weight = None if curves is None else curves.reader(f"penalty.{name}.weight")
        if weight is not None:
            built = tuple(_reweighted(term, weight, float(penalty_cfg[name].weight)) for term in built)
        terms += built
    return terms


def _reweighted(term: Term, weight: Callable[[Any], Any], base: float) -> Term:
    """`term` with its value x weight / base, the weight the iteration's (a schedule's, a
    population member's; `view.settings`): every regulariser is linear in its weight
    (a "loss" term, top-k's re-weighted loss, has none to scale: its weight is fixed at 1)."""
    if term.kind != "regulariser":
        return term

    def fn(view: Any, state: Any) -> TermResult:
        result = term.fn(view, state)
        return dataclasses.replace(result, value=result.value * (weight(view.settings) / base))

    return dataclasses.replace(term, fn=fn)
