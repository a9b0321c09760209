"""BigGAN (Brock et al. 2019, "Large Scale GAN Training for High Fidelity Natural Image
Synthesis") as the authors' ajbrock/BigGAN-PyTorch builds it (BigGAN.py, layers.py),
class-conditional or unconditional.

G: z -> spectrally normalised linear layer to [4, 4, ch * m_0] -> residual up-blocks
-> BN, ReLU, 3x3 conv to the image's channels, tanh. A block (their GBlock): ccBN, ReLU,
nearest 2x up-sampling, 3x3 conv, ccBN, ReLU, 3x3 conv; shortcut: up-sampling, 1x1 conv.
ccBN (conditional batch norm) is a batch norm without its own affine, times 1 + gain(y)
plus bias(y), where y is
  shared_embedding   a shared class embedding (their G_shared; shared_dim, default dim_z)
                     and gain, bias linear layers of it (spectrally normalised, no bias);
                     with `hierarchical` (their hier) z is split into one chunk per block
                     plus one for the first linear layer, and each block's y is
                     [shared(c), its chunk]
  otherwise          the class itself: gain and bias are per-class embeddings (no spectral norm)
D (their DBlock): residual blocks, ReLU before the first conv but in the first block
("preactivation"), 3x3 conv to `hidden` (out with `wide`, the input's channels
otherwise), ReLU, 3x3 conv, 2x2 average pooling in the down-sampling blocks; shortcut a
1x1 conv where the channels change or the block down-samples (before the pooling in the
preactivated blocks, after it in the first); then ReLU, sum pooling phi(x) and
D(x, c) = linear(phi) + <embed(c), phi> (a projection discriminator, the embedding
spectrally normalised). Self-attention (gan_jax.models.attention, SAGAN) follows the
blocks whose resolution label is in `attention`.

Channels per block: ch times their G_arch / D_arch multipliers for 32, 64, 128, 256 (G
also 512). Their D_arch labels every block of the 32x32 D "16", though only the first
ends at 16x16: attention at 16 there follows each of its four blocks, as theirs does.

Spectral norm (their layers.SN, not Miyato et al.'s): num_svs singular vectors u_i [1,
out] per weight (buffers 'u0', 'u1', ..., Gram-Schmidt orthogonalised against each
other), W viewed as [out, fan_in]; in training (`update_stats`) num_itrs power
iterations, u written back (and the estimates to 'sv0', ... for logging); otherwise one
iteration from the stored u, nothing written (their eval mode: it repeats the same
iteration num_itrs times). W / sigma_0, the gradient through sigma_0 only.
Normalisation eps max(||v||, eps) (sn_eps). Batch norm: in training the batch's
statistics (averaged over `axis_name`'s devices), the stored ones updated with momentum
0.1 (the variance unbiased, as torch's); `running_stats` normalises with the stored ones
(their G.eval()). gan_jax's training and sampling use the batch's, as their CIFAR-10
script (no --G_eval_mode) does.

Initialisation (their G_init / D_init) of every conv, linear and embedding weight:
'ortho' (orthogonal), 'N02' (N(0, 0.02)) or 'xavier' (Glorot uniform); biases as
torch's defaults (U(+-1 / sqrt(fan_in))), BN gains 1 and biases 0, attention gains 0.

Unconditional (model.conditioning=none): their code has no unconditional mode; it is
their network with a single class (n_classes=1), every label 0: G's class embedding is
then a learned constant and D's projection a second linear term. Images NHWC in [-1, 1].

`load_biggan(path, kind, **arch)` reads a `torch.save(net.state_dict())` of their
Generator or Discriminator (their constructor's argument names) without executing
pickled code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict
from jax import lax

from gan_jax.data import DataFacts, names_where
from gan_jax.metrics.torch_format import load_state_dict
from gan_jax.models.attention import SelfAttention, attention_fits
from gan_jax.models.parts import ModelPart, latent_distributions, register
from gan_jax.models.stylegan2 import NvidiaNetwork, StateDictMismatch
from gan_jax.schema import MISSING, at_least, one_of, rule

__all__ = [
    "BIGGAN_D_DEFAULTS",
    "BIGGAN_G_DEFAULTS",
    "CONDITIONINGS",
    "INITS",
    "BigGANConfig",
    "Discriminator",
    "Generator",
    "StateDictMismatch",
    "attention_resolutions",
    "biggan_module",
    "load_biggan",
    "variables_from_state_dict",
]

CONDITIONINGS = ("none", "projection")  # none: their network with one class
INITS = ("ortho", "N02", "xavier")  # their G_init / D_init ('glorot' is their other name for xavier)
BOTTOM_WIDTH = 4  # G starts at 4x4
# Their G_arch: each block's output channels / ch (the input's: the previous block's; the first's its own).
G_MULTIPLIERS: dict[int, tuple[int, ...]] = {
    32: (4, 4, 4),
    64: (16, 8, 4, 2),
    128: (16, 8, 4, 2, 1),
    256: (16, 8, 8, 4, 2, 1),
    512: (16, 8, 8, 4, 2, 1, 1),
}
# Their D_arch: output channels / ch, down-sampling, and the resolution labels attention is keyed by.
D_MULTIPLIERS: dict[int, tuple[int, ...]] = {
    32: (4, 4, 4, 4),
    64: (1, 2, 4, 8, 16),
    128: (1, 2, 4, 8, 16, 16),
    256: (1, 2, 4, 8, 8, 16, 16),
}
D_DOWNSAMPLE: dict[int, tuple[bool, ...]] = {
    32: (True, True, False, False),
    **{r: (True,) * (len(m) - 1) + (False,) for r, m in D_MULTIPLIERS.items() if r != 32},
}
D_RESOLUTIONS: dict[int, tuple[int, ...]] = {
    32: (16, 16, 16, 16),  # sic: their labels (the blocks end at 16, 8, 8, 8)
    64: (32, 16, 8, 4, 4),
    128: (64, 32, 16, 8, 4, 4),
    256: (128, 64, 32, 16, 8, 4, 4),
}
SIZES = tuple(sorted(set(G_MULTIPLIERS) & set(D_MULTIPLIERS)))  # both networks: 32, 64, 128, 256


def g_resolutions(resolution: int) -> tuple[int, ...]:
    """G's blocks' output resolutions (their G_arch labels): 8, 16, ..., resolution."""
    return tuple(BOTTOM_WIDTH * 2 ** (i + 1) for i in range(len(G_MULTIPLIERS[resolution])))


def attention_resolutions(resolution: int) -> tuple[int, ...]:
    """The attention resolutions both G and D have at this image size (their labels)."""
    return tuple(sorted(set(g_resolutions(resolution)) & set(D_RESOLUTIONS[resolution])))


# ---------------------------------------------------------------------------------------
# Their layers: spectral norm, conv / linear / embedding, batch norms


@dataclass(frozen=True)
class Spectral:
    """Their layers.SN settings."""

    num_svs: int = 1
    num_itrs: int = 1
    eps: float = 1e-12


def _normalise(x: jax.Array, eps: float) -> jax.Array:
    """torch's F.normalize over the last axis: x / max(||x||, eps)."""
    return x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), eps)


