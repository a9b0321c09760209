"""StyleGAN2 (Karras et al. 2020b) as in NVIDIA's stylegan2-ada-pytorch: a 'skip' generator
and a 'resnet' discriminator, unconditional or class-conditional (NVIDIA's --cond).

G = synthesis(mapping(z, c)):
  mapping    z / rms(z) (and, conditional, embed(c) / rms), `mapping.layers` fully connected
             layers with leaky ReLU and lr multiplier 0.01 -> w, broadcast to num_ws layers;
             the moving average of w (decay 0.995) lives in the 'w_average' collection and
             moves only when update_stats; truncation: w_avg + psi (w - w_avg) on the first
             `cutoff` layers (all when None).
  synthesis  a learned 4x4 constant, then per resolution: a 2x up-sampling modulated conv,
             a modulated conv (each with noise and leaky ReLU) and a toRGB whose output is
             added to the 2x up-sampled image so far. Noise (stylegan2_layers): 'const' the
             stored buffers (the 'noise_const' collection), 'random' per example from the
             example's key (fold_in(key, NOISE_PURPOSE), then the layer's index), 'none' none.
Training randomness of G's own (the step's `example_keys`, one key per example, given only
in training: ModelPart.generator_takes_keys): noise_mode 'random' draws the noise from them,
and style mixing (`style_mixing` = NVIDIA's style_mixing_prob) replaces, with that
probability, w from a cutoff layer in [1, num_ws) on by the w of a second latent (same
label) drawn from the key. NVIDIA's loss.py draws ONE decision and ONE cutoff per batch;
here each example draws its own from its key, so an example's output depends on its key
alone, not on the batch or how it is split over devices (same expectation per example).
The second latent's mapping leaves the moving average of w alone (NVIDIA's
skip_w_avg_update=True): it moves with the first latents' w only. Without keys (evaluation,
sampling) 'random' noise uses the stored buffers, as 'const', and nothing is mixed.
D: per resolution from the image's down to 8 a block (fromRGB at the first; two 3x3 convs,
the second down-sampling; 'resnet': plus a shortcut, a down-sampling 1x1 conv, both branches
times sqrt(1/2); 'orig': no shortcut, NVIDIA's cifar config), then at 4x4 minibatch standard
deviation, a 3x3 conv, a dense layer,
and the output layer: one logit, or (conditional) the projection of cmap_dim features
onto the mapped label, divided by sqrt(cmap_dim).
Channels at resolution r: min(channel_base // r, channel_max). Images are NHWC in [-1, 1].

`load_nvidia(path, kind, **arch)` reads a `torch.save(G.state_dict())` (or D's) of
NVIDIA's training/networks.py without executing pickled code, for the architecture
arguments named as NVIDIA's constructors name them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from gan_jax.data import DataFacts
from gan_jax.errors import ConfigError
from gan_jax.metrics.torch_format import StateDictError, load_state_dict
from gan_jax.models.parts import LATENT_DISTRIBUTIONS, ModelPart, latent_distributions, register
from gan_jax.models.stylegan2_layers import (
    Conv,
    FullyConnected,
    SynthesisLayer,
    ToRGB,
    fir_filter,
    fir_taps,
    minibatch_std,
    normalise_2nd_moment,
    upsample2d,
)
from gan_jax.schema import MISSING, at_least, one_of, optional_positive, positive, rule

MIN_RESOLUTION = 16  # the smallest image size this family builds
CONDITIONINGS = ("none", "projection")  # projection: NVIDIA's --cond (label embedding in G, projection D)
NOISE_MODES = ("const", "random", "none")  # G's per-layer noise (random: from the example keys in training)
D_ARCHITECTURES = ("resnet", "orig")  # D's blocks: with the residual shortcut, or without (NVIDIA's cifar)
NOISE_PURPOSE = 0  # folded into an example's key for its per-layer noise
MIXING_PURPOSE = 1  # folded into an example's key for style mixing (then 0: decision, 1: cutoff, 2: latent)
W_AVERAGE = "w_average"  # the collection of the mapping network's moving average of w
NOISE_CONST = "noise_const"  # the collection of the synthesis layers' stored noise


def channels_at(resolution: int, channel_base: int, channel_max: int) -> int:
    return min(channel_base // resolution, channel_max)


def block_resolutions(img_resolution: int) -> list[int]:
    """4, 8, ..., img_resolution."""
    return [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]


def num_ws(img_resolution: int) -> int:
    """The w's the synthesis network takes: one per conv (1 at 4x4, 2 above) and the last toRGB's."""
    return 2 * len(block_resolutions(img_resolution))


def mixing_cutoffs(example_keys: jax.Array, probability: float, layers: int) -> jax.Array:
    """Per example [B]: with `probability` a cutoff uniform in [1, layers), else `layers` (no
    mixing); each example's from its own key (NVIDIA draws one per batch)."""

    def one(key: jax.Array) -> jax.Array:
        key = jax.random.fold_in(key, MIXING_PURPOSE)
        cutoff = jax.random.randint(jax.random.fold_in(key, 1), (), 1, layers)
        mixed = jax.random.uniform(jax.random.fold_in(key, 0)) < probability
        return jnp.where(mixed, cutoff, layers)

    return jax.vmap(one)(example_keys)


