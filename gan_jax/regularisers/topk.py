"""Top-k training (Sinha et al. 2020, "Top-k training of GANs"): G's adversarial loss over
the k of its samples that D finds most realistic; the others' gradients are zeroed.

    G: L_G(D(x), top_k(D(G(z))))
    k = clip(floor(gamma^epoch * n), floor(nu * n), n),   epoch = step // decay_every

L_G is the run's loss's generator side (gan_jax/losses.py) on D's raw outputs, top_k the k
largest of D's outputs on G's samples, n how many this device judges (a micro-batch's, with
train.grad_accum). k starts at the whole batch and decays by gamma once an epoch down to the
fraction nu, gamma = 0.99 and nu = 0.5: the rule and defaults as the implementations that
follow the paper have them (a mimicry-based TopKGenerator: k = int(max(gamma^epoch, nu) * n),
its rate 0.99 and floor 0.5; StudioGAN's adjust_k: k <- max(k * gamma, int(nu * n)) after each
epoch). An epoch is `decay_every` iterations, since the step does not know the dataset's size
(CIFAR-10 at batch 64: 50,000 / 64 = 782).

It is a GENERATOR term named "adversarial", kind "loss": it replaces the loss's own G term
where that stood (gan_jax/parts.py), so its value is g_loss; D's update is unchanged. The
selection is per device: each device keeps the top k of its own n samples (a packed D:
of its n packs), so unlike the rest of a run it depends on how the batch is split. k is
logged as `topk_k`. `weight` is fixed at 1: the loss keeps its own scale.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from gan_jax.losses import GANLoss
from gan_jax.penalties import BuildContext, PenaltyConfig, PenaltyPart, register
from gan_jax.schema import MISSING, at_least, rule
from gan_jax.terms import GENERATOR, GView, Term, TermResult


def _fraction(v: float) -> bool:
    return 0 < v <= 1


@dataclass
class TopKConfig(PenaltyConfig):
    weight: float = rule(
        MISSING, "1.0 (top-k replaces G's adversarial loss; it has no strength of its own)", lambda v: v == 1
    )
    gamma: float = rule(MISSING, "a number in (0, 1]", _fraction)  # k's decay per epoch
    nu: float = rule(MISSING, "a number in (0, 1]", _fraction)  # k's floor, a fraction of the batch
    decay_every: int = at_least(1)  # iterations per epoch: k decays once every this many


def smallest_k(n: int, nu: float) -> int:
    """k's floor for n samples: floor(nu * n), at least 1."""
    return max(1, int(nu * n))


def annealed_k(step: jax.Array, n: int, gamma: float, nu: float, decay_every: int) -> jax.Array:
    """k at iteration `step`: floor(gamma^(step // decay_every) * n), between floor(nu * n) and n."""
    epoch = (jnp.asarray(step) // decay_every).astype(jnp.float32)
    decayed = jnp.floor(jnp.float32(gamma) ** epoch * n).astype(jnp.int32)
    return jnp.clip(decayed, smallest_k(n, nu), n)


def top_k_generator_loss(loss: GANLoss, real_out: Any, fake_out: jax.Array, k: jax.Array, k_min: int) -> jax.Array:
    """loss.generator(real_out, the k largest of fake_out [n, 1]); k is traced (it follows the
    step), so each k in k_min..n is a branch of lax.switch with its own static slice."""
    n = fake_out.shape[0]
    ranked = -jnp.sort(-fake_out, axis=0)  # largest first

    def loss_of_top(count: int):
        return lambda ranked: loss.generator(real_out, ranked[:count])

    return lax.switch(k - k_min, [loss_of_top(count) for count in range(k_min, n + 1)], ranked)


def topk_term(name: str, loss: GANLoss, gamma: float, nu: float, decay_every: int) -> Term:
    def fn(view: GView, state: None) -> TermResult:
        n = view.fake_out.shape[0]
        k = annealed_k(view.step, n, gamma, nu, decay_every)
        value = top_k_generator_loss(loss, view.real_out, view.fake_out, k, smallest_k(n, nu))
        return TermResult(value, metrics={f"{name}_k": k.astype(jnp.float32)})

    return Term("adversarial", GENERATOR, fn, kind="loss")


def _build(cfg: Any, context: BuildContext) -> tuple[Term, ...]:
    return (topk_term(context.name, context.loss, cfg.gamma, cfg.nu, cfg.decay_every),)


register(PenaltyPart("topk", _build, schema=TopKConfig, selects_examples=True))