def _gram_schmidt(x: jax.Array, ys: Sequence[jax.Array]) -> jax.Array:
    for y in ys:
        x = x - (y @ x.T) * y / (y @ y.T)
    return x


def power_iteration(w: jax.Array, us: Sequence[jax.Array], eps: float) -> tuple[list[jax.Array], list[jax.Array]]:
    """One step of their power method for the top len(us) singular values of w [out, fan_in]:
    (the values, differentiable in w; the new u's). u, v are constants (no gradient)."""
    frozen = lax.stop_gradient(w)
    vs: list[jax.Array] = []
    new_us: list[jax.Array] = []
    values = []
    for u in us:
        v = _normalise(_gram_schmidt(u @ frozen, vs), eps)
        vs.append(v)
        u = _normalise(_gram_schmidt(v @ frozen.T, new_us), eps)
        new_us.append(u)
        values.append(jnp.squeeze((lax.stop_gradient(v) @ w.T) @ lax.stop_gradient(u).T))
    return values, new_us


def spectral_sigma(module: nn.Module, matrix: jax.Array, spectral: Spectral, update_stats: bool) -> jax.Array:
    """sigma_0 of matrix [out, fan_in] by their SN, with `module`'s buffers 'u<i>', 'sv<i>'."""
    rows = matrix.shape[0]

    def draw() -> jax.Array:  # their torch.randn(1, num_outputs)
        return jax.random.normal(module.make_rng("params"), (1, rows), jnp.float32)

    us = [module.variable("batch_stats", f"u{i}", draw) for i in range(spectral.num_svs)]
    svs = [module.variable("batch_stats", f"sv{i}", jnp.ones, (1,)) for i in range(spectral.num_svs)]
    w = matrix.astype(jnp.float32)
    current = [u.value for u in us]
    if update_stats and not module.is_initializing():
        for _ in range(spectral.num_itrs):
            values, current = power_iteration(w, current, spectral.eps)
        for variable, u in zip(us, current, strict=True):
            variable.value = u
        for variable, value in zip(svs, values, strict=True):
            variable.value = lax.stop_gradient(value).reshape(1)
    else:
        values, _ = power_iteration(w, current, spectral.eps)
    return values[0]


def weight_init(style: str) -> Callable[..., jax.Array]:
    if style == "ortho":
        return nn.initializers.orthogonal()
    if style == "N02":
        return nn.initializers.normal(0.02)
    if style in ("xavier", "glorot"):
        return nn.initializers.xavier_uniform()
    raise ValueError(f"init={style!r}: use one of {', '.join(INITS)}")


def torch_bias_init(fan_in: int) -> Callable[..., jax.Array]:
    """torch's default bias init for conv and linear layers: U(-1 / sqrt(fan_in), 1 / sqrt(fan_in))."""
    bound = 1 / np.sqrt(fan_in)
    return lambda key, shape, dtype=jnp.float32: jax.random.uniform(key, shape, dtype, -bound, bound)