def mixing_latents(example_keys: jax.Array, latent_dist: str, z_dim: int) -> jax.Array:
    """The second latents [B, z_dim] of style mixing, one from each example's key."""
    draw = LATENT_DISTRIBUTIONS[latent_dist]
    return jax.vmap(lambda key: draw(jax.random.fold_in(jax.random.fold_in(key, MIXING_PURPOSE), 2), (z_dim,)))(
        example_keys
    )


def mix_styles(ws: jax.Array, other: jax.Array, cutoffs: jax.Array) -> jax.Array:
    """ws [B, L, D] with layers >= cutoffs[b] taken from `other` (example b's)."""
    later = jnp.arange(ws.shape[1])[None, :, None] >= cutoffs[:, None, None]
    return jnp.where(later, other, ws)


def label_vectors(labels: jax.Array | None, c_dim: int) -> jax.Array | None:
    """Classes [B] (integers) as one-hot [B, c_dim]; vectors [B, c_dim] as they are."""
    if c_dim == 0:
        return None
    if labels is None:
        raise ValueError(f"a conditional StyleGAN2 (c_dim={c_dim}) needs labels")
    if labels.ndim == 1:
        return jax.nn.one_hot(labels, c_dim)
    return labels.astype(jnp.float32)


class MappingNetwork(nn.Module):
    z_dim: int  # 0: no latent (D's label mapping)
    c_dim: int  # 0: unconditional
    w_dim: int  # of the output
    num_layers: int  # fully connected layers
    num_ws: int | None = None  # broadcast w to this many layers (None: [B, w_dim])
    lr_multiplier: float = 0.01  # of every layer but the label embedding
    w_avg_decay: float | None = 0.995  # of the moving average of w (None: not tracked)

    @nn.compact
    def __call__(
        self,
        z: jax.Array | None,
        c: jax.Array | None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_stats: bool = False,
        axis_name: str | None = None,
    ) -> jax.Array:
        parts = []
        if self.z_dim:
            assert z is not None
            parts.append(normalise_2nd_moment(z.astype(jnp.float32)))
        if self.c_dim:
            assert c is not None
            parts.append(normalise_2nd_moment(FullyConnected(self.w_dim, name="embed")(c)))
        x = jnp.concatenate(parts, axis=1)
        for index in range(self.num_layers):
            x = FullyConnected(self.w_dim, lrelu=True, lr_multiplier=self.lr_multiplier, name=f"fc{index}")(x)
        if self.num_ws is None or self.w_avg_decay is None:
            return x
        w_avg = self.variable(W_AVERAGE, "w_avg", jnp.zeros, (self.w_dim,))
        if update_stats and self.is_mutable_collection(W_AVERAGE):
            batch_mean = jnp.mean(jax.lax.stop_gradient(x), axis=0)
            if axis_name is not None:
                batch_mean = jax.lax.pmean(batch_mean, axis_name)
            w_avg.value = batch_mean + self.w_avg_decay * (w_avg.value - batch_mean)
        ws = jnp.broadcast_to(x[:, None, :], (x.shape[0], self.num_ws, self.w_dim))
        if truncation_psi == 1:
            return ws
        truncated = w_avg.value + truncation_psi * (ws - w_avg.value)
        if truncation_cutoff is None:
            return truncated
        return jnp.concatenate([truncated[:, :truncation_cutoff], ws[:, truncation_cutoff:]], axis=1)


