"""Model families, chosen by `model.name` (each registered by its module), and the latent prior."""

from __future__ import annotations

from dataclasses import dataclass

import flax.linen as nn
import jax

from gan_jax.models import dcgan, dirac, layers, mlp
from gan_jax.models.parts import LATENT_DISTRIBUTIONS, MODELS, ModelPart, register

__all__ = [
    "LATENT_DISTRIBUTIONS",
    "MODELS",
    "GANModels",
    "ModelPart",
    "build",
    "dcgan",
    "dirac",
    "layers",
    "mlp",
    "register",
]


@dataclass(frozen=True)
class GANModels:
    generator: nn.Module
    discriminator: nn.Module
    latent_dim: int
    latent_dist: str
    # D normalises over the batch: real and generated examples then go through it apart.
    d_batch_norm: bool = False
    # D judges packs of this many consecutive examples: [batch, ...] -> [batch / d_pack, 1].
    d_pack: int = 1

    def sample_latent(self, key: jax.Array) -> jax.Array:
        """One latent vector, shape [latent_dim]; vmap it over per-example keys."""
        return LATENT_DISTRIBUTIONS[self.latent_dist](key, (self.latent_dim,))


def build(cfg, data) -> GANModels:
    part = MODELS.get(cfg.name)
    generator, discriminator = part.build(cfg, data)
    # A family without a latent setting (dirac) ignores its input: one N(0, 1) number.
    return GANModels(
        generator,
        discriminator,
        cfg.get("latent_dim", 1),
        cfg.get("latent_dist", "normal"),
        d_batch_norm=part.d_batch_norm(cfg),
        d_pack=part.d_pack(cfg),
    )