class Linear(nn.Module):
    """Their SNLinear (or nn.Linear without spectral norm): kernel [in, out], bias [out]."""

    features: int
    use_bias: bool = True
    spectral: Spectral | None = None
    initialisation: str = "ortho"

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        fan_in = x.shape[-1]
        kernel = self.param("kernel", weight_init(self.initialisation), (fan_in, self.features))
        if self.spectral is not None:
            kernel = kernel / spectral_sigma(self, kernel.T, self.spectral, update_stats).astype(kernel.dtype)
        y = x @ kernel
        if self.use_bias:
            y = y + self.param("bias", torch_bias_init(fan_in), (self.features,))
        return y


class Conv(nn.Module):
    """Their SNConv2d (or nn.Conv2d): a size x size conv, stride 1, zero padding (size - 1) // 2;
    kernel HWIO."""

    features: int
    size: int = 3
    use_bias: bool = True
    spectral: Spectral | None = None
    initialisation: str = "ortho"

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool = False) -> jax.Array:
        fan_in = x.shape[-1] * self.size * self.size
        kernel = self.param(
            "kernel", weight_init(self.initialisation), (self.size, self.size, x.shape[-1], self.features)
        )
        if self.spectral is not None:
            matrix = kernel.reshape(-1, self.features).T
            kernel = kernel / spectral_sigma(self, matrix, self.spectral, update_stats).astype(kernel.dtype)
        pad = (self.size - 1) // 2
        y = lax.conv_general_dilated(
            x, kernel, (1, 1), ((pad, pad), (pad, pad)), dimension_numbers=("NHWC", "HWIO", "NHWC")
        )
        if self.use_bias:
            y = y + self.param("bias", torch_bias_init(fan_in), (self.features,))
        return y


class Embedding(nn.Module):
    """Their SNEmbedding (or nn.Embedding): a table [num_embeddings, features] (its rows the
    spectral norm's outputs)."""

    num_embeddings: int
    features: int
    spectral: Spectral | None = None
    initialisation: str = "ortho"

    @nn.compact
    def __call__(self, labels: jax.Array, update_stats: bool = False) -> jax.Array:
        table = self.param("embedding", weight_init(self.initialisation), (self.num_embeddings, self.features))
        if self.spectral is not None:
            table = table / spectral_sigma(self, table, self.spectral, update_stats).astype(table.dtype)
        return jnp.take(table, labels, axis=0)


def batch_normalise(
    module: nn.Module,
    x: jax.Array,
    eps: float,
    update_stats: bool,
    axis_name: str | None,
    running_stats: bool,
    momentum: float = 0.1,
) -> jax.Array:
    """torch's F.batch_norm without affine, the stored statistics `module`'s 'mean' and 'var'
    (their stored_mean, stored_var): the batch's (and, with update_stats, the stored ones moved
    towards them, the variance unbiased) or, with running_stats, the stored ones."""
    features = x.shape[-1]
    stored_mean = module.variable("batch_stats", "mean", jnp.zeros, (features,))
    stored_var = module.variable("batch_stats", "var", jnp.ones, (features,))
    wide = x.astype(jnp.promote_types(x.dtype, jnp.float32))
    if running_stats:
        mean, var = stored_mean.value, stored_var.value
    else:
        axes = tuple(range(x.ndim - 1))
        mean, mean_of_squares = jnp.mean(wide, axes), jnp.mean(jnp.square(wide), axes)
        count = int(np.prod([x.shape[a] for a in axes]))
        if axis_name is not None:
            mean, mean_of_squares = lax.pmean((mean, mean_of_squares), axis_name)
            count = count * lax.psum(1, axis_name)
        var = jnp.maximum(mean_of_squares - jnp.square(mean), 0.0)
        if update_stats and not module.is_initializing():
            unbiased = var * count / jnp.maximum(count - 1, 1)
            stored_mean.value = (1 - momentum) * stored_mean.value + momentum * lax.stop_gradient(mean)
            stored_var.value = (1 - momentum) * stored_var.value + momentum * lax.stop_gradient(unbiased)
    return ((wide - mean) * lax.rsqrt(var + eps)).astype(x.dtype)


class ConditionalBatchNorm(nn.Module):
    """Their ccbn: BN(x) * (1 + gain(y)) + bias(y); gain and bias are linear layers of y
    [B, in] (shared embedding) or embeddings of the classes y [B] (`classes` > 0)."""

    eps: float = 1e-5
    classes: int = 0  # > 0: y are classes (their G without a shared embedding)
    spectral: Spectral | None = None
    initialisation: str = "ortho"

    @nn.compact
    def __call__(self, x, y, update_stats: bool, axis_name: str | None, running_stats: bool) -> jax.Array:
        features = x.shape[-1]
        if self.classes:
            gain = Embedding(self.classes, features, initialisation=self.initialisation, name="gain")(y)
            bias = Embedding(self.classes, features, initialisation=self.initialisation, name="bias")(y)
        else:
            gain = Linear(features, False, self.spectral, self.initialisation, name="gain")(y, update_stats)
            bias = Linear(features, False, self.spectral, self.initialisation, name="bias")(y, update_stats)
        out = batch_normalise(self, x, self.eps, update_stats, axis_name, running_stats)
        return out * (1 + gain)[:, None, None, :] + bias[:, None, None, :]