class SynthesisBlock(nn.Module):
    out_channels: int
    resolution: int
    img_channels: int
    first: bool  # the 4x4 block: a learned constant instead of an input
    conv_clamp: float | None = None  # clip conv outputs to +-this
    first_layer: int = 0  # the index of its first conv among the synthesis convs (its noise's fold-in)

    @nn.compact
    def __call__(
        self, x, img, ws: jax.Array, noise_mode: str, noise_keys: jax.Array | None = None
    ) -> tuple[jax.Array, jax.Array]:
        res, clamp, index = self.resolution, self.conv_clamp, self.first_layer
        if self.first:
            shape = (self.resolution, self.resolution, self.out_channels)
            const = self.param("const", nn.initializers.normal(1.0), shape)
            x = jnp.broadcast_to(const, (ws.shape[0], *const.shape))
            conv1 = SynthesisLayer(self.out_channels, res, conv_clamp=clamp, layer_index=index, name="conv1")
            x = conv1(x, ws[:, 0], noise_mode, noise_keys=noise_keys)
        else:
            conv0 = SynthesisLayer(self.out_channels, res, up=True, conv_clamp=clamp, layer_index=index, name="conv0")
            conv1 = SynthesisLayer(self.out_channels, res, conv_clamp=clamp, layer_index=index + 1, name="conv1")
            x = conv0(x, ws[:, 0], noise_mode, noise_keys=noise_keys)
            x = conv1(x, ws[:, 1], noise_mode, noise_keys=noise_keys)
        y = ToRGB(self.img_channels, self.conv_clamp, name="torgb")(x, ws[:, -1])
        img = y if img is None else upsample2d(img, fir_taps()) + y
        return x, img


class SynthesisNetwork(nn.Module):
    img_resolution: int
    img_channels: int
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512  # the most channels of any layer
    conv_clamp: float | None = None  # clip conv outputs to +-this

    @nn.compact
    def __call__(self, ws: jax.Array, noise_mode: str = "const", example_keys: jax.Array | None = None) -> jax.Array:
        """ws [B, num_ws, w_dim] -> images; `example_keys` [B]: 'random' noise's (training)."""
        noise_keys = None
        if example_keys is not None:
            noise_keys = jax.vmap(lambda key: jax.random.fold_in(key, NOISE_PURPOSE))(example_keys)
        x = img = None
        w_index = 0
        for res in block_resolutions(self.img_resolution):
            convs = 1 if res == 4 else 2
            block = SynthesisBlock(
                channels_at(res, self.channel_base, self.channel_max),
                res,
                self.img_channels,
                first=res == 4,
                conv_clamp=self.conv_clamp,
                first_layer=w_index,
                name=f"b{res}",
            )
            x, img = block(x, img, ws[:, w_index : w_index + convs + 1], noise_mode, noise_keys)
            w_index += convs
        assert img is not None
        return img


