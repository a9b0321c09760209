"""Model families, chosen by `model.name` (each registered by its module), and the latent prior."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

from gan_jax.models import attention, biggan, dcgan, dirac, layers, mlp, r3gan, resnet, stylegan2
from gan_jax.models.parts import LATENT_DISTRIBUTIONS, MODELS, ModelPart, register
from gan_jax.terms import DISCRIMINATOR, GENERATOR, DView, GView, Term, TermResult

__all__ = [
    "LATENT_DISTRIBUTIONS",
    "MODELS",
    "GANModels",
    "ModelPart",
    "attention",
    "biggan",
    "build",
    "conditioning_terms",
    "dcgan",
    "dirac",
    "layers",
    "mlp",
    "r3gan",
    "register",
    "resnet",
    "stylegan2",
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
    # Class-conditional (labels reach G and D): none, projection or acgan (D then returns
    # [adversarial logit, class logits]); the classes, and ACGAN's class loss weight.
    conditioning: str = "none"
    num_classes: int = 0
    class_loss_weight: float = 0.0
    # G takes one PRNG key per example in training (draws of its own: noise, style mixing).
    generator_keys: bool = False
    # Initial variables loaded from files the config names (StyleGAN2's init_from), else None:
    # every replica of a population then starts from them.
    generator_weights: Any = field(default=None, compare=False)
    discriminator_weights: Any = field(default=None, compare=False)

    @property
    def conditional(self) -> bool:
        return self.conditioning != "none"

    def sample_latent(self, key: jax.Array) -> jax.Array:
        """One latent vector, shape [latent_dim]; vmap it over per-example keys."""
        return LATENT_DISTRIBUTIONS[self.latent_dist](key, (self.latent_dim,))

    def sample_label(self, key: jax.Array) -> jax.Array:
        """One class, uniform over num_classes; vmap it over per-example keys."""
        return jax.random.randint(key, (), 0, self.num_classes)

    def split_d_output(self, out: jax.Array) -> tuple[jax.Array, jax.Array | None]:
        """D's output -> (adversarial logits [n, 1], class logits [n, classes] with acgan, else None)."""
        if self.conditioning == "acgan":
            return out[:, :1], out[:, 1:]
        return out, None


def build(cfg, data) -> GANModels:
    part = MODELS.get(cfg.name)
    generator, discriminator = part.build(cfg, data)
    generator_weights, discriminator_weights = part.initial_weights(cfg, generator, discriminator)
    # A family without a latent setting (dirac) ignores its input: one N(0, 1) number.
    conditioning = cfg.get("conditioning", "none")
    return GANModels(
        generator,
        discriminator,
        cfg.get("latent_dim", 1),
        cfg.get("latent_dist", "normal"),
        d_batch_norm=part.d_batch_norm(cfg),
        d_pack=part.d_pack(cfg),
        generator_keys=part.generator_takes_keys(cfg),
        conditioning=conditioning,
        num_classes=cfg.num_classes if conditioning != "none" else 0,
        class_loss_weight=cfg.get("class_loss_weight") or 0.0,
        generator_weights=generator_weights,
        discriminator_weights=discriminator_weights,
    )


def _cross_entropy(class_logits: Any, labels: Any) -> jax.Array:
    return jnp.mean(optax.softmax_cross_entropy_with_integer_labels(class_logits, labels))


def conditioning_terms(models: GANModels) -> tuple[Term, ...]:
    """The terms a conditional model adds to the players' losses: ACGAN's class loss
    (Odena et al. 2017), the mean cross-entropy of D's class logits, times
    model.class_loss_weight: on real and generated examples for D (logged, unweighted, as
    d_class_loss), on generated ones for G. Projection conditioning adds none."""
    if models.conditioning != "acgan":
        return ()
    weight = models.class_loss_weight

    def d_class_loss(view: DView, state: None) -> TermResult:
        loss = _cross_entropy(view.real_classes, view.real_labels) + _cross_entropy(view.fake_classes, view.fake_labels)
        return TermResult(weight * loss, metrics={"d_class_loss": loss})

    def g_class_loss(view: GView, state: None) -> TermResult:
        return TermResult(weight * _cross_entropy(view.fake_classes, view.labels))

    return (
        Term("class_loss", DISCRIMINATOR, d_class_loss, kind="loss"),
        Term("class_loss", GENERATOR, g_class_loss, kind="loss"),
    )