class OutputBatchNorm(nn.Module):
    """Their bn: BN with its own gain (starts at 1) and bias (0)."""

    eps: float = 1e-5

    @nn.compact
    def __call__(self, x, update_stats: bool, axis_name: str | None, running_stats: bool) -> jax.Array:
        gain = self.param("gain", nn.initializers.ones, (x.shape[-1],))
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return batch_normalise(self, x, self.eps, update_stats, axis_name, running_stats) * gain + bias


def upsample(x: jax.Array) -> jax.Array:
    """Nearest-neighbour 2x (their F.interpolate(scale_factor=2))."""
    return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def downsample(x: jax.Array) -> jax.Array:
    return nn.avg_pool(x, (2, 2), strides=(2, 2))


def attention(x: jax.Array, spectral: Spectral | None, init: str, update_stats: bool, name: str) -> jax.Array:
    """SAGAN's attention with their SN 1x1 convs (no bias)."""

    def conv(features: int, conv_name: str, inputs: jax.Array) -> jax.Array:
        layer = Conv(features, 1, use_bias=False, spectral=spectral, initialisation=init, name=conv_name)
        return layer(inputs, update_stats)

    return SelfAttention(name=name)(x, conv)


class GeneratorBlock(nn.Module):
    features: int
    classes: int = 0  # > 0: the ccBNs embed the classes
    spectral: Spectral | None = None
    initialisation: str = "ortho"
    bn_eps: float = 1e-5

    @nn.compact
    def __call__(self, x, y, update_stats: bool, axis_name: str | None, running_stats: bool) -> jax.Array:
        def norm(name: str, h: jax.Array) -> jax.Array:
            bn = ConditionalBatchNorm(self.bn_eps, self.classes, self.spectral, self.initialisation, name=name)
            return bn(h, y, update_stats, axis_name, running_stats)

        def conv(size: int, name: str, h: jax.Array) -> jax.Array:
            return Conv(self.features, size, spectral=self.spectral, initialisation=self.initialisation, name=name)(
                h, update_stats
            )

        h = upsample(nn.relu(norm("bn1", x)))
        h = conv(3, "conv1", h)
        h = conv(3, "conv2", nn.relu(norm("bn2", h)))
        return h + conv(1, "conv_sc", upsample(x))


def _labels(labels: jax.Array | None, classes: int, batch: int, network: str) -> jax.Array:
    """Classes [B] (integers; one-hot [B, classes] as their argmax); None with one class: class 0."""
    if labels is None:
        if classes == 1:
            return jnp.zeros((batch,), jnp.int32)
        raise ValueError(f"a conditional BigGAN {network} (n_classes={classes}) needs labels")
    labels = jnp.asarray(labels)
    return jnp.argmax(labels, axis=-1) if labels.ndim == 2 else labels.astype(jnp.int32)


class Generator(nn.Module):
    """G(z [B, dim_z], labels [B]) -> images [B, R, R, img_channels] in [-1, 1]. The fields are
    their Generator's arguments (G_ch, dim_z, bottom_width is 4, resolution, G_attn as
    resolutions, n_classes, num_G_SVs, num_G_SV_itrs, G_shared, shared_dim, hier, BN_eps,
    SN_eps, G_param == 'SN', G_init), with their defaults."""

    ch: int = 64
    dim_z: int = 128
    resolution: int = 128
    attention: tuple[int, ...] = (64,)
    num_classes: int = 1000
    num_svs: int = 1
    num_sv_itrs: int = 1
    shared_embedding: bool = True
    shared_dim: int = 0  # 0: dim_z
    hierarchical: bool = False
    bn_eps: float = 1e-5
    sn_eps: float = 1e-12
    spectral_norm: bool = True
    initialisation: str = "ortho"
    img_channels: int = 3

    @property
    def c_dim(self) -> int:  # the name NvidiaNetwork reads
        return self.num_classes

    @property
    def num_slots(self) -> int:
        """The chunks z is split into: one per block and one for the first linear layer (hier)."""
        return len(G_MULTIPLIERS[self.resolution]) + 1 if self.hierarchical else 1

    @property
    def latent_size(self) -> int:
        """z's size: dim_z, rounded down to a multiple of num_slots (as theirs)."""
        return self.dim_z // self.num_slots * self.num_slots

    @nn.compact
    def __call__(
        self,
        z: jax.Array,
        labels: jax.Array | None = None,
        update_stats: bool = False,
        axis_name: str | None = None,
        running_stats: bool = False,
    ) -> jax.Array:
        if z.shape[-1] != self.latent_size:
            raise ValueError(f"z of shape {z.shape}: this generator takes {self.latent_size} numbers per example")
        if self.hierarchical and not self.shared_embedding:
            raise ValueError("hier needs G_shared: each block's input is [shared(c), its chunk of z]")
        spectral = Spectral(self.num_svs, self.num_sv_itrs, self.sn_eps) if self.spectral_norm else None
        batch = z.shape[0]
        classes = _labels(labels, self.num_classes, batch, "generator")
        multipliers = G_MULTIPLIERS[self.resolution]
        if self.shared_embedding:
            embedding = Embedding(
                self.num_classes, self.shared_dim or self.dim_z, initialisation=self.initialisation, name="shared"
            )
            y = embedding(classes)
        else:
            y = classes
        if self.hierarchical:
            chunks = jnp.split(z, self.num_slots, axis=-1)
            z, ys = chunks[0], [jnp.concatenate([y, chunk], axis=-1) for chunk in chunks[1:]]
        else:
            ys = [y] * len(multipliers)
        width = self.ch * multipliers[0]
        linear = Linear(width * BOTTOM_WIDTH**2, spectral=spectral, initialisation=self.initialisation, name="linear")
        h = linear(z, update_stats).reshape(batch, width, BOTTOM_WIDTH, BOTTOM_WIDTH).transpose(0, 2, 3, 1)
        for index, (multiplier, resolution) in enumerate(zip(multipliers, g_resolutions(self.resolution), strict=True)):
            block = GeneratorBlock(
                self.ch * multiplier,
                0 if self.shared_embedding else self.num_classes,
                spectral,
                self.initialisation,
                self.bn_eps,
                name=f"blocks_{index}_0",
            )
            h = block(h, ys[index], update_stats, axis_name, running_stats)
            if resolution in self.attention:
                h = attention(h, spectral, self.initialisation, update_stats, f"blocks_{index}_1")
        h = nn.relu(OutputBatchNorm(self.bn_eps, name="output_bn")(h, update_stats, axis_name, running_stats))
        out = Conv(self.img_channels, 3, spectral=spectral, initialisation=self.initialisation, name="output_conv")(
            h, update_stats
        )
        return jnp.tanh(out)