class Generator(nn.Module):
    """G(z [B, z_dim], labels=None, example_keys=None) -> images [B, R, R, img_channels]
    (NVIDIA's scale: [-1, 1] for trained models; no tanh). `example_keys` [B] (training):
    'random' noise and style mixing draw from them (the module docstring)."""

    z_dim: int
    c_dim: int  # 0: unconditional
    w_dim: int
    img_resolution: int
    img_channels: int
    mapping_layers: int = 8  # fully connected layers of the mapping network
    mapping_lr_multiplier: float = 0.01  # the mapping layers' learning-rate multiplier
    w_avg_decay: float = 0.995  # of the moving average of w
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512  # the most channels of any layer
    conv_clamp: float | None = None  # clip conv outputs to +-this (None: no clipping)
    noise_mode: str = "const"  # 'const' (stored noise), 'random' (example keys, else as const) or 'none'
    style_mixing: float = 0.0  # probability of mixing a second latent's w in, with example keys (training)
    latent_dist: str = "normal"  # the second latent's distribution (parts.LATENT_DISTRIBUTIONS)

    def setup(self) -> None:
        self.num_ws = num_ws(self.img_resolution)
        self.mapping = MappingNetwork(
            self.z_dim,
            self.c_dim,
            self.w_dim,
            self.mapping_layers,
            self.num_ws,
            self.mapping_lr_multiplier,
            self.w_avg_decay,
        )
        self.synthesis = SynthesisNetwork(
            self.img_resolution, self.img_channels, self.channel_base, self.channel_max, self.conv_clamp
        )

    def map_latents(
        self,
        z: jax.Array,
        labels: jax.Array | None = None,
        update_stats: bool = False,
        axis_name: str | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        example_keys: jax.Array | None = None,
    ) -> jax.Array:
        """z [B, z_dim] (and labels) -> w per layer [B, num_ws, w_dim]; with `example_keys` and
        style_mixing > 0, the layers from each example's cutoff on are its second latent's."""
        c = label_vectors(labels, self.c_dim)
        ws = self.mapping(z, c, truncation_psi, truncation_cutoff, update_stats, axis_name)
        if example_keys is None or self.style_mixing == 0:
            return ws
        other = self.mapping(
            mixing_latents(example_keys, self.latent_dist, self.z_dim), c, truncation_psi, truncation_cutoff
        )
        return mix_styles(ws, other, mixing_cutoffs(example_keys, self.style_mixing, self.num_ws))

    def synthesise(
        self,
        ws: jax.Array,
        update_stats: bool = False,
        axis_name: str | None = None,
        labels: jax.Array | None = None,
        noise_mode: str | None = None,
        example_keys: jax.Array | None = None,
    ) -> jax.Array:
        """w per layer [B, num_ws, w_dim] -> images; labels are unused (they act through w)."""
        return self.synthesis(ws, self.noise_mode if noise_mode is None else noise_mode, example_keys)

    def __call__(
        self,
        z: jax.Array,
        update_stats: bool = False,
        axis_name: str | None = None,
        labels: jax.Array | None = None,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str | None = None,
        example_keys: jax.Array | None = None,
    ) -> jax.Array:
        ws = self.map_latents(z, labels, update_stats, axis_name, truncation_psi, truncation_cutoff, example_keys)
        return self.synthesise(ws, noise_mode=noise_mode, example_keys=example_keys)


class DiscriminatorBlock(nn.Module):
    tmp_channels: int
    out_channels: int
    first: bool  # sees the image: a fromRGB layer
    conv_clamp: float | None = None  # clip conv outputs to +-this
    architecture: str = "resnet"  # 'resnet' (a shortcut, both branches x sqrt(1/2)) or 'orig' (none)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        clamp = self.conv_clamp
        if self.first:
            x = Conv(self.tmp_channels, 1, conv_clamp=clamp, name="fromrgb")(x)
        if self.architecture == "orig":
            x = Conv(self.tmp_channels, 3, conv_clamp=clamp, name="conv0")(x)
            return Conv(self.out_channels, 3, down=True, conv_clamp=clamp, name="conv1")(x)
        half = math.sqrt(0.5)
        shortcut = Conv(self.out_channels, 1, lrelu=False, down=True, use_bias=False, name="skip")(x, gain=half)
        x = Conv(self.tmp_channels, 3, conv_clamp=clamp, name="conv0")(x)
        x = Conv(self.out_channels, 3, down=True, conv_clamp=clamp, name="conv1")(x, gain=half)
        return shortcut + x


class DiscriminatorEpilogue(nn.Module):
    channels: int
    cmap_dim: int  # 0: unconditional
    mbstd_group_size: int | None = 4  # examples per minibatch-std group (None: the whole batch)
    mbstd_num_channels: int = 1  # features it appends (0: no minibatch std)
    conv_clamp: float | None = None  # clip conv outputs to +-this

    @nn.compact
    def __call__(self, x: jax.Array, cmap: jax.Array | None) -> jax.Array:
        if self.mbstd_num_channels:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = Conv(self.channels, 3, conv_clamp=self.conv_clamp, name="conv")(x)
        x = jnp.transpose(x, (0, 3, 1, 2)).reshape(x.shape[0], -1)  # NVIDIA's (C, H, W) order
        x = FullyConnected(self.channels, lrelu=True, name="fc")(x)
        x = FullyConnected(self.cmap_dim or 1, name="out")(x)
        if not self.cmap_dim:
            return x
        assert cmap is not None
        return jnp.sum(x * cmap, axis=1, keepdims=True) / math.sqrt(self.cmap_dim)


