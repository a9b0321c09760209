"""GAN loss formulations as pure functions of the discriminator's raw outputs.

Every loss takes `real_out` and `fake_out`, D's raw outputs (shape [batch, 1]) on a real
and a generated batch, and returns a scalar: means over the batch. With s = sigmoid,
D_r = D(x), D_f = D(G(z)) and E the batch mean:

    minimax         D: E[-log s(D_r)] + E[-log(1 - s(D_f))]          G: E[log(1 - s(D_f))]
    non_saturating  D: as minimax                                    G: E[-log s(D_f)]
    wgan            D: E[D_f] - E[D_r]                               G: -E[D_f]
    hinge           D: E[relu(1 - D_r)] + E[relu(1 + D_f)]           G: -E[D_f]
    lsgan           D: 1/2 E[(D_r - 1)^2] + 1/2 E[D_f^2]             G: 1/2 E[(D_f - 1)^2]
    relativistic    D: E[-log s(D_r - E[D_f])] + E[-log(1 - s(D_f - E[D_r]))]
                    G: E[-log s(D_f - E[D_r])] + E[-log(1 - s(D_r - E[D_f]))]
    rpgan           D: E_i[-log s(D_r,i - D_f,i)]                        G: E_i[-log s(D_f,i - D_r,i)]

Goodfellow et al. 2014 (minimax, non-saturating); Arjovsky et al. 2017 (WGAN, whose
critic is kept Lipschitz by weight clipping, `loss.weight_clip`); Lim & Ye 2017 and
Miyato et al. 2018 (hinge); Mao et al. 2017 (least squares, 0-1 coding);
Jolicoeur-Martineau 2018 (relativistic average standard GAN, and the relativistic pairing
GAN, RpGAN: example i of the real batch paired with example i of the generated one, R3GAN's
loss, Huang et al. 2024). log s(a) = -softplus(-a)
and log(1 - s(a)) = -softplus(a) keep them finite for any output.

Each loss is registered (`LOSSES`) with its config schema and, for wgan, the weight
clipping it applies to D; a new loss is a `GANLoss` of two functions, `register(fixed(loss))` (or a
`LossPart` whose `build` reads its settings)
and a YAML under conf/loss/ (README: "Extending gan_jax").
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.registry import Registry, Rule
from gan_jax.schema import MISSING, one_of, optional_positive
from gan_jax.terms import DISCRIMINATOR, GENERATOR, DView, GView, Term, TermResult

LossFn = Callable[[jax.Array, jax.Array], jax.Array]

softplus = jax.nn.softplus


@dataclass(frozen=True)
class GANLoss:
    name: str
    discriminator: LossFn
    generator: LossFn


def adversarial_terms(loss: GANLoss) -> tuple[Term, Term]:
    """The loss as the first term of each player's objective (logged in d_loss / g_loss)."""

    def d_term(view: DView, state: None) -> TermResult:
        return TermResult(loss.discriminator(view.real_out, view.fake_out))

    def g_term(view: GView, state: None) -> TermResult:
        return TermResult(loss.generator(view.real_out, view.fake_out))

    return (
        Term("adversarial", DISCRIMINATOR, d_term, kind="loss"),
        Term("adversarial", GENERATOR, g_term, kind="loss"),
    )


def switched_terms(choices: tuple[GANLoss, ...], setting: str) -> tuple[Term, Term]:
    """A loss population's adversarial terms: each member's loss is choices[i], i its index
    in the iteration's settings (`view.settings[setting]`). Under the population's vmap the
    switch computes every loss and selects the member's: each is a few ops on D's outputs."""

    def pick(view: DView | GView, player: str) -> jax.Array:
        branches = [getattr(loss, player) for loss in choices]
        return jax.lax.switch(view.settings[setting], branches, view.real_out, view.fake_out)

    return (
        Term("adversarial", DISCRIMINATOR, lambda view, state: TermResult(pick(view, "discriminator")), kind="loss"),
        Term("adversarial", GENERATOR, lambda view, state: TermResult(pick(view, "generator")), kind="loss"),
    )


def switched_constraint(constraints: tuple[Callable | None, ...], setting: str) -> Callable | None:
    """(params, settings) -> params: the constraint of each member's loss (wgan's clipping
    for its members only); None when no loss has one."""
    if all(c is None for c in constraints):
        return None

    def constrain(params: Any, settings: Any) -> Any:
        index = settings[setting]
        for i, constraint in enumerate(constraints):
            if constraint is not None:
                constrained = constraint(params)
                params = jax.tree.map(lambda c, p, i=i: jnp.where(index == i, c, p), constrained, params)
        return params

    return constrain


def _bce_discriminator(real_out, fake_out):
    return jnp.mean(softplus(-real_out)) + jnp.mean(softplus(fake_out))


def _minimax_generator(real_out, fake_out):
    return -jnp.mean(softplus(fake_out))