class DiscriminatorBlock(nn.Module):
    features: int
    hidden: int
    preactivation: bool
    down: bool
    spectral: Spectral
    initialisation: str = "ortho"

    @nn.compact
    def __call__(self, x: jax.Array, update_stats: bool) -> jax.Array:
        def conv(features: int, size: int, name: str, h: jax.Array) -> jax.Array:
            return Conv(features, size, spectral=self.spectral, initialisation=self.initialisation, name=name)(
                h, update_stats
            )

        h = conv(self.hidden, 3, "conv1", nn.relu(x) if self.preactivation else x)
        h = conv(self.features, 3, "conv2", nn.relu(h))
        if self.down:
            h = downsample(h)
        shortcut = x
        learnable = x.shape[-1] != self.features or self.down
        if self.preactivation:
            shortcut = conv(self.features, 1, "conv_sc", shortcut) if learnable else shortcut
            shortcut = downsample(shortcut) if self.down else shortcut
        else:
            shortcut = downsample(shortcut) if self.down else shortcut
            shortcut = conv(self.features, 1, "conv_sc", shortcut) if learnable else shortcut
        return h + shortcut


class Discriminator(nn.Module):
    """D(images [B, R, R, img_channels], labels [B]) -> logits [B, output_dim]. The fields are
    their Discriminator's arguments (D_ch, D_wide, resolution, D_attn as resolutions,
    n_classes, num_D_SVs, num_D_SV_itrs, SN_eps, output_dim, D_init), with their defaults.
    Conditional D without labels: the linear term only."""

    ch: int = 64
    wide: bool = True
    resolution: int = 128
    attention: tuple[int, ...] = (64,)
    num_classes: int = 1000
    num_svs: int = 1
    num_sv_itrs: int = 1
    sn_eps: float = 1e-12
    output_dim: int = 1
    initialisation: str = "ortho"
    img_channels: int = 3

    @property
    def c_dim(self) -> int:
        return self.num_classes

    @nn.compact
    def __call__(
        self, x: jax.Array, labels: jax.Array | None = None, update_stats: bool = False, axis_name: str | None = None
    ) -> jax.Array:
        spectral = Spectral(self.num_svs, self.num_sv_itrs, self.sn_eps)
        h = x
        blocks = zip(
            D_MULTIPLIERS[self.resolution], D_DOWNSAMPLE[self.resolution], D_RESOLUTIONS[self.resolution], strict=True
        )
        for index, (multiplier, down, resolution) in enumerate(blocks):
            features = self.ch * multiplier
            hidden = features if self.wide else h.shape[-1]
            block = DiscriminatorBlock(
                features, hidden, index > 0, down, spectral, self.initialisation, name=f"blocks_{index}_0"
            )
            h = block(h, update_stats)
            if resolution in self.attention:
                h = attention(h, spectral, self.initialisation, update_stats, f"blocks_{index}_1")
        phi = jnp.sum(nn.relu(h), axis=(1, 2))
        out = Linear(self.output_dim, spectral=spectral, initialisation=self.initialisation, name="linear")(
            phi, update_stats
        )
        if labels is None and self.num_classes > 1:
            return out
        classes = _labels(labels, self.num_classes, x.shape[0], "discriminator")
        embed = Embedding(
            self.num_classes, phi.shape[-1], spectral=spectral, initialisation=self.initialisation, name="embed"
        )
        return out + jnp.sum(embed(classes, update_stats) * phi, axis=-1, keepdims=True)


