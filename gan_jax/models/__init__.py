"""Model families, chosen by `model.name`, and the generator's latent prior."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import flax.linen as nn
import jax

from gan_jax.models import dcgan, dirac, mlp

LATENT_DISTRIBUTIONS: dict[str, Callable[[jax.Array, tuple[int, ...]], jax.Array]] = {
    "normal": jax.random.normal,
    "uniform": lambda key, shape: jax.random.uniform(key, shape, minval=-1.0, maxval=1.0),
}

_FAMILIES = {"mlp": mlp.build, "dirac": dirac.build, "dcgan": lambda cfg, data: dcgan.build(cfg, data.shape)}


@dataclass(frozen=True)
class GANModels:
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    latent_dist: str
    # D normalises over the batch: real and generated examples then go through it apart.
    d_batch_norm: bool = False

    def sample_latent(self, key: jax.Array) -> jax.Array:
        """One latent vector, shape [latent_dim]; vmap it over per-example keys."""
        return LATENT_DISTRIBUTIONS[self.latent_dist](key, (self.latent_dim,))


def build(cfg, data) -> GANModels:
    generator, discriminator = _FAMILIES[cfg.name](cfg, data)
    # A family without a latent setting (dirac) ignores its input: one N(0, 1) number.
    return GANModels(
        generator,
        discriminator,
        cfg.get("latent_dim", 1),
        cfg.get("latent_dist", "normal"),
        d_batch_norm=(cfg.get("discriminator") or {}).get("norm") == "batch",
    )
