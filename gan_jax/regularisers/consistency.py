"""Consistency regularisation: D made to judge an example and a perturbation of it alike,
and (zCR) G made to map nearby latents to different images.

With D(.) D's raw adversarial output (the logit, "the last layer before the activation",
Zhang et al. 2020), T a fresh draw of `augment.policy`'s pipeline, E a batch mean
and dz ~ N(0, sigma_noise^2 I) one draw per example:

    cr   D: weight * E_x[(D(x) - D(T(x)))^2]                              Zhang et al. 2020
    bcr  D: weight * (weight_real * E_x[(D(x) - D(T(x)))^2]
                      + weight_fake * E_z[(D(G(z)) - D(T(G(z))))^2])       Zhao et al. 2021 (bCR)
    zcr  D: weight * weight_dis * E_z[(D(G(z)) - D(G(z + dz)))^2]          Zhao et al. 2021 (zCR)
         G: -weight * weight_gen * E_z[mean_j (G(z) - G(z + dz))_j^2]

`weight` is cr's lambda (10: Zhang et al.'s CIFAR-10 setting); for bcr and zcr it multiplies
the paper's lambdas (weight_real = weight_fake = 10; weight_dis = 5, weight_gen = 0.5,
sigma_noise = 0.03: Zhao et al.'s settings), so 1.0 is the paper's objective.

D(x) is D's output on the image it judged in its main pass (`real_out`, `fake_out`). cr and
bcr take T from augment.policy, so that image is itself augmented: the term compares two
independent draws T1(x), T2(x), where the papers' adversarial loss sees the plain x. T's
per-example keys are folded from the term's own (gan_jax/step.py), so the draws depend on
the example, not on the device. A packed D judges packs: T is drawn per example, D's
outputs compared per pack.

zCR's G term is minus the squared difference averaged over the image's elements (as the
public implementations' MSE does), so weight_gen does not grow with the resolution; G is
rewarded for images that differ, so its value is <= 0. Its D term reads G inside D's
update from the view (`latent`, `generate`: G with the parameters the iteration began with).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.errors import ConfigError
from gan_jax.penalties import BuildContext, PenaltyConfig, PenaltyPart, register
from gan_jax.schema import MISSING, positive, rule
from gan_jax.terms import DISCRIMINATOR, GENERATOR, DView, GView, Term, TermResult

# What each draw is for: folded into the term's per-example keys.
AUGMENT_REAL, AUGMENT_FAKE, LATENT_NOISE = 0, 1, 2


@dataclass
class BalancedConsistencyConfig(PenaltyConfig):
    """bcr: `weight` multiplies both lambdas."""

    weight_real: float = rule(MISSING, "a number >= 0", lambda v: v >= 0)  # lambda_real
    weight_fake: float = rule(MISSING, "a number >= 0", lambda v: v >= 0)  # lambda_fake


@dataclass
class LatentConsistencyConfig(PenaltyConfig):
    """zcr: `weight` multiplies both lambdas."""

    weight_dis: float = rule(MISSING, "a number >= 0", lambda v: v >= 0)  # lambda_dis, D's term
    weight_gen: float = rule(MISSING, "a number >= 0", lambda v: v >= 0)  # lambda_gen, G's term
    sigma_noise: float = positive()  # std of the latent perturbation dz


def folded_keys(keys: jax.Array, purpose: int) -> jax.Array:
    """One key per example for `purpose`, from the term's per-example keys."""
    return jax.vmap(jax.random.fold_in, (0, None))(keys, purpose)


def mean_squared_difference(a: jax.Array, b: jax.Array) -> jax.Array:
    """E[(a - b)^2] over every element (in float32)."""
    return jnp.mean((jnp.asarray(a, jnp.float32) - jnp.asarray(b, jnp.float32)) ** 2)


def augmentation_consistency(
    d: Callable[[jax.Array, Any], jax.Array],
    augment: Callable[[jax.Array, jax.Array], jax.Array],
    judged_out: jax.Array,
    plain: jax.Array,
    labels: jax.Array | None,
    keys: jax.Array,
) -> jax.Array:
    """E[(D(x) - D(T(x)))^2]: D's outputs on the images it judged against its outputs on a
    fresh augmentation (one key per example) of their plain versions."""
    return mean_squared_difference(judged_out, d(augment(plain, keys), labels))


def latent_noise(keys: jax.Array, shape: tuple[int, ...], sigma: float) -> jax.Array:
    """dz ~ N(0, sigma^2 I), one draw of `shape` per example key: [n, *shape]."""
    return sigma * jax.vmap(lambda key: jax.random.normal(key, shape))(keys)