# ---------------------------------------------------------------------------------------
# The authors' weights

# Their constructors' arguments that shape the networks, with their defaults (BigGAN.py);
# img_channels is ours (theirs: 3). train.py passes utils.prepare_parser's values, whose
# defaults differ for G_shared (False), SN_eps (1e-8) and G_attn / D_attn ('64').
BIGGAN_G_DEFAULTS: dict[str, Any] = dict(
    G_ch=64,  # channel multiplier
    dim_z=128,  # z's size (rounded down to a multiple of the slots with hier)
    bottom_width=4,  # G's starting resolution (only 4 here: their G_arch labels assume it)
    resolution=128,  # the images'
    G_attn="64",  # attention resolutions, '_'-separated ('0': none)
    n_classes=1000,
    num_G_SVs=1,  # singular vectors tracked per SN weight
    num_G_SV_itrs=1,  # power iterations per training call
    G_shared=True,  # shared class embedding, linear ccBN gains
    shared_dim=0,  # its size (0: dim_z)
    hier=False,  # hierarchical z
    BN_eps=1e-5,
    SN_eps=1e-12,
    G_param="SN",  # 'SN': spectral norm in G; anything else: none
    G_init="ortho",  # only the initialisation: loaded weights replace it
    norm_style="bn",  # only 'bn' here
    cross_replica=False,  # only False here (their SyncBN keeps other buffers)
    mybn=False,  # only False here
    img_channels=3,
)
BIGGAN_D_DEFAULTS: dict[str, Any] = dict(
    D_ch=64,
    D_wide=True,  # hidden channels: the block's output (True) or input (their --D_thin)
    resolution=128,
    D_attn="64",
    n_classes=1000,
    num_D_SVs=1,
    num_D_SV_itrs=1,
    SN_eps=1e-12,
    output_dim=1,
    D_init="ortho",
    D_param="SN",  # only 'SN' (their D has no other)
    img_channels=3,
)
_ONLY = {"norm_style": "bn", "cross_replica": False, "mybn": False, "D_param": "SN", "bottom_width": BOTTOM_WIDTH}


def parse_attention(spec: Any) -> tuple[int, ...]:
    """Their '16_32' (or an int, or a list) -> (16, 32); '0' -> ()."""
    if isinstance(spec, int | np.integer):
        items: list[Any] = [spec]
    elif isinstance(spec, str):
        items = spec.split("_")
    else:
        items = list(spec)
    return tuple(sorted({int(i) for i in items} - {0}))


def biggan_module(kind: str, **arch: Any) -> nn.Module:
    """Their Generator ('G') or Discriminator ('D') for the given constructor arguments."""
    defaults = {"G": BIGGAN_G_DEFAULTS, "D": BIGGAN_D_DEFAULTS}.get(kind)
    if defaults is None:
        raise ValueError(f"kind={kind!r}: use 'G' or 'D'")
    unknown = sorted(set(arch) - set(defaults))
    if unknown:
        raise TypeError(f"unknown architecture arguments {unknown}; known: {list(defaults)}")
    args = {**defaults, **arch}
    for key, only in _ONLY.items():
        if key in args and args[key] != only:
            raise ValueError(f"{key}={args[key]!r}: only {only!r} is supported")
    sizes = G_MULTIPLIERS if kind == "G" else D_MULTIPLIERS
    if args["resolution"] not in sizes:
        raise ValueError(f"resolution={args['resolution']}: their {kind}_arch has {', '.join(map(str, sizes))}")
    if kind == "G":
        return Generator(
            ch=args["G_ch"],
            dim_z=args["dim_z"],
            resolution=args["resolution"],
            attention=parse_attention(args["G_attn"]),
            num_classes=args["n_classes"],
            num_svs=args["num_G_SVs"],
            num_sv_itrs=args["num_G_SV_itrs"],
            shared_embedding=args["G_shared"],
            shared_dim=args["shared_dim"],
            hierarchical=args["hier"],
            bn_eps=args["BN_eps"],
            sn_eps=args["SN_eps"],
            spectral_norm=args["G_param"] == "SN",
            initialisation="xavier" if args["G_init"] == "glorot" else args["G_init"],
            img_channels=args["img_channels"],
        )
    return Discriminator(
        ch=args["D_ch"],
        wide=args["D_wide"],
        resolution=args["resolution"],
        attention=parse_attention(args["D_attn"]),
        num_classes=args["n_classes"],
        num_svs=args["num_D_SVs"],
        num_sv_itrs=args["num_D_SV_itrs"],
        sn_eps=args["SN_eps"],
        output_dim=args["output_dim"],
        initialisation="xavier" if args["D_init"] == "glorot" else args["D_init"],
        img_channels=args["img_channels"],
    )


_BUFFER = re.compile(r"^(u|sv)\d+$")
_STATS = {"stored_mean": "mean", "stored_var": "var"}
_OUTPUT_LAYER = {"0": "output_bn", "2": "output_conv"}  # their output_layer: Sequential(bn, ReLU, conv)


