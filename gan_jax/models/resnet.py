"""The ResNet GAN of Miyato et al. 2018 (SN-GAN), unconditional or class-conditional.

G: z -> dense to a start x start x width map -> up-sampling residual blocks (BN, ReLU,
nearest 2x up-sampling, 3x3 conv, BN, ReLU, 3x3 conv; shortcut: up-sampling, 1x1 conv)
-> BN, ReLU, 3x3 conv to the image's channels, tanh.
D: an optimised first block (3x3 conv, ReLU, 3x3 conv, 2x2 average pool; shortcut:
average pool, then 1x1 conv) -> residual blocks (ReLU, 3x3 conv, ReLU, 3x3 conv, and a
2x2 average pool in the down-sampling ones, whose shortcut is a 1x1 conv then the pool)
-> ReLU, global sum pooling (phi(x)) -> dense to one logit. With `spectral_norm`, every
layer of D (the class embedding too) is divided by its largest singular value, one power
iteration per step. CIFAR-10 (32x32): G from 4x4 with 3 blocks of 256 channels; D with
the optimised block, one down-sampling and two plain blocks of 128 channels.

Sizes: 32 and 64 as in the paper's CIFAR-10 and up-scaled models; 28x28 (Fashion-MNIST)
is adapted rather than padded: G starts at 7x7 with 2 up-sampling blocks and D ends at
7x7 (the same number of D blocks as at 32x32).

Conditioning (`num_classes` > 0), Miyato and Koyama 2018 / Odena et al. 2017:
  projection  G's block norms are conditional batch norms (a class's own gain and bias);
              D(x, y) = psi(phi(x)) + <embed(y), phi(x)>
  acgan       the same G; D returns [adversarial logit, class logits]: [B, 1 + classes]
D called without labels gives psi(phi(x)) (projection) or the same two heads (acgan).

Self-attention (`attention_resolution`, Zhang et al. 2019 SAGAN; gan_jax.models.attention):
after G's block whose output has that resolution and after D's first block that ends at
it (spectrally normalised in D with `spectral_norm`); 1x1 convs without bias.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.data import DataFacts
from gan_jax.models.attention import SelfAttention, attention_fits
from gan_jax.models.layers import BatchNorm, maybe_spectral
from gan_jax.models.parts import ModelPart, latent_distributions, needs_images_of, register
from gan_jax.schema import MISSING, at_least, one_of, rule

# image size -> (G's starting resolution, G's up-sampling blocks, D's down-sampling blocks after the first)
SUPPORTED_SIZES: dict[int, tuple[int, int, int]] = {28: (7, 2, 1), 32: (4, 3, 1), 64: (4, 4, 2)}
PLAIN_D_BLOCKS = 2  # D's residual blocks without down-sampling, at the end
CONDITIONINGS = ("none", "projection", "acgan")

_init = nn.initializers.xavier_uniform()


def upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x: [B, H, W, C] -> [B, 2H, 2W, C]."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


def conv(features: int, size: int) -> nn.Conv:
    return nn.Conv(features, (size, size), padding="SAME", kernel_init=_init)


def g_resolutions(size: int) -> tuple[int, ...]:
    """The resolutions G's blocks end at."""
    start, blocks, _ = SUPPORTED_SIZES[size]
    return tuple(start * 2 ** (i + 1) for i in range(blocks))


def d_resolutions(size: int) -> tuple[int, ...]:
    """The resolutions D's blocks end at (the optimised block's first)."""
    _, _, down_blocks = SUPPORTED_SIZES[size]
    return tuple(size // 2 ** min(i + 1, down_blocks + 1) for i in range(1 + down_blocks + PLAIN_D_BLOCKS))


def attention_resolutions(size: int) -> tuple[int, ...]:
    """Where both G and D can take self-attention: a resolution both have, even (its 2x2 pooling)."""
    return tuple(sorted(r for r in set(g_resolutions(size)) & set(d_resolutions(size)) if r % 2 == 0))


def self_attention(x: jax.Array, spectral_norm: bool, update_stats: bool) -> jax.Array:
    def attention_conv(features: int, name: str, inputs: jax.Array) -> jax.Array:
        layer = nn.Conv(features, (1, 1), use_bias=False, kernel_init=_init, name=name)
        return maybe_spectral(layer, inputs, spectral_norm, update_stats)

    return SelfAttention()(x, attention_conv)


class GeneratorNorm(nn.Module):
    """Batch norm over the devices; with `num_classes`, its gain and bias are the class's own
    (conditional batch norm: gains start at 1, biases at 0)."""

    num_classes: int = 0

    @nn.compact
    def __call__(self, x: jax.Array, labels: jax.Array | None, update_stats: bool, axis_name: str | None):
        if not self.num_classes:
            return BatchNorm()(x, update_stats, axis_name)
        normalised = BatchNorm(affine=False)(x, update_stats, axis_name)
        features = x.shape[-1]
        gain = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.ones, name="gain")(labels)
        bias = nn.Embed(self.num_classes, features, embedding_init=nn.initializers.zeros, name="bias")(labels)
        return normalised * gain[:, None, None, :] + bias[:, None, None, :]