def _non_saturating_generator(real_out, fake_out):
    return jnp.mean(softplus(-fake_out))


def _wgan_discriminator(real_out, fake_out):
    return jnp.mean(fake_out) - jnp.mean(real_out)


def _critic_generator(real_out, fake_out):
    return -jnp.mean(fake_out)


def _hinge_discriminator(real_out, fake_out):
    return jnp.mean(jax.nn.relu(1 - real_out)) + jnp.mean(jax.nn.relu(1 + fake_out))


def _lsgan_discriminator(real_out, fake_out):
    return 0.5 * jnp.mean((real_out - 1) ** 2) + 0.5 * jnp.mean(fake_out**2)


def _lsgan_generator(real_out, fake_out):
    return 0.5 * jnp.mean((fake_out - 1) ** 2)


def _relativistic_discriminator(real_out, fake_out):
    return _bce_discriminator(real_out - jnp.mean(fake_out), fake_out - jnp.mean(real_out))


def _relativistic_generator(real_out, fake_out):
    # The discriminator's loss with the roles of real and generated data swapped.
    return _bce_discriminator(fake_out - jnp.mean(real_out), real_out - jnp.mean(fake_out))


def _pairing_discriminator(real_out, fake_out):
    return jnp.mean(softplus(-(real_out - fake_out)))


def _pairing_generator(real_out, fake_out):
    return jnp.mean(softplus(-(fake_out - real_out)))


@dataclass
class LossConfig:
    """A loss without settings of its own (every one but wgan)."""

    name: str = one_of(lambda: tuple(p.name for p in LOSSES if p.schema is LossConfig))


@dataclass
class WGANLossConfig:
    name: str = one_of(lambda: ("wgan",))
    # D's parameters are clipped to [-c, c] after each update; null: no clipping (WGAN-GP).
    weight_clip: float | None = optional_positive(MISSING)


def _no_constraint(cfg: Any) -> Callable | None:
    return None


def _weight_clip(cfg: Any) -> Callable | None:
    """wgan's D constraint: every parameter clipped to [-weight_clip, weight_clip] after each update."""
    if not cfg.get("weight_clip"):
        return None
    limit = cfg.weight_clip
    return lambda params: jax.tree.map(lambda p: jnp.clip(p, -limit, limit), params)


@dataclass(frozen=True)
class LossPart:
    """A loss as gan-train chooses it: `loss=<name>` composes conf/loss/<name>.yaml over
    `schema` (stored as schema/loss/<name>); `build(cfg.loss)` makes the GANLoss (a loss
    with settings reads them there); `d_constraint(cfg.loss)` is what the step applies to
    D's parameters after each update (None: nothing); `clips(cfg.loss)` says whether it
    bounds D by clipping (a gradient penalty replaces that)."""

    name: str
    build: Callable[[Any], GANLoss]
    schema: type = LossConfig
    d_constraint: Callable[[Any], Callable | None] = _no_constraint
    clips: Callable[[Any], bool] = lambda cfg: False
    rules: tuple[Rule, ...] = ()
    # It pairs real example i with generated example i (RpGAN): a term that keeps only some
    # of the generated examples' outputs (top-k) leaves it nothing to pair them with.
    pairs_examples: bool = False


def fixed(loss: GANLoss, **settings: Any) -> LossPart:
    """The part of a loss without settings of its own: `build` returns `loss` itself."""
    return LossPart(loss.name, lambda cfg: loss, **settings)


LOSSES: Registry[LossPart] = Registry("loss")


def register(part: LossPart, *, replace: bool = False) -> LossPart:
    return LOSSES.register(part.name, part, replace=replace)


for _part in (
    fixed(GANLoss("minimax", _bce_discriminator, _minimax_generator)),
    fixed(GANLoss("non_saturating", _bce_discriminator, _non_saturating_generator)),
    fixed(
        GANLoss("wgan", _wgan_discriminator, _critic_generator),
        schema=WGANLossConfig,
        d_constraint=_weight_clip,
        clips=lambda cfg: cfg.get("weight_clip") is not None,
    ),
    fixed(GANLoss("hinge", _hinge_discriminator, _critic_generator)),
    fixed(GANLoss("lsgan", _lsgan_discriminator, _lsgan_generator)),
    fixed(GANLoss("relativistic", _relativistic_discriminator, _relativistic_generator)),
    fixed(GANLoss("rpgan", _pairing_discriminator, _pairing_generator), pairs_examples=True),
):
    register(_part)


def names() -> tuple[str, ...]:
    return LOSSES.names()


def get(name: str, cfg: Any = None) -> GANLoss:
    """The loss `name`; `cfg` (its config node) for a loss with settings."""
    if name not in LOSSES:
        raise KeyError(f"unknown loss {name!r}; valid losses: {', '.join(names())}")
    return LOSSES.get(name).build(cfg)