def _our_path(key: str) -> tuple[str, tuple[str, ...]]:
    """(collection, path without the leaf's final name for 'weight') of one of their keys."""
    parts = key.split(".")
    if parts[0] == "blocks" and len(parts) > 3:
        parts = [f"blocks_{parts[1]}_{parts[2]}", *parts[3:]]
    elif parts[0] == "output_layer" and len(parts) > 2 and parts[1] in _OUTPUT_LAYER:
        parts = [_OUTPUT_LAYER[parts[1]], *parts[2:]]
    leaf = parts[-1]
    if leaf in _STATS:
        return "batch_stats", (*parts[:-1], _STATS[leaf])
    if _BUFFER.match(leaf):
        return "batch_stats", tuple(parts)
    return "params", tuple(parts)


def _example_inputs(module: nn.Module) -> tuple[jax.Array, jax.Array]:
    labels = jnp.zeros((2,), jnp.int32)
    if isinstance(module, Generator):
        return jnp.zeros((2, module.latent_size)), labels
    return jnp.zeros((2, module.resolution, module.resolution, module.img_channels)), labels


def _to_ours(array: np.ndarray, our_leaf: str) -> np.ndarray:
    """Their layout -> ours: conv OIHW -> HWIO, linear [out, in] -> [in, out]; the rest as is."""
    if our_leaf == "kernel":
        return np.transpose(array, (2, 3, 1, 0)) if array.ndim == 4 else array.T
    return array


def _their_shape(ours: tuple[int, ...], our_leaf: str) -> tuple[int, ...]:
    if our_leaf == "kernel":
        return (ours[3], ours[2], ours[0], ours[1]) if len(ours) == 4 else tuple(reversed(ours))
    return ours


def variables_from_state_dict(module: nn.Module, state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Our variables ({'params', 'batch_stats'}) from their state dict; StateDictMismatch names
    the first key (in the file's order) that is unknown or of the wrong shape, or the first missing."""
    x, labels = _example_inputs(module)
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), x, labels=labels))
    expected = {(c, *path): tuple(v.shape) for c in shapes for path, v in flatten_dict(shapes[c]).items()}
    flat: dict[tuple[str, ...], jax.Array] = {}
    for key, array in state_dict.items():
        shape = tuple(np.shape(array))
        collection, path = _our_path(key)
        target = (collection, *path)
        if path[-1] == "weight":
            candidates = [(collection, *path[:-1], leaf) for leaf in ("kernel", "embedding")]
            target = next((c for c in candidates if c in expected), target)
        want = expected.get(target)
        if want is None:
            raise StateDictMismatch(f"{key}: shape {shape}, not a tensor of this architecture")
        if shape != _their_shape(want, target[-1]):
            raise StateDictMismatch(f"{key}: shape {shape}, expected {_their_shape(want, target[-1])}")
        flat[target] = jnp.asarray(_to_ours(np.asarray(array), target[-1]), jnp.float32)
    missing = [path for path in expected if path not in flat]
    if missing:
        path = missing[0]
        raise StateDictMismatch(
            f"{'/'.join(path)}: missing from the state dict (their shape {_their_shape(expected[path], path[-1])})"
        )
    nested = unflatten_dict(flat)
    return {c: nested[c] for c in ("params", "batch_stats") if c in nested}


def load_biggan(path: str | Path, kind: str, **arch: Any) -> NvidiaNetwork:
    """Their G or D from `torch.save(net.state_dict())` at `path`, read without executing
    pickled code, for their constructor's arguments `arch` (BIGGAN_G_DEFAULTS / BIGGAN_D_DEFAULTS
    name them). Called as stylegan2's NvidiaNetwork: G(z, c) -> images NHWC (G(z, c,
    running_stats=True): their G.eval()'s stored statistics; without, the batch's),
    D(images NHWC, c) -> logits [N] (their eval mode); c classes [N] or one-hot [N, classes]."""
    module = biggan_module(kind, **arch)
    return NvidiaNetwork(kind, module, variables_from_state_dict(module, load_state_dict(path)))


# ---------------------------------------------------------------------------------------
# The model family


