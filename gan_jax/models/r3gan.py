"""R3GAN (Huang et al. 2024, "The GAN is dead; long live the GAN! A Modern GAN Baseline")
as the authors' brownvc/R3GAN builds it (R3GAN/Networks.py), unconditional or
class-conditional (their --cond).

Stages, each at one resolution; G's run from 4x4 up (4 * 2^(stages - 1) pixels at the
end), D's the other way (D takes the lists reversed, as their train.py gives them).
  residual block  x + conv1x1(act(conv_kxk_grouped(act(conv1x1(x))))): width -> width *
                  expansion_factor (the stage's cardinality groups the k x k conv) -> width;
                  act = leaky ReLU (slope 0.2) after a learned bias; no normalisation
  G stage         a transition, then the stage's blocks. Stage 0's transition is the
                  generative basis: a learned [4, 4, C] basis times a linear map of the
                  input (per channel); the others' a 1x1 conv (when the width changes), then
                  2x up-sampling
  D stage         the stage's blocks, then a transition: 2x down-sampling then a 1x1 conv
                  (when the width changes); the last stage's the discriminative basis: a
                  depthwise 4x4 valid conv to [B, C], then a linear map to 1 output (or,
                  conditional, to condition_embedding_dim)
  G               [z, embed(one_hot(c))] -> stages -> 1x1 conv to the image's channels (no tanh)
  D               1x1 conv from the image's channels -> stages -> logit; conditional: the
                  projection sum(out * embed(one_hot(c))) [B, 1]
No biases but the activations'. Resampling is FIR filtering with the normalised outer
product of convolve([1, 2, 1], [1, 1]) = [1, 3, 3, 1] (their InterpolativeUpsampler /
Downsampler: upfirdn2d's upsample2d with gain 4, downsample2d), as StyleGAN2's
(stylegan2_layers). Initialisation (their MSRInitializer): N(0, gain^2 / fan_in) weights,
fan_in = inputs per output (a grouped conv's per group, times the kernel's area); gain 1
but in the blocks: conv1 and conv2 sqrt(2 / (1 + 0.2^2)) * L^(-1/4) (L = the blocks of
all stages: fix-up style variance scaling, 3 linear layers per branch), conv3 0 (each
residual branch starts as the identity); biases 0; G's basis N(0, 1); D's label
embedding gain 1 / sqrt(condition_embedding_dim). Images are NHWC in [-1, 1].

Their mixed precision (bfloat16 in G's last 3 stages and D's first 3, train.py
FP16Stages) is not reproduced: everything runs in float32.

`load_r3gan(path, kind, **arch)` reads a `torch.save(net.state_dict())` of their
R3GAN.Networks Generator or Discriminator (or of training/networks.py's wrapper: keys
'Model.'-prefixed) without executing pickled code, for the architecture arguments named
as their constructors name them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax.traverse_util import flatten_dict, unflatten_dict

from gan_jax.data import DataFacts
from gan_jax.metrics.torch_format import load_state_dict
from gan_jax.models.parts import ModelPart, latent_distributions, register
from gan_jax.models.stylegan2 import NvidiaNetwork, StateDictMismatch
from gan_jax.models.stylegan2_layers import downsample2d, upsample2d
from gan_jax.schema import MISSING, at_least, one_of, rule

__all__ = [
    "CONDITIONINGS",
    "R3GAN_DEFAULTS",
    "Discriminator",
    "Generator",
    "R3GANConfig",
    "StateDictMismatch",
    "load_r3gan",
    "r3gan_module",
    "variables_from_state_dict",
]

CONDITIONINGS = ("none", "projection")  # projection: their --cond (label embedding into G's input, projection D)
LRELU_SLOPE = 0.2  # their BiasedActivation: leaky ReLU, slope 0.2
ACTIVATION_GAIN = math.sqrt(2 / (1 + LRELU_SLOPE**2))  # keeps the magnitude through it (their Gain)
LINEAR_LAYERS_PER_BRANCH = 3  # 1x1, grouped k x k, 1x1: the exponent of the variance scaling
RESAMPLING_FILTER = (1, 2, 1)  # their default ResamplingFilter; the 1-D taps are convolve(it, [1, 1])
BASIS_SIZE = 4  # G starts, and D ends, at 4x4
MISSING_SIZE = 0  # a size the caller must give


def fir_taps(resampling_filter: Sequence[float] = RESAMPLING_FILTER) -> np.ndarray:
    """The 1-D low-pass taps of their CreateLowpassKernel(filter, Inplace=False), sum 1."""
    taps = np.convolve(np.asarray(resampling_filter, np.float64), [1.0, 1.0])
    return (taps / taps.sum()).astype(np.float32)


def image_size(stages: int) -> int:
    """The resolution of `stages` stages: 4 at the first, doubled by each further one."""
    return BASIS_SIZE * 2 ** (stages - 1)


def msr_init(gain: float) -> Callable[..., jax.Array]:
    """N(0, gain^2 / fan_in), fan_in the product of every kernel axis but the last (HWIO: a
    group's inputs times the kernel's area; a dense [in, out]: in). Gain 0: zeros."""

    def init(key: jax.Array, shape: tuple[int, ...], dtype: Any = jnp.float32) -> jax.Array:
        fan_in = int(np.prod(shape[:-1]))
        return (gain / math.sqrt(fan_in)) * jax.random.normal(key, shape, dtype)

    return init


def conv(features: int, size: int, gain: float = 1.0, groups: int = 1, name: str | None = None) -> nn.Conv:
    """A k x k conv without bias, zero-padded to keep the size (their padding (k - 1) // 2)."""
    pad = (size - 1) // 2
    return nn.Conv(
        features,
        (size, size),
        padding=((pad, pad), (pad, pad)),
        feature_group_count=groups,
        use_bias=False,
        kernel_init=msr_init(gain),
        name=name,
    )


GROUPED_CONVS = ("auto", "native", "dense")


def grouped_conv_on(mode: str) -> str:
    """auto: dense on the CPU, native elsewhere. XLA's CPU backend takes a grouped
    convolution's weight gradient 11x to 45x longer than a dense one of the same channels
    (experiments/throughput/README.md, R3GAN), so there the grouped k x k conv runs as a dense
    conv with a block-diagonal kernel: the same function and parameters, groups x the FLOPs."""
    if mode == "auto":
        return "dense" if jax.default_backend() == "cpu" else "native"
    return mode


class GroupedConv(nn.Module):
    """A k x k conv without bias in `groups` groups, kernel [k, k, in / groups, out] as
    nn.Conv's with feature_group_count; `mode` (GROUPED_CONVS) says how XLA runs it."""

    features: int
    size: int
    groups: int
    gain: float = 1.0
    mode: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        per_group = x.shape[-1] // self.groups
        kernel = self.param("kernel", msr_init(self.gain), (self.size, self.size, per_group, self.features))
        if grouped_conv_on(self.mode) == "dense":
            outputs = self.features // self.groups
            blocks = kernel.reshape(self.size, self.size, per_group, self.groups, outputs)
            diagonal = jnp.eye(self.groups, dtype=kernel.dtype)
            kernel = jnp.einsum("hwigo,jg->hwjigo", blocks, diagonal).reshape(self.size, self.size, -1, self.features)
            groups = 1
        else:
            groups = self.groups
        pad = (self.size - 1) // 2
        return jax.lax.conv_general_dilated(
            x,
            kernel.astype(x.dtype),
            (1, 1),
            ((pad, pad), (pad, pad)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=groups,
        )


def dense(features: int, gain: float = 1.0, name: str | None = None) -> nn.Dense:
    return nn.Dense(features, use_bias=False, kernel_init=msr_init(gain), name=name)


class BiasedActivation(nn.Module):
    """Leaky ReLU (slope 0.2) of x + a learned per-channel bias (starts at 0)."""

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        bias = self.param("bias", nn.initializers.zeros, (x.shape[-1],))
        return nn.leaky_relu(x + bias, LRELU_SLOPE)


class ResidualBlock(nn.Module):
    """x + 1x1(act(k x k grouped(act(1x1(x))))), the branch widened by `expansion_factor`;
    `total_blocks`: the blocks of the whole network (the initialisation's variance scaling)."""

    cardinality: int
    expansion_factor: int
    kernel_size: int
    total_blocks: int
    grouped_conv: str = "auto"

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        width = x.shape[-1]
        expanded = width * self.expansion_factor
        gain = ACTIVATION_GAIN * self.total_blocks ** (-1 / (2 * LINEAR_LAYERS_PER_BRANCH - 2))
        y = conv(expanded, 1, gain, name="conv1")(x)
        grouped = GroupedConv(expanded, self.kernel_size, self.cardinality, gain, self.grouped_conv, name="conv2")
        y = grouped(BiasedActivation(name="act1")(y))
        y = conv(width, 1, 0.0, name="conv3")(BiasedActivation(name="act2")(y))
        return x + y


class GenerativeBasis(nn.Module):
    """[B, D] -> [B, 4, 4, C]: a learned basis [4, 4, C] (N(0, 1)) times a linear map of the input."""

    features: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        basis = self.param("basis", nn.initializers.normal(1.0), (BASIS_SIZE, BASIS_SIZE, self.features))
        return basis[None] * dense(self.features, name="linear")(x)[:, None, None, :]


class DiscriminativeBasis(nn.Module):
    """[B, 4, 4, C] -> [B, outputs]: a depthwise 4x4 valid conv to [B, C], then a linear map."""

    outputs: int

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        channels = x.shape[-1]
        depthwise = nn.Conv(
            channels,
            (BASIS_SIZE, BASIS_SIZE),
            padding="VALID",
            feature_group_count=channels,
            use_bias=False,
            kernel_init=msr_init(1.0),
            name="basis",
        )
        return dense(self.outputs, name="linear")(depthwise(x).reshape(x.shape[0], channels))


class Resample(nn.Module):
    """2x up-sampling (a 1x1 conv first when the width changes) or down-sampling (the 1x1 conv after)."""

    features: int
    up: bool
    resampling_filter: tuple[float, ...] = RESAMPLING_FILTER

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        taps = fir_taps(self.resampling_filter)
        change = x.shape[-1] != self.features
        if self.up:
            x = conv(self.features, 1, name="linear")(x) if change else x
            return upsample2d(x, taps)
        x = downsample2d(x, taps)
        return conv(self.features, 1, name="linear")(x) if change else x


def one_hot(labels: jax.Array | None, classes: int, network: str) -> jax.Array:
    """Classes [B] (integers) as one-hot [B, classes]; vectors [B, classes] as they are."""
    if labels is None:
        raise ValueError(f"a conditional R3GAN {network} (condition_dim={classes}) needs labels")
    if labels.ndim == 1:
        return jax.nn.one_hot(labels, classes)
    return labels.astype(jnp.float32)


class Stages(nn.Module):
    """What G and D share: the per-stage lists (in the network's own order) and the rest of
    their constructors' arguments."""

    width_per_stage: tuple[int, ...]
    cardinality_per_stage: tuple[int, ...]
    blocks_per_stage: tuple[int, ...]
    expansion_factor: int
    condition_dim: int = 0  # classes (0: unconditional)
    condition_embedding_dim: int = 0  # G: the label embedding concatenated to z; D: the projection's size
    img_channels: int = 3
    kernel_size: int = 3
    resampling_filter: tuple[float, ...] = RESAMPLING_FILTER
    grouped_conv: str = "auto"  # how the grouped convs run (GROUPED_CONVS; the same function)

    @property
    def c_dim(self) -> int:  # the name NvidiaNetwork reads
        return self.condition_dim


class Generator(Stages):
    """G(z [B, noise_dim], labels=None) -> images [B, R, R, img_channels], R = 4 * 2^(stages - 1).
    The per-stage lists run from 4x4 up (their Generator's arguments)."""

    noise_dim: int = MISSING_SIZE  # z's size (required: give it by name)

    @nn.compact
    def __call__(
        self, z: jax.Array, update_stats: bool = False, axis_name: str | None = None, labels: jax.Array | None = None
    ) -> jax.Array:
        if z.shape[-1] != self.noise_dim:
            raise ValueError(
                f"z of shape {z.shape}: this generator takes noise_dim={self.noise_dim} numbers per example"
            )
        x = z.astype(jnp.float32)
        if self.condition_dim:
            embedding = dense(self.condition_embedding_dim, name="embedding")
            x = jnp.concatenate([x, embedding(one_hot(labels, self.condition_dim, "generator"))], axis=1)
        total = sum(self.blocks_per_stage)
        for s, (width, cardinality, blocks) in enumerate(
            zip(self.width_per_stage, self.cardinality_per_stage, self.blocks_per_stage, strict=True)
        ):
            if s == 0:
                x = GenerativeBasis(width, name=f"stage{s}_layer0")(x)
            else:
                x = Resample(width, up=True, resampling_filter=self.resampling_filter, name=f"stage{s}_layer0")(x)
            for j in range(blocks):
                block = ResidualBlock(
                    cardinality,
                    self.expansion_factor,
                    self.kernel_size,
                    total,
                    self.grouped_conv,
                    name=f"stage{s}_layer{j + 1}",
                )
                x = block(x)
        return conv(self.img_channels, 1, name="to_image")(x)


class Discriminator(Stages):
    """D(images [B, R, R, img_channels], labels=None) -> logits [B, 1]. The per-stage lists
    run from the image's resolution down to 4x4 (their Discriminator's arguments: G's reversed)."""

    @nn.compact
    def __call__(
        self, x: jax.Array, update_stats: bool = False, axis_name: str | None = None, labels: jax.Array | None = None
    ) -> jax.Array:
        widths = self.width_per_stage
        x = conv(widths[0], 1, name="from_image")(x.astype(jnp.float32))
        total = sum(self.blocks_per_stage)
        last = len(widths) - 1
        for s, (cardinality, blocks) in enumerate(zip(self.cardinality_per_stage, self.blocks_per_stage, strict=True)):
            for j in range(blocks):
                x = ResidualBlock(
                    cardinality,
                    self.expansion_factor,
                    self.kernel_size,
                    total,
                    self.grouped_conv,
                    name=f"stage{s}_layer{j}",
                )(x)
            name = f"stage{s}_layer{blocks}"
            if s < last:
                x = Resample(widths[s + 1], up=False, resampling_filter=self.resampling_filter, name=name)(x)
            else:
                x = DiscriminativeBasis(self.condition_embedding_dim if self.condition_dim else 1, name=name)(x)
        if not self.condition_dim:
            return x
        embedding = dense(self.condition_embedding_dim, 1 / math.sqrt(self.condition_embedding_dim), name="embedding")
        return jnp.sum(x * embedding(one_hot(labels, self.condition_dim, "discriminator")), axis=1, keepdims=True)


# ---------------------------------------------------------------------------------------
# The authors' weights

# Their constructors' arguments (R3GAN/Networks.py Generator / Discriminator): the required
# ones (None here; NoiseDimension G's only) and the defaults; img_channels is ours (theirs: 3).
R3GAN_DEFAULTS: dict[str, Any] = dict(
    NoiseDimension=None,  # z's size (G)
    WidthPerStage=None,  # channels per stage (G: from 4x4 up; D: down to 4x4)
    CardinalityPerStage=None,  # groups of each stage's k x k convs
    BlocksPerStage=None,  # residual blocks per stage
    ExpansionFactor=None,  # a branch's width / the stage's width
    ConditionDimension=None,  # classes (None: unconditional)
    ConditionEmbeddingDimension=0,  # the label embedding's size (conditional)
    KernelSize=3,  # of the grouped convs
    ResamplingFilter=[1, 2, 1],  # the low-pass filter's taps are convolve(it, [1, 1])
    img_channels=3,  # the image's channels (their code: always 3)
)
_G_ONLY = ("NoiseDimension",)
# Their module names -> ours (the Convolution wrapper's 'Layer' level is dropped).
_NAMES = {
    "LinearLayer1": "conv1",
    "LinearLayer2": "conv2",
    "LinearLayer3": "conv3",
    "NonLinearity1": "act1",
    "NonLinearity2": "act2",
    "LinearLayer": "linear",
    "Basis": "basis",
    "AggregationLayer": "to_image",
    "ExtractionLayer": "from_image",
    "EmbeddingLayer": "embedding",
    "weight": "kernel",
    "Bias": "bias",
}
# Their layout -> ours, by the tensor's rank: OIHW -> HWIO, [out, in] -> [in, out], G's basis [C, 4, 4] -> [4, 4, C].
_PERMUTATIONS: dict[int, tuple[int, ...]] = {4: (2, 3, 1, 0), 3: (1, 2, 0), 2: (1, 0)}
_WRAPPER_PREFIX = "Model."  # training/networks.py's Generator / Discriminator hold the network as .Model


def r3gan_module(kind: str, **arch: Any) -> nn.Module:
    """Their Generator ('G') or Discriminator ('D') for the given constructor arguments."""
    known = [k for k in R3GAN_DEFAULTS if kind == "G" or k not in _G_ONLY]
    unknown = sorted(set(arch) - set(known))
    if unknown:
        raise TypeError(f"unknown architecture arguments {unknown}; known: {known}")
    args = {**R3GAN_DEFAULTS, **arch}
    required = [k for k in known if args[k] is None and k != "ConditionDimension"]
    if required:
        raise TypeError(f"missing architecture arguments {required}")
    common = dict(
        width_per_stage=tuple(args["WidthPerStage"]),
        cardinality_per_stage=tuple(args["CardinalityPerStage"]),
        blocks_per_stage=tuple(args["BlocksPerStage"]),
        expansion_factor=args["ExpansionFactor"],
        condition_dim=args["ConditionDimension"] or 0,
        condition_embedding_dim=args["ConditionEmbeddingDimension"],
        img_channels=args["img_channels"],
        kernel_size=args["KernelSize"],
        resampling_filter=tuple(args["ResamplingFilter"]),
    )
    if kind == "G":
        return Generator(**common, noise_dim=args["NoiseDimension"])
    if kind == "D":
        return Discriminator(**common)
    raise ValueError(f"kind={kind!r}: use 'G' or 'D'")


def _our_path(key: str) -> tuple[str, ...]:
    """Our parameter path of one of their state-dict keys."""
    parts = [p for p in key.split(".") if p != "Layer"]
    if parts[0] == "MainLayers" and len(parts) > 3 and parts[2] == "Layers":
        parts = [f"stage{parts[1]}_layer{parts[3]}", *parts[4:]]
    return tuple(_NAMES.get(p, p) for p in parts)


def _their_shape(ours: tuple[int, ...]) -> tuple[int, ...]:
    permutation = _PERMUTATIONS.get(len(ours))
    return ours if permutation is None else tuple(ours[i] for i in np.argsort(permutation))


def _example_inputs(module: nn.Module) -> tuple[jax.Array, dict[str, Any]]:
    labels = {"labels": jnp.zeros((1,), jnp.int32)} if module.condition_dim else {}
    if isinstance(module, Generator):
        return jnp.zeros((1, module.noise_dim)), labels
    size = image_size(len(module.width_per_stage))
    return jnp.zeros((1, size, size, module.img_channels)), labels


def variables_from_state_dict(module: nn.Module, state_dict: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Our variables ({'params'}) from their state dict; StateDictMismatch names the first key
    (in the file's order) that is unknown, of the wrong shape or missing. The resampling
    kernels (buffers) must be the module's filter."""
    if state_dict and all(k.startswith(_WRAPPER_PREFIX) for k in state_dict):
        state_dict = {k[len(_WRAPPER_PREFIX) :]: v for k, v in state_dict.items()}
    x, labels = _example_inputs(module)
    shapes = jax.eval_shape(lambda: module.init(jax.random.key(0), x, **labels))["params"]
    expected = {path: tuple(v.shape) for path, v in flatten_dict(shapes).items()}
    taps = fir_taps(module.resampling_filter)
    kernel = np.outer(taps, taps)
    flat: dict[tuple[str, ...], jax.Array] = {}
    for key, array in state_dict.items():
        shape = tuple(np.shape(array))
        if key.endswith("Resampler.Kernel"):
            if shape != kernel.shape or not np.allclose(array, kernel, atol=1e-7):
                raise StateDictMismatch(f"{key}: shape {shape}, not the filter {module.resampling_filter}'s {kernel}")
            continue
        path = _our_path(key)
        want = expected.get(path)
        if want is None:
            raise StateDictMismatch(f"{key}: shape {shape}, not a tensor of this architecture")
        if shape != _their_shape(want):
            raise StateDictMismatch(f"{key}: shape {shape}, expected {_their_shape(want)}")
        permutation = _PERMUTATIONS.get(len(shape))
        flat[path] = jnp.asarray(array if permutation is None else np.transpose(array, permutation), jnp.float32)
    missing = [path for path in expected if path not in flat]
    if missing:
        raise StateDictMismatch(
            f"{'/'.join(missing[0])}: missing from the state dict (their shape {_their_shape(expected[missing[0]])})"
        )
    return {"params": unflatten_dict(flat)}


def load_r3gan(path: str | Path, kind: str, **arch: Any) -> NvidiaNetwork:
    """Their G or D from `torch.save(net.state_dict())` at `path`, read without executing
    pickled code, for their constructor's arguments `arch` (R3GAN_DEFAULTS names them).
    Called as theirs (stylegan2's NvidiaNetwork: the same calling convention): G(z, c) ->
    images NHWC, D(images NHWC, c) -> logits [N]; c one-hot [N, classes] or classes [N]."""
    module = r3gan_module(kind, **arch)
    return NvidiaNetwork(kind, module, variables_from_state_dict(module, load_state_dict(path)))


# ---------------------------------------------------------------------------------------
# The model family

STAGE_LISTS = ("width_per_stage", "cardinality_per_stage", "blocks_per_stage")


def build(cfg: Any, image_shape: tuple[int, int, int]) -> tuple[nn.Module, nn.Module]:
    """model=r3gan's G and D; the per-stage lists are G's (from 4x4 up), D takes them reversed."""
    channels = image_shape[-1]
    classes = cfg.num_classes if cfg.conditioning != "none" else 0
    widths, cardinalities, blocks = (tuple(cfg[key]) for key in STAGE_LISTS)
    generator = Generator(
        widths,
        cardinalities,
        blocks,
        cfg.expansion_factor,
        condition_dim=classes,
        condition_embedding_dim=cfg.generator.condition_embedding_dim if classes else 0,
        img_channels=channels,
        grouped_conv=cfg.grouped_conv,
        noise_dim=cfg.latent_dim,
    )
    discriminator = Discriminator(
        widths[::-1],
        cardinalities[::-1],
        blocks[::-1],
        cfg.expansion_factor,
        condition_dim=classes,
        condition_embedding_dim=cfg.discriminator.condition_embedding_dim if classes else 0,
        img_channels=channels,
        grouped_conv=cfg.grouped_conv,
    )
    return generator, discriminator


def _stage_lists_have_one_entry_per_stage(cfg: Any) -> str | None:
    stages = len(cfg.width_per_stage)
    every_list = ", ".join(f"model.{k}" for k in STAGE_LISTS)
    for key in STAGE_LISTS[1:]:
        if len(cfg[key]) != stages:
            widths = f"model.width_per_stage={list(cfg.width_per_stage)}"
            return (
                f"model.{key}={list(cfg[key])}: has {len(cfg[key])} stages, {widths} {stages}; "
                f"give {every_list} one entry per stage"
            )
    return None


def _cardinality_divides_each_branch(cfg: Any) -> str | None:
    """Each stage's grouped convs have width * expansion_factor channels: the cardinality must divide them."""
    for stage, (width, cardinality) in enumerate(zip(cfg.width_per_stage, cfg.cardinality_per_stage, strict=False)):
        channels = width * cfg.expansion_factor
        if channels % cardinality:
            fits = [g for g in range(1, channels + 1) if channels % g == 0]
            return (
                f"model.cardinality_per_stage[{stage}]={cardinality}: must divide stage {stage}'s branch width "
                f"model.width_per_stage[{stage}] * model.expansion_factor = {width} * {cfg.expansion_factor} = "
                f"{channels} (the channels its grouped convs split); valid values are {', '.join(map(str, fits))}"
            )
    return None


def stages_fit_the_images(cfg: Any, data: DataFacts) -> str | None:
    """G makes, and D takes, 4 * 2^(stages - 1) pixel images: the stages must fit the data's size."""
    size = data.image_size
    if size is None:
        return f"model=r3gan: needs an image dataset; dataset={data.name} is not one"
    stages = len(cfg.width_per_stage)
    key = f"dataset.{data.image_size_key}"
    if size < BASIS_SIZE or size & (size - 1):
        fit = image_size(stages)
        return (
            f"{key}={size}: model=r3gan makes 4 * 2^(stages - 1) pixel images (model.width_per_stage has "
            f"{stages} stages: {fit}); set {key}={fit} (the images are resized)"
        )
    if image_size(stages) != size:
        need = int(math.log2(size // BASIS_SIZE)) + 1
        made = image_size(stages)
        every_list = ", ".join(f"model.{k}" for k in STAGE_LISTS)
        return (
            f"model.width_per_stage={list(cfg.width_per_stage)}: {stages} stages make {made}x{made} images "
            f"(4 * 2^(stages - 1)); {key}={size} needs {need}: give {every_list} {need} entries each"
        )
    return None


def _stage_list(minimum: int = 1) -> Any:
    return rule(
        MISSING,
        f"a non-empty list of integers >= {minimum}",
        lambda v: len(v) > 0 and all(isinstance(x, int) and x >= minimum for x in v),
    )


@dataclass
class R3GANGeneratorConfig:
    # The label embedding's size, concatenated to z (conditional; their CIFAR-10 preset: the noise's, 64).
    condition_embedding_dim: int = at_least(1)


@dataclass
class R3GANDiscriminatorConfig:
    # The size of D's output projected onto the label embedding (conditional; their preset: the 4x4 width).
    condition_embedding_dim: int = at_least(1)


@dataclass
class R3GANConfig:
    name: str = "r3gan"
    latent_dim: int = at_least(1)  # z's size (their NoiseDimension)
    latent_dist: str = one_of(latent_distributions)
    conditioning: str = one_of(lambda: CONDITIONINGS)
    num_classes: int = at_least(2)  # the dataset's, when conditioning (checked against it)
    # Per stage, G's order (4x4 first; D's reversed): channels, groups of the grouped convs, residual blocks.
    width_per_stage: list[int] = _stage_list()
    cardinality_per_stage: list[int] = _stage_list()
    blocks_per_stage: list[int] = _stage_list()
    expansion_factor: int = at_least(1)  # a residual branch's width / its stage's
    # How XLA runs the grouped convs (the same function): auto is dense on the CPU, native elsewhere.
    grouped_conv: str = one_of(lambda: GROUPED_CONVS)
    generator: R3GANGeneratorConfig = field(default_factory=R3GANGeneratorConfig)
    discriminator: R3GANDiscriminatorConfig = field(default_factory=R3GANDiscriminatorConfig)


register(
    ModelPart(
        "r3gan",
        R3GANConfig,
        lambda cfg, data: build(cfg, data.shape),
        data_rule=stages_fit_the_images,
        rules=(_stage_lists_have_one_entry_per_stage, _cardinality_divides_each_branch),
    )
)