class Discriminator(nn.Module):
    """D(images [B, R, R, C], labels=None) -> logits [B, 1]."""

    c_dim: int  # 0: unconditional
    img_resolution: int
    img_channels: int
    channel_base: int = 32768  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512  # the most channels of any layer
    conv_clamp: float | None = None  # clip conv outputs to +-this (None: no clipping)
    mbstd_group_size: int | None = 4  # examples per minibatch-std group (None: the whole batch)
    mbstd_num_channels: int = 1  # features minibatch std appends (0: none)
    mapping_layers: int = 8  # layers of the label mapping (conditional)
    cmap_dim: int | None = None  # mapped label's size (None: the channels at 4x4)
    architecture: str = "resnet"  # blocks with the residual shortcut, or 'orig' without (NVIDIA's cifar)

    @nn.compact
    def __call__(
        self, x: jax.Array, update_stats: bool = False, axis_name: str | None = None, labels: jax.Array | None = None
    ) -> jax.Array:
        def channels(res: int) -> int:
            return channels_at(res, self.channel_base, self.channel_max)

        x = x.astype(jnp.float32)
        for res in reversed(block_resolutions(self.img_resolution)[1:]):
            first = res == self.img_resolution
            block = DiscriminatorBlock(
                channels(res), channels(res // 2), first, self.conv_clamp, self.architecture, name=f"b{res}"
            )
            x = block(x)
        cmap_dim = 0 if not self.c_dim else (self.cmap_dim or channels(4))
        cmap = None
        if self.c_dim:
            mapping = MappingNetwork(
                0, self.c_dim, cmap_dim, self.mapping_layers, None, w_avg_decay=None, name="mapping"
            )
            cmap = mapping(None, label_vectors(labels, self.c_dim))
        epilogue = DiscriminatorEpilogue(
            channels(4), cmap_dim, self.mbstd_group_size, self.mbstd_num_channels, self.conv_clamp, name="b4"
        )
        return epilogue(x, cmap)


# ---------------------------------------------------------------------------------------
# NVIDIA's weights


class StateDictMismatch(ValueError):
    """A state dict that does not fit the architecture; the message names the first bad key."""


# NVIDIA's constructor arguments and their defaults (training/networks.py, train.py).
NVIDIA_DEFAULTS: dict[str, Any] = dict(
    z_dim=512,  # latent size
    c_dim=0,  # label size (0: unconditional)
    w_dim=512,  # intermediate latent size
    img_resolution=1024,  # image size
    img_channels=3,  # image channels
    channel_base=32768,  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max=512,  # the most channels of any layer
    mapping_layers=8,  # mapping_kwargs.num_layers (G's, and D's label mapping)
    mbstd_group_size=4,  # epilogue_kwargs.mbstd_group_size
    mbstd_num_channels=1,  # epilogue_kwargs.mbstd_num_channels
    conv_clamp=None,  # clip conv outputs to +-this (NVIDIA's training uses 256)
    architecture="resnet",  # D's: 'resnet' or 'orig' (NVIDIA's cifar config); G is always 'skip'
)
_COMMON_ARGS = ("c_dim", "img_resolution", "img_channels", "channel_base", "channel_max", "conv_clamp")
_G_ARGS = ("z_dim", "w_dim", *_COMMON_ARGS)
_D_ARGS = (*_COMMON_ARGS, "mbstd_group_size", "mbstd_num_channels", "mapping_layers", "architecture")


def nvidia_module(kind: str, **arch: Any) -> nn.Module:
    """NVIDIA's Generator ('G') or Discriminator ('D') for the given constructor arguments."""
    unknown = sorted(set(arch) - set(NVIDIA_DEFAULTS))
    if unknown:
        raise TypeError(f"unknown architecture arguments {unknown}; known: {sorted(NVIDIA_DEFAULTS)}")
    args = {**NVIDIA_DEFAULTS, **arch}
    if kind == "G":
        return Generator(**{k: args[k] for k in _G_ARGS}, mapping_layers=args["mapping_layers"])
    if kind == "D":
        return Discriminator(**{k: args[k] for k in _D_ARGS})
    raise ValueError(f"kind={kind!r}: use 'G' or 'D'")


def _ours_from_nvidia(key: str, shape: tuple[int, ...]) -> tuple[str, tuple[str, ...], tuple[int, ...] | None]:
    """(collection, path, axis permutation from NVIDIA's layout to ours) of a state-dict key."""
    path = tuple(key.split("."))
    if path[-1] == "w_avg":
        return W_AVERAGE, path, None
    if path[-1] == "noise_const":
        return NOISE_CONST, path, None
    if path[-1] == "const":
        return "params", path, (1, 2, 0)  # [C, H, W] -> [H, W, C]
    if path[-1] == "weight" and len(shape) == 4:
        return "params", path, (2, 3, 1, 0)  # OIHW -> HWIO
    if path[-1] == "weight" and len(shape) == 2:
        return "params", path, (1, 0)  # [out, in] -> [in, out]
    return "params", path, None


def _nvidia_shape(ours: tuple[int, ...], permutation: tuple[int, ...] | None) -> tuple[int, ...]:
    if permutation is None:
        return ours
    inverse = np.argsort(permutation)
    return tuple(ours[i] for i in inverse)


def _example_inputs(module: nn.Module) -> tuple[jax.Array, dict[str, Any]]:
    """Inputs to initialise `module` with: a batch of one minibatch-std group (D), or of 2 (G)."""
    batch = 2 if isinstance(module, Generator) else (module.mbstd_group_size or 2)
    labels = {} if not module.c_dim else {"labels": jnp.zeros((batch,), jnp.int32)}
    if isinstance(module, Generator):
        return jnp.zeros((batch, module.z_dim)), labels
    size = module.img_resolution
    return jnp.zeros((batch, size, size, module.img_channels)), labels


def variables_from_state_dict(module: nn.Module, state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """gan_jax's variables ({'params', 'w_average', 'noise_const'}) from NVIDIA's state dict;
    StateDictMismatch names the first key that is unknown, missing or of the wrong shape."""
    x, labels = _example_inputs(module)
    expected = flatten_dict(jax.eval_shape(lambda: module.init(jax.random.key(0), x, **labels)))
    expected = {k: v.shape for k, v in expected.items()}
    flat: dict[tuple[str, ...], jax.Array] = {}
    reference_filter = fir_filter()
    for key, array in state_dict.items():
        if key.endswith("resample_filter"):
            if np.shape(array) != reference_filter.shape or not np.allclose(array, reference_filter, atol=1e-7):
                raise StateDictMismatch(f"{key}: shape {np.shape(array)}, not the [1,3,3,1] filter {reference_filter}")
            continue
        collection, path, permutation = _ours_from_nvidia(key, np.shape(array))
        want = expected.get((collection, *path))
        if want is None:
            raise StateDictMismatch(f"{key}: shape {tuple(array.shape)}, not a tensor of this architecture")
        want_nvidia = _nvidia_shape(tuple(want), permutation)
        if tuple(array.shape) != want_nvidia:
            raise StateDictMismatch(f"{key}: shape {tuple(array.shape)}, expected {want_nvidia}")
        converted = array if permutation is None else np.transpose(array, permutation)
        flat[(collection, *path)] = jnp.asarray(converted, jnp.float32)
    missing = [k for k in expected if k not in flat]
    if missing:
        name, ours = ".".join(missing[0][1:]), tuple(expected[missing[0]])
        want_nvidia = _nvidia_shape(ours, _ours_from_nvidia(name, ours)[2])
        raise StateDictMismatch(f"{name}: missing from the state dict (expected shape {want_nvidia})")
    return unflatten_dict(flat)


@dataclass(frozen=True)
class NvidiaNetwork:
    """A network with NVIDIA's weights, called as NVIDIA's: G(z, c, truncation_psi, ...) ->
    images NHWC; D(images NHWC, c) -> logits [N]. `variables` are gan_jax's own form."""

    kind: str
    module: nn.Module
    variables: dict[str, Any]

    def __call__(self, x: Any, c: Any = None, **kwargs: Any) -> jax.Array:
        """G: kwargs truncation_psi, truncation_cutoff, noise_mode; c: one-hot [N, c_dim] or classes [N]."""
        labels = None if c is None or not self.module.c_dim else jnp.asarray(c)
        out: Any = self.module.apply(self.variables, jnp.asarray(x), labels=labels, **kwargs)
        return out if self.kind == "G" else out[:, 0]


def load_nvidia(path: str | Path, kind: str, **arch: Any) -> NvidiaNetwork:
    """NVIDIA's G or D from `torch.save(net.state_dict())` at `path`, read without executing
    pickled code, for the architecture arguments `arch` (NVIDIA_DEFAULTS names them)."""
    module = nvidia_module(kind, **arch)
    return NvidiaNetwork(kind, module, variables_from_state_dict(module, load_state_dict(path)))


# ---------------------------------------------------------------------------------------
# The model family


def build(cfg: Any, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    size, _, channels = image_shape
    classes = cfg.num_classes if cfg.conditioning != "none" else 0
    g, d = cfg.generator, cfg.discriminator
    generator = Generator(
        z_dim=cfg.latent_dim,
        c_dim=classes,
        w_dim=cfg.w_dim,
        img_resolution=size,
        img_channels=channels,
        mapping_layers=cfg.mapping.layers,
        mapping_lr_multiplier=cfg.mapping.lr_multiplier,
        w_avg_decay=cfg.mapping.w_avg_decay,
        channel_base=g.channel_base,
        channel_max=g.channel_max,
        conv_clamp=g.conv_clamp,
        noise_mode=g.noise_mode,
        style_mixing=cfg.mapping.style_mixing,
        latent_dist=cfg.latent_dist,
    )
    discriminator = Discriminator(
        c_dim=classes,
        img_resolution=size,
        img_channels=channels,
        channel_base=d.channel_base,
        channel_max=d.channel_max,
        conv_clamp=d.conv_clamp,
        mbstd_group_size=d.mbstd_group_size,
        mbstd_num_channels=d.mbstd_num_channels,
        mapping_layers=d.mapping_layers,
        architecture=d.architecture,
    )
    return generator, discriminator


def takes_example_keys(cfg: Any) -> bool:
    """G draws from per-example keys in training: random noise or style mixing."""
    return cfg.generator.noise_mode == "random" or cfg.mapping.style_mixing > 0


def needs_power_of_two_images(cfg: Any, data: DataFacts) -> str | None:
    size = data.image_size
    if size is None:
        return f"model=stylegan2: needs an image dataset; dataset={data.name} is not one"
    if size < MIN_RESOLUTION or size & (size - 1):
        fit = max(MIN_RESOLUTION, 1 << (size - 1).bit_length())
        key = f"dataset.{data.image_size_key}"
        return (
            f"{key}={size}: model=stylegan2 needs a power of two >= {MIN_RESOLUTION}; "
            f"set {key}={fit} (the images are resized)"
        )
    return None


def _mbstd_features_divide_channels(cfg: Any) -> str | None:
    d = cfg.discriminator
    channels = channels_at(4, d.channel_base, d.channel_max)
    if d.mbstd_num_channels and channels % d.mbstd_num_channels:
        return (
            f"model.discriminator.mbstd_num_channels={d.mbstd_num_channels} must divide D's channels at 4x4 "
            f"({channels} = min(channel_base // 4, channel_max))"
        )
    return None


def initial_weights(cfg: Any, generator: nn.Module, discriminator: nn.Module) -> tuple[Any, Any]:
    """The variables of model.generator.init_from / model.discriminator.init_from (state dicts of
    NVIDIA's networks) for these modules, or None each; a file that does not fit is a ConfigError."""
    return (  # .get: a run saved before the key existed
        _weights_from("model.generator.init_from", cfg.generator.get("init_from"), generator),
        _weights_from("model.discriminator.init_from", cfg.discriminator.get("init_from"), discriminator),
    )


def _weights_from(key: str, path: str | None, module: nn.Module) -> Any:
    if path is None:
        return None
    if not Path(path).is_file():
        raise ConfigError(f"{key}={path}: no such file; save one with NVIDIA's code (README: StyleGAN2)")
    try:
        return variables_from_state_dict(module, load_state_dict(path))
    except StateDictMismatch as error:
        raise ConfigError(f"{key}={path}: does not fit the model the config gives: {error}") from None
    except StateDictError as error:
        raise ConfigError(f"{key}={path}: {error}") from None


def mbstd_groups_fit(cfg: Any, n: int) -> str | None:
    """Minibatch std groups min(group size, n) examples: they must tile D's batch n, as NVIDIA's."""
    group = min(cfg.discriminator.mbstd_group_size, n)
    if n % group:
        fits = [g for g in range(1, n + 1) if n % g == 0]
        return (
            f"model.discriminator.mbstd_group_size={cfg.discriminator.mbstd_group_size}: D takes {n} examples "
            f"at a time on each device (train.batch_size / devices / train.grad_accum), not a multiple of "
            f"it; valid values are {', '.join(map(str, fits))} or any above {n}"
        )
    return None


@dataclass
class StyleGAN2MappingConfig:
    layers: int = at_least(1)  # fully connected layers (8; 2 for CIFAR)
    lr_multiplier: float = positive()  # learning-rate multiplier of its layers (0.01)
    # Decay of the moving average of w (0.995).
    w_avg_decay: float = rule(MISSING, "a number in (0, 1)", lambda v: 0 < v < 1)
    # Probability of style mixing regularisation in training (NVIDIA's style_mixing_prob: 0.9; cifar 0).
    style_mixing: float = rule(MISSING, "a number in [0, 1]", lambda v: 0 <= v <= 1)


@dataclass
class StyleGAN2GeneratorConfig:
    channel_base: int = at_least(1)  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = at_least(1)  # the most channels of any layer
    conv_clamp: float | None = optional_positive(MISSING)  # clip conv outputs to +-this (null: no clipping)
    noise_mode: str = one_of(lambda: NOISE_MODES)  # per-layer noise: const, random (training; else const) or none
    init_from: str | None = None  # a state dict of NVIDIA's G (torch.save(G.state_dict())): the run starts from it


@dataclass
class StyleGAN2DiscriminatorConfig:
    channel_base: int = at_least(1)  # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = at_least(1)  # the most channels of any layer
    conv_clamp: float | None = optional_positive(MISSING)  # clip conv outputs to +-this (null: no clipping)
    mbstd_group_size: int = at_least(1)  # examples per minibatch-std group (must divide D's batch)
    mbstd_num_channels: int = at_least(0)  # features minibatch std appends (0: none)
    mapping_layers: int = at_least(1)  # layers of the label mapping (conditional)
    architecture: str = one_of(lambda: D_ARCHITECTURES)  # resnet | orig (no shortcut: NVIDIA's cifar)
    init_from: str | None = None  # a state dict of NVIDIA's D: the run starts from it


@dataclass
class StyleGAN2Config:
    name: str = "stylegan2"
    latent_dim: int = at_least(1)  # z's size (NVIDIA's z_dim)
    latent_dist: str = one_of(latent_distributions)
    w_dim: int = at_least(1)  # the intermediate latent's size
    conditioning: str = one_of(lambda: CONDITIONINGS)
    num_classes: int = at_least(2)  # the dataset's, when conditioning (checked against it)
    mapping: StyleGAN2MappingConfig = field(default_factory=StyleGAN2MappingConfig)
    generator: StyleGAN2GeneratorConfig = field(default_factory=StyleGAN2GeneratorConfig)
    discriminator: StyleGAN2DiscriminatorConfig = field(default_factory=StyleGAN2DiscriminatorConfig)


register(
    ModelPart(
        "stylegan2",
        StyleGAN2Config,
        lambda cfg, data: build(cfg, data.shape),
        data_rule=needs_power_of_two_images,
        d_batch_rule=mbstd_groups_fit,
        initial_weights=initial_weights,
        rules=(_mbstd_features_divide_channels,),
        generator_methods=("map_latents", "synthesise"),
        generator_takes_keys=takes_example_keys,
    )
)