def build(cfg: Any, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    """model=biggan's G and D: the same attention resolution in both; one class unconditional."""
    size, _, channels = image_shape
    classes = cfg.num_classes if cfg.conditioning != "none" else 1
    attention = () if cfg.attention_resolution is None else (cfg.attention_resolution,)
    g, d = cfg.generator, cfg.discriminator
    generator = Generator(
        ch=g.ch,
        dim_z=cfg.latent_dim,
        resolution=size,
        attention=attention,
        num_classes=classes,
        num_svs=g.num_svs,
        num_sv_itrs=g.num_sv_itrs,
        shared_embedding=g.shared_embedding,
        shared_dim=g.shared_dim or 0,
        hierarchical=g.hierarchical,
        bn_eps=g.bn_eps,
        sn_eps=cfg.sn_eps,
        spectral_norm=g.spectral_norm,
        initialisation=g.init,
        img_channels=channels,
    )
    discriminator = Discriminator(
        ch=d.ch,
        wide=d.wide,
        resolution=size,
        attention=attention,
        num_classes=classes,
        num_svs=d.num_svs,
        num_sv_itrs=d.num_sv_itrs,
        sn_eps=cfg.sn_eps,
        initialisation=d.init,
        img_channels=channels,
    )
    return generator, discriminator


def _listed(values: Sequence[int]) -> str:
    return ", ".join(map(str, values))


def fits_the_images(cfg: Any, data: DataFacts) -> str | None:
    """The image size their G_arch and D_arch both have; the attention resolution, the
    channels there and hier's chunks at that size."""
    size = data.image_size
    if size is None:
        images = ", ".join(names_where(lambda p: p.image_size is not None))
        return f"model=biggan: needs an image dataset ({images}); dataset={data.name} is not one"
    key = f"dataset.{data.image_size_key}"
    if size not in SIZES:
        fit = min((s for s in SIZES if s >= size), default=SIZES[-1])
        return (
            f"{key}={size}: model=biggan supports {', '.join(map(str, SIZES))} (their G_arch and D_arch); "
            f"set {key}={fit} (the images are resized)"
        )
    at = cfg.attention_resolution
    if at is not None:
        valid = attention_resolutions(size)
        if at not in valid:
            g_blocks, d_blocks = _listed(g_resolutions(size)), _listed(sorted(set(D_RESOLUTIONS[size])))
            return (
                f"model.attention_resolution={at}: at {size}x{size} G has blocks at {g_blocks} and D at "
                f"{d_blocks} (their G_arch / D_arch labels); valid values are null, {_listed(valid)}"
            )
        g_channels = cfg.generator.ch * G_MULTIPLIERS[size][g_resolutions(size).index(at)]
        labelled = zip(D_MULTIPLIERS[size], D_RESOLUTIONS[size], strict=True)
        d_channels = min(cfg.discriminator.ch * m for m, r in labelled if r == at)
        for network, channels in (("generator", g_channels), ("discriminator", d_channels)):
            problem = attention_fits(channels, at, at)
            if problem:
                return f"model.{network}.ch={cfg[network].ch}: attention at {at}x{at} sees {problem}"
    if cfg.generator.hierarchical:
        slots = len(G_MULTIPLIERS[size]) + 1
        if cfg.latent_dim % slots:
            fit = max(slots, cfg.latent_dim // slots * slots)
            return (
                f"model.latent_dim={cfg.latent_dim}: model.generator.hierarchical splits z into {slots} equal "
                f"chunks at {size}x{size} (one per G block, one for the first linear layer); set a multiple "
                f"of {slots}, e.g. {fit}"
            )
    return None


def _hierarchical_needs_the_shared_embedding(cfg: Any) -> str | None:
    g = cfg.generator
    if g.hierarchical and not g.shared_embedding:
        return (
            "model.generator.hierarchical=true: each block's input is [shared embedding, its chunk of z]; "
            "set model.generator.shared_embedding=true"
        )
    if g.shared_dim is not None and not g.shared_embedding:
        return (
            f"model.generator.shared_dim={g.shared_dim} has no effect without the shared embedding; "
            "set it to null or model.generator.shared_embedding=true"
        )
    return None


@dataclass
class BigGANGeneratorConfig:
    ch: int = at_least(1)  # channel multiplier (their --G_ch)
    shared_embedding: bool = MISSING  # their --G_shared
    shared_dim: int | None = rule(MISSING, "null or an integer >= 1", lambda v: v is None or v >= 1)
    hierarchical: bool = MISSING  # their --hier
    spectral_norm: bool = MISSING  # their --G_param SN
    num_svs: int = at_least(1)  # their --num_G_SVs
    num_sv_itrs: int = at_least(1)  # their --num_G_SV_itrs
    bn_eps: float = rule(MISSING, "a number > 0", lambda v: v > 0)  # their --BN_eps
    init: str = one_of(lambda: INITS)  # their --G_init


@dataclass
class BigGANDiscriminatorConfig:
    ch: int = at_least(1)  # their --D_ch
    wide: bool = MISSING  # their D_wide (--D_thin: false)
    num_svs: int = at_least(1)
    num_sv_itrs: int = at_least(1)
    init: str = one_of(lambda: INITS)  # their --D_init


@dataclass
class BigGANConfig:
    name: str = "biggan"
    latent_dim: int = at_least(1)  # z's size (their --dim_z)
    latent_dist: str = one_of(latent_distributions)
    conditioning: str = one_of(lambda: CONDITIONINGS)
    num_classes: int = at_least(2)  # the dataset's, when conditioning (checked against it)
    # SAGAN's self-attention in G and D at this resolution (their --G_attn / --D_attn); null: none.
    attention_resolution: int | None = rule(MISSING, "null or an integer >= 4", lambda v: v is None or v >= 4)
    sn_eps: float = rule(MISSING, "a number > 0", lambda v: v > 0)  # their --SN_eps
    generator: BigGANGeneratorConfig = field(default_factory=BigGANGeneratorConfig)
    discriminator: BigGANDiscriminatorConfig = field(default_factory=BigGANDiscriminatorConfig)


register(
    ModelPart(
        "biggan",
        BigGANConfig,
        lambda cfg, data: build(cfg, data.shape),
        data_rule=fits_the_images,
        rules=(_hierarchical_needs_the_shared_embedding,),
    )
)
