"""DCGAN (Radford et al. 2015) for 28x28, 32x32 and 64x64 images.

G: z -> dense projection to a (start x start x 2^(n-1) * width) map -> n upsampling
stages that double the resolution and halve the channels (BatchNorm, ReLU) -> tanh.
D mirrors it: n stride-2 4x4 convolutions (LeakyReLU 0.2; normalisation on all but the
input layer) -> one logit. Weights start from N(0, 0.02), as in the paper.

Every module takes `(x, update_stats, axis_name)`. BatchNorm always normalises with the
batch's statistics, averaged over the devices on `axis_name`, so splitting a batch over
devices does not change the numbers; running averages are recorded (for inspection and
checkpoints) only when `update_stats`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import flax.linen as nn
import jax
import jax.numpy as jnp

from gan_jax.models.layers import BatchNorm, pack_examples
from gan_jax.models.parts import ModelPart, latent_distributions, needs_images_of, register
from gan_jax.schema import MISSING, at_least, one_of

SUPPORTED_SIZES = {28: 7, 32: 4, 64: 4}  # image size -> the generator's starting resolution
UPSAMPLERS = ("subpixel", "transpose", "resize_conv")
NORMS = ("batch", "layer", "none")

_init = nn.initializers.normal(0.02)


def _scale_init(key: jax.Array, shape: tuple[int, ...], dtype=jnp.float32) -> jax.Array:
    """BatchNorm's scale from N(1, 0.02), as the DCGAN reference code draws it."""
    return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


class Normalise(nn.Module):
    """`kind`: batch (cross-device BatchNorm), layer (per example: safe with gradient penalties) or none."""

    kind: str

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool, axis_name: str | None) -> jax.Array:
        if self.kind == "batch":
            return BatchNorm(scale_init=_scale_init)(x, update_stats, axis_name)
        if self.kind == "layer":
            return nn.LayerNorm(reduction_axes=(-3, -2, -1))(x)
        return x


class Upsample(nn.Module):
    """Doubles height and width and maps to `features` channels.

    transpose: 4x4 stride-2 transposed convolution (the paper's). subpixel: a 2x2
    convolution to 4x the channels, then depth-to-space (the same FLOPs, and XLA's CPU
    backend differentiates it far faster). resize_conv: nearest-neighbour resize, then
    3x3 convolution (Odena et al. 2016: no checkerboard artefacts).
    """

    features: int
    method: str

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        if self.method == "transpose":
            return nn.ConvTranspose(self.features, (4, 4), strides=(2, 2), padding="SAME", kernel_init=_init)(x)
        if self.method == "subpixel":
            x = nn.Conv(4 * self.features, (2, 2), padding="SAME", kernel_init=_init)(x)
            return depth_to_space(x, 2)
        batch, height, width, channels = x.shape
        x = jax.image.resize(x, (batch, 2 * height, 2 * width, channels), "nearest")
        return nn.Conv(self.features, (3, 3), padding="SAME", kernel_init=_init)(x)


def depth_to_space(x: jax.Array, block: int) -> jax.Array:
    """[B, H, W, C * block^2] -> [B, H * block, W * block, C]."""
    batch, height, width, channels = x.shape
    out = channels // block**2
    x = x.reshape(batch, height, width, block, block, out)
    return x.transpose(0, 1, 3, 2, 4, 5).reshape(batch, height * block, width * block, out)


def num_stages(image_size: int) -> int:
    return int(math.log2(image_size // SUPPORTED_SIZES[image_size]))


class Generator(nn.Module):
    image_shape: tuple[int, int, int]
    width: int
    upsample: str
    norm: str = "batch"

    @nn.compact
    def __call__(self, z: jax.Array, update_stats: bool = False, axis_name: str | None = None) -> jax.Array:
        size, _, channels = self.image_shape
        stages = num_stages(size)
        start = SUPPORTED_SIZES[size]
        features = self.width * 2 ** (stages - 1)
        x = nn.Dense(start * start * features, kernel_init=_init)(z)
        x = x.reshape(z.shape[0], start, start, features)
        x = nn.relu(Normalise(self.norm)(x, update_stats, axis_name))
        for _ in range(stages - 1):
            features //= 2
            x = Upsample(features, self.upsample)(x)
            x = nn.relu(Normalise(self.norm)(x, update_stats, axis_name))
        return jnp.tanh(Upsample(channels, self.upsample)(x))


class Discriminator(nn.Module):
    """[B, H, W, C] -> logits [B / pack, 1]; with `pack` > 1 it judges runs of `pack`
    consecutive images stacked along the channels (Lin et al. 2018)."""

    image_shape: tuple[int, int, int]
    width: int
    norm: str = "batch"
    spectral_norm: bool = False
    pack: int = 1

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False, axis_name: str | None = None) -> jax.Array:
        def layer(module: nn.Module, inputs: jax.Array) -> jax.Array:
            if self.spectral_norm:
                return nn.SpectralNorm(module, n_steps=1)(inputs, update_stats=update_stats)
            return module(inputs)

        x = pack_examples(x, self.pack)
        features = self.width
        for stage in range(num_stages(self.image_shape[0])):
            x = layer(nn.Conv(features, (4, 4), strides=(2, 2), padding=((1, 1), (1, 1)), kernel_init=_init), x)
            if stage > 0:  # Radford et al.: no normalisation on D's input layer
                x = Normalise(self.norm)(x, update_stats, axis_name)
            x = nn.leaky_relu(x, 0.2)
            features *= 2
        return layer(nn.Dense(1, kernel_init=_init), x.reshape(x.shape[0], -1))


def build(cfg, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    g, d = cfg.generator, cfg.discriminator
    return (
        Generator(image_shape, g.width, g.upsample, g.norm),
        Discriminator(image_shape, d.width, d.norm, d.spectral_norm, d.pack),
    )


@dataclass
class DCGANGeneratorConfig:
    width: int = at_least(1)  # channels of the last hidden layer; doubled per stage inwards
    upsample: str = one_of(lambda: UPSAMPLERS)
    norm: str = one_of(lambda: NORMS)


@dataclass
class DCGANDiscriminatorConfig:
    width: int = at_least(1)  # channels of the first layer; doubled per stage
    norm: str = one_of(lambda: NORMS)
    spectral_norm: bool = MISSING
    pack: int = at_least(1)  # PacGAN: images judged per decision, stacked along the channels


@dataclass
class DCGANConfig:
    name: str = "dcgan"
    latent_dim: int = at_least(1)
    latent_dist: str = one_of(latent_distributions)
    generator: DCGANGeneratorConfig = field(default_factory=DCGANGeneratorConfig)
    discriminator: DCGANDiscriminatorConfig = field(default_factory=DCGANDiscriminatorConfig)


register(
    ModelPart(
        "dcgan",
        DCGANConfig,
        lambda cfg, data: build(cfg, data.shape),
        data_rule=needs_images_of("dcgan", SUPPORTED_SIZES),
        d_batch_norm=lambda cfg: cfg.discriminator.norm == "batch",
        d_pack=lambda cfg: cfg.discriminator.pack,
    )
)