def _the_augmentation(view: DView, name: str) -> Callable[[jax.Array, jax.Array], jax.Array]:
    if view.augment is None:
        raise ConfigError(f"penalty={name}: its T is augment.policy's pipeline, which is empty; set augment.policy")
    return view.augment


def cr_term(name: str, weight: float) -> Term:
    def fn(view: DView, state: None) -> TermResult:
        keys = folded_keys(view.keys, AUGMENT_REAL)
        consistency = augmentation_consistency(
            view.d, _the_augmentation(view, name), view.real_out, view.real_plain, view.real_labels, keys
        )
        return TermResult(weight * consistency)

    return Term(name, DISCRIMINATOR, fn)


def bcr_term(name: str, weight_real: float, weight_fake: float) -> Term:
    """weight_real, weight_fake: the lambdas, already multiplied by the common weight."""

    def fn(view: DView, state: None) -> TermResult:
        augment = _the_augmentation(view, name)
        real = augmentation_consistency(
            view.d, augment, view.real_out, view.real_plain, view.real_labels, folded_keys(view.keys, AUGMENT_REAL)
        )
        fake = augmentation_consistency(
            view.d, augment, view.fake_out, view.fake_plain, view.fake_labels, folded_keys(view.keys, AUGMENT_FAKE)
        )
        return TermResult(weight_real * real + weight_fake * fake, metrics={f"{name}_real": real, f"{name}_fake": fake})

    return Term(name, DISCRIMINATOR, fn)


def zcr_d_term(name: str, weight: float, sigma: float) -> Term:
    """weight: weight * weight_dis. With augmentation on, both of D's inputs get the same
    transform (one key per example: the same operation), so only the latent differs."""

    def fn(view: DView, state: None) -> TermResult:
        assert view.generate is not None  # D's updates always give G
        noise = latent_noise(folded_keys(view.keys, LATENT_NOISE), view.latent.shape[1:], sigma)
        perturbed = view.generate(view.latent + noise, view.fake_labels)
        if view.augment is None:
            judged = view.fake_out
        else:
            same = folded_keys(view.keys, AUGMENT_FAKE)
            judged = view.d(view.augment(view.fake_plain, same), view.fake_labels)
            perturbed = view.augment(perturbed, same)
        return TermResult(weight * mean_squared_difference(judged, view.d(perturbed, view.fake_labels)))

    return Term(name, DISCRIMINATOR, fn)


def zcr_g_term(name: str, weight: float, sigma: float) -> Term:
    """weight: weight * weight_gen; the value is minus it times G's mean squared change."""

    def fn(view: GView, state: None) -> TermResult:
        noise = latent_noise(folded_keys(view.keys, LATENT_NOISE), view.latent.shape[1:], sigma)
        change = mean_squared_difference(
            view.generate(view.latent, view.labels), view.generate(view.latent + noise, view.labels)
        )
        return TermResult(-weight * change)

    return Term(name, GENERATOR, fn)


def _build_cr(cfg: Any, context: BuildContext) -> tuple[Term, ...]:
    return (cr_term(context.name, cfg.weight),)


def _build_bcr(cfg: Any, context: BuildContext) -> tuple[Term, ...]:
    return (bcr_term(context.name, cfg.weight * cfg.weight_real, cfg.weight * cfg.weight_fake),)


def _build_zcr(cfg: Any, context: BuildContext) -> tuple[Term, ...]:
    terms = []
    if cfg.weight_dis > 0:
        terms.append(zcr_d_term(context.name, cfg.weight * cfg.weight_dis, cfg.sigma_noise))
    if cfg.weight_gen > 0:
        terms.append(zcr_g_term(context.name, cfg.weight * cfg.weight_gen, cfg.sigma_noise))
    return tuple(terms)


def _not_all_zero(*keys: str) -> Callable[[str, Any], str | None]:
    def check(name: str, node: Any) -> str | None:
        if all(node[key] == 0 for key in keys):
            spelled = ", ".join(f"penalty.{name}.{key}=0" for key in keys)
            return f"{spelled}: the regulariser would do nothing; give one of them a value > 0 (or drop penalty={name})"
        return None

    return check


register(PenaltyPart("cr", _build_cr, needs_images=True, needs_augment=True))
register(
    PenaltyPart(
        "bcr",
        _build_bcr,
        schema=BalancedConsistencyConfig,
        needs_images=True,
        needs_augment=True,
        rules=(_not_all_zero("weight_real", "weight_fake"),),
    )
)
register(
    PenaltyPart(
        "zcr",
        _build_zcr,
        schema=LatentConsistencyConfig,
        rules=(_not_all_zero("weight_dis", "weight_gen"),),
    )
)