class GeneratorBlock(nn.Module):
    features: int
    num_classes: int = 0

    @nn.compact
    def __call__(self, x, labels, update_stats: bool, axis_name: str | None) -> jax.Array:
        h = nn.relu(GeneratorNorm(self.num_classes)(x, labels, update_stats, axis_name))
        h = conv(self.features, 3)(upsample(h))
        h = nn.relu(GeneratorNorm(self.num_classes)(h, labels, update_stats, axis_name))
        h = conv(self.features, 3)(h)
        return h + conv(self.features, 1)(upsample(x))


class Generator(nn.Module):
    image_shape: tuple[int, int, int]
    width: int
    num_classes: int = 0  # > 0: conditional batch norm in the blocks
    attention_resolution: int | None = None  # self-attention after the block ending at it

    @nn.compact
    def __call__(
        self, z: jax.Array, labels: jax.Array | None = None, update_stats: bool = False, axis_name: str | None = None
    ) -> jax.Array:
        size, _, channels = self.image_shape
        start, blocks, _ = SUPPORTED_SIZES[size]
        x = nn.Dense(start * start * self.width, kernel_init=_init)(z).reshape(z.shape[0], start, start, self.width)
        for _ in range(blocks):
            x = GeneratorBlock(self.width, self.num_classes)(x, labels, update_stats, axis_name)
            if x.shape[1] == self.attention_resolution:
                x = self_attention(x, False, update_stats)
        x = nn.relu(GeneratorNorm()(x, None, update_stats, axis_name))
        return jnp.tanh(conv(channels, 3)(x))


class DiscriminatorBlock(nn.Module):
    """`optimised`: D's first block, which sees the image itself (no ReLU before its first conv)."""

    features: int
    down: bool
    optimised: bool = False
    spectral_norm: bool = False

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool) -> jax.Array:
        def layer(module: nn.Module, inputs: jax.Array) -> jax.Array:
            return maybe_spectral(module, inputs, self.spectral_norm, update_stats)

        h = layer(conv(self.features, 3), x if self.optimised else nn.relu(x))
        h = layer(conv(self.features, 3), nn.relu(h))
        if self.down:
            h = downsample(h)
        if self.optimised:
            return h + layer(conv(self.features, 1), downsample(x))
        if self.down or x.shape[-1] != self.features:
            shortcut = layer(conv(self.features, 1), x)
            return h + (downsample(shortcut) if self.down else shortcut)
        return h + x


class Discriminator(nn.Module):
    """[B, H, W, C] (and labels [B]) -> logits [B, 1], or [B, 1 + classes] with acgan."""

    image_shape: tuple[int, int, int]
    width: int
    spectral_norm: bool = False
    conditioning: str = "none"
    num_classes: int = 0
    attention_resolution: int | None = None  # self-attention after the first block ending at it

    @nn.compact
    def __call__(
        self, x: jax.Array, labels: jax.Array | None = None, update_stats: bool = False, axis_name: str | None = None
    ) -> jax.Array:
        def layer(module: nn.Module, inputs: jax.Array) -> jax.Array:
            return maybe_spectral(module, inputs, self.spectral_norm, update_stats)

        _, _, down_blocks = SUPPORTED_SIZES[self.image_shape[0]]
        attended = False

        def attend(h: jax.Array) -> jax.Array:
            nonlocal attended
            if attended or h.shape[1] != self.attention_resolution:
                return h
            attended = True
            return self_attention(h, self.spectral_norm, update_stats)

        h = DiscriminatorBlock(self.width, down=True, optimised=True, spectral_norm=self.spectral_norm)(x, update_stats)
        h = attend(h)
        for index in range(down_blocks + PLAIN_D_BLOCKS):
            h = DiscriminatorBlock(self.width, down=index < down_blocks, spectral_norm=self.spectral_norm)(
                h, update_stats
            )
            h = attend(h)
        phi = jnp.sum(nn.relu(h), axis=(1, 2))
        out = layer(nn.Dense(1, kernel_init=_init), phi)
        if self.conditioning == "projection" and labels is not None:
            embedding = nn.Embed(self.num_classes, self.width, embedding_init=_init, name="class_embedding")
            out = out + jnp.sum(layer(embedding, labels) * phi, axis=-1, keepdims=True)
        if self.conditioning == "acgan":
            classifier = nn.Dense(self.num_classes, kernel_init=_init, name="classifier")
            out = jnp.concatenate([out, layer(classifier, phi)], axis=-1)
        return out


