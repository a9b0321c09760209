"""LeCam regularisation (Tseng et al. 2021, "Regularizing generative adversarial networks
under limited data", Eq. 3):

    R_LC = weight * (E_x[(D(x) - a_F)^2] + E_z[(D(G(z)) - a_R)^2])

on D's raw outputs, with a_R and a_F exponential moving averages (decay 0.99) of D's mean
output on real and on generated data. The averages are the term's state: updated with
this update's batch first (as the authors' code does), averaged over the devices, and
logged as `lecam_real_average` / `lecam_fake_average`. The paper's code also offers a
variant with relu on both differences; this is the paper's form. The weight is lambda
(0.3 in the paper's CIFAR-10 BigGAN runs; a smaller value for larger data).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.penalties import BuildContext, PenaltyConfig, PenaltyPart, register
from gan_jax.schema import in_range
from gan_jax.terms import DISCRIMINATOR, DView, Term, TermResult


@dataclass
class LeCamConfig(PenaltyConfig):
    decay: float = in_range(0.0, 1.0)  # of the moving averages a_R, a_F


def lecam_term(name: str, weight: float, decay: float) -> Term:
    def fn(view: DView, state: dict[str, jax.Array]) -> TermResult:
        batch_real = view.mean_over_devices(jnp.mean(jax.lax.stop_gradient(view.real_out)))
        batch_fake = view.mean_over_devices(jnp.mean(jax.lax.stop_gradient(view.fake_out)))
        real_average = decay * state["real_average"] + (1 - decay) * batch_real
        fake_average = decay * state["fake_average"] + (1 - decay) * batch_fake
        value = weight * (jnp.mean((view.real_out - fake_average) ** 2) + jnp.mean((view.fake_out - real_average) ** 2))
        new_state = {"real_average": real_average, "fake_average": fake_average}
        return TermResult(value, new_state, {f"{name}_{k}": v for k, v in new_state.items()})

    def init() -> dict[str, jax.Array]:
        return {"real_average": jnp.zeros((), jnp.float32), "fake_average": jnp.zeros((), jnp.float32)}

    return Term(name, DISCRIMINATOR, fn, init=init)


def _build(cfg: Any, context: BuildContext) -> tuple[Term, ...]:
    return (lecam_term(context.name, cfg.weight, cfg.decay),)


register(PenaltyPart("lecam", _build, schema=LeCamConfig))