def build(cfg, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    classes = cfg.num_classes if cfg.conditioning != "none" else 0
    attention = cfg.get("attention_resolution")
    return (
        Generator(image_shape, cfg.generator.width, classes, attention),
        Discriminator(
            image_shape, cfg.discriminator.width, cfg.discriminator.spectral_norm, cfg.conditioning, classes, attention
        ),
    )


@dataclass
class ResNetGeneratorConfig:
    width: int = at_least(1)  # channels of every block (256 in the paper's CIFAR-10 model)


@dataclass
class ResNetDiscriminatorConfig:
    width: int = at_least(1)  # channels of every block (128 in the paper)
    spectral_norm: bool = MISSING


@dataclass
class ResNetConfig:
    name: str = "resnet"
    latent_dim: int = at_least(1)
    latent_dist: str = one_of(latent_distributions)
    conditioning: str = one_of(lambda: CONDITIONINGS)
    num_classes: int = at_least(2)  # the dataset's, when conditioning (checked against it)
    # ACGAN's auxiliary classification loss, added to both players' losses with this weight.
    class_loss_weight: float | None = rule(MISSING, "null or a number > 0", lambda v: v is None or v > 0)
    # SAGAN's self-attention in G and D at this resolution; null: none (a run saved before the key: null).
    attention_resolution: int | None = rule(None, "null or an integer >= 2", lambda v: v is None or v >= 2)
    generator: ResNetGeneratorConfig = field(default_factory=ResNetGeneratorConfig)
    discriminator: ResNetDiscriminatorConfig = field(default_factory=ResNetDiscriminatorConfig)


def _class_loss_weight_with_acgan_only(cfg: Any) -> str | None:
    if cfg.conditioning == "acgan" and cfg.class_loss_weight is None:
        return "model.conditioning=acgan: set model.class_loss_weight (a number > 0, e.g. 1.0)"
    if cfg.conditioning != "acgan" and cfg.class_loss_weight is not None:
        return (
            f"model.class_loss_weight={cfg.class_loss_weight} has no effect with "
            f"model.conditioning={cfg.conditioning}; set it to null or the conditioning to acgan"
        )
    return None


_images_of_supported_sizes = needs_images_of("resnet", SUPPORTED_SIZES)


def fits_the_images(cfg: Any, data: DataFacts) -> str | None:
    """A supported image size, and an attention resolution that both G and D have there."""
    problem = _images_of_supported_sizes(cfg, data)
    at = cfg.get("attention_resolution")
    if problem or at is None:
        return problem
    size = data.image_size
    assert size is not None  # an image dataset: the check above
    valid = attention_resolutions(size)
    if at not in valid:
        g_ends, d_ends = (", ".join(map(str, sorted(set(r)))) for r in (g_resolutions(size), d_resolutions(size)))
        return (
            f"model.attention_resolution={at}: at {size}x{size} G's blocks end at {g_ends} and D's at "
            f"{d_ends}; valid values are null, {', '.join(map(str, valid))}"
        )
    for network in ("generator", "discriminator"):
        width = cfg[network].width
        reason = attention_fits(width, at, at)
        if reason:
            return f"model.{network}.width={width}: attention at {at}x{at} sees {reason}"
    return None


register(
    ModelPart(
        "resnet",
        ResNetConfig,
        lambda cfg, data: build(cfg, data.shape),
        data_rule=fits_the_images,
        rules=(_class_loss_weight_with_acgan_only,),
    )
)
