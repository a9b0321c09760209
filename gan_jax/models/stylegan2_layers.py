"""StyleGAN2's layers (Karras et al. 2020b, "Analyzing and improving the image quality of
StyleGAN"), in NHWC, as small pure functions and Flax modules.

Equalised learning rate everywhere: weights are stored as unit normals (divided by the
layer's lr multiplier) and scaled at run time by lr_multiplier / sqrt(fan_in), so stored
weights are NVIDIA's one to one (stylegan2-ada-pytorch keeps them the same way).

Resampling is FIR filtering with the normalised outer product of [1, 3, 3, 1]:
  up 2x      insert zeros, filter with gain 4 (the filter keeps a constant image constant)
  down 2x    filter, keep every second pixel
  conv up    a transposed (stride-2) convolution, then the filter (gain 4)
  conv down  the filter, then a stride-2 convolution (1x1 kernels: filter and drop, then the 1x1)
Paddings follow the paper's implementation, so a layer's output covers the same pixels.

Modulated convolution, non-fused (DESIGN.md's advice for XLA): scale the input channels
by the styles s, an ordinary convolution, then multiply each output channel by the
demodulation coefficient 1 / sqrt(sum_{i,k} (w[k, i, o] s[i])^2 + 1e-8).

Per-layer noise, `noise_mode`:
  const   the layer's stored buffer [H, W] (the 'noise_const' collection), the same for every example
  random  with per-example keys (training): N(0, 1) [H, W, 1] per example from
          fold_in(key, layer index), so an example's noise depends only on its key (not on
          how the batch is split over devices); without keys, from make_rng('noise') when
          the call has that rng (NVIDIA-style sampling), else the stored buffer (as const)
  none    no noise
each times the layer's learned strength.
"""

from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

FIR_TAPS = (1.0, 3.0, 3.0, 1.0)  # the paper's low-pass filter for up- and down-sampling
LRELU_SLOPE = 0.2  # leaky ReLU's slope below 0
LRELU_GAIN = math.sqrt(2.0)  # keeps the activations' magnitude through leaky ReLU
EPS = 1e-8  # inside every square root of a mean or sum of squares
_NHWC = ("NHWC", "HWIO", "NHWC")


def fir_taps(taps: tuple[float, ...] = FIR_TAPS) -> np.ndarray:
    """The 1-D filter, normalised to sum 1; the 2-D filter is its outer product with itself."""
    f = np.asarray(taps, np.float32)
    return f / f.sum()


def fir_filter(taps: tuple[float, ...] = FIR_TAPS) -> np.ndarray:
    """The 2-D filter [taps, taps]: the outer product of `taps`, normalised to sum 1."""
    return np.outer(fir_taps(taps), fir_taps(taps))


def _fir_along(x: jax.Array, f: np.ndarray, axis: int, up: int, down: int, padding, gain: float) -> jax.Array:
    """upfirdn along one axis, as shifted slices times the taps (cheap to differentiate on any backend)."""
    if up > 1:
        zeros = jnp.zeros_like(x)
        x = jnp.stack([x] + [zeros] * (up - 1), axis=axis + 1)
        x = x.reshape(*x.shape[:axis], x.shape[axis] * up, *x.shape[axis + 2 :])
    config = [(0, 0, 0)] * x.ndim
    config[axis] = (padding[0], padding[1], 0)
    x = lax.pad(x, jnp.zeros((), x.dtype), config)
    kernel = np.flip(f) * gain  # a convolution: the taps reversed
    length = x.shape[axis] - len(f) + 1
    y = float(kernel[0]) * lax.slice_in_dim(x, 0, length, axis=axis)
    for a in range(1, len(kernel)):
        y = y + float(kernel[a]) * lax.slice_in_dim(x, a, a + length, axis=axis)
    return lax.slice_in_dim(y, 0, length, stride=down, axis=axis) if down > 1 else y


def upfirdn2d(x: jax.Array, f: np.ndarray, up: int = 1, down: int = 1, padding=(0, 0), gain: float = 1.0):
    """Upsample by inserting up-1 zeros after each pixel, pad (before, after) on both axes,
    convolve with the separable filter outer(f, f) times `gain`, keep every `down`-th
    pixel. NHWC; `f` is the 1-D filter."""
    gain_per_axis = math.sqrt(gain)
    x = _fir_along(x, f, 1, up, down, padding, gain_per_axis)
    return _fir_along(x, f, 2, up, down, padding, gain_per_axis)


def upsample2d(x: jax.Array, f: np.ndarray) -> jax.Array:
    """2x up-sampling by the FIR filter: [B, H, W, C] -> [B, 2H, 2W, C]."""
    taps = len(f)
    return upfirdn2d(x, f, up=2, padding=((taps + 1) // 2, (taps - 2) // 2), gain=4.0)


def downsample2d(x: jax.Array, f: np.ndarray) -> jax.Array:
    """2x down-sampling by the FIR filter: [B, H, W, C] -> [B, H/2, W/2, C]."""
    taps = len(f)
    return upfirdn2d(x, f, down=2, padding=((taps - 1) // 2, (taps - 2) // 2))


def conv2d(x: jax.Array, w: jax.Array, stride: int = 1, padding=0) -> jax.Array:
    """Cross-correlation with an HWIO kernel; `padding`: zeros on every side, or (before, after)."""
    pad = (padding, padding) if isinstance(padding, int) else tuple(padding)
    return lax.conv_general_dilated(x, w, (stride, stride), (pad, pad), dimension_numbers=_NHWC)


def _subpixel_taps(k: int, f: np.ndarray) -> tuple[np.ndarray, int]:
    """A [2, m, k] array A and the padding before: output phase p (pixel 2i + p) of 'zero-
    insert, convolve with a k-tap w, filter with f (gain 2), crop' equals the correlation of
    the input, padded, with taps sum_k A[p, :, k] w[k]."""
    taps = len(f)
    before = k // 2 + (taps + 1) // 2 - (k - 1)  # the filter's padding after the full transposed conv
    flipped = np.flip(f) * 2.0
    # Output pixel q = 2i + p takes input j = i + r with weight K[p - 2r], K[d] = sum_{k - a + before = d} w[k] f'[a].
    offsets = [d for kk in range(k) for d in [kk - a + before for a in range(taps)]]
    r_min = min((p - d) // 2 for p in (0, 1) for d in offsets if (p - d) % 2 == 0)
    r_max = max((p - d) // 2 for p in (0, 1) for d in offsets if (p - d) % 2 == 0)
    table = np.zeros((2, r_max - r_min + 1, k), np.float32)
    for p in (0, 1):
        for m, r in enumerate(range(r_min, r_max + 1)):
            for kk in range(k):
                a = kk + before - (p - 2 * r)
                if 0 <= a < taps:
                    table[p, m, kk] += flipped[a]
    return table, -r_min


def conv2d_up2(x: jax.Array, w: jax.Array, f: np.ndarray) -> jax.Array:
    """A 'same' k x k convolution at twice the resolution, as the paper's implementation
    computes it (the transposed stride-2 convolution, a true convolution of the zero-
    upsampled input with `w`, then the FIR filter with gain 4), done sub-pixel: one
    correlation at the input's resolution with 4 x O outputs (the four output phases,
    filter folded into the kernel), then depth to space. [B, H, W, I] -> [B, 2H, 2W, O]."""
    table, before = _subpixel_taps(w.shape[0], f)
    taps = table.shape[1]
    kernel = jnp.einsum("pmk,qnl,klio->mnipqo", table, table, w).reshape(taps, taps, w.shape[2], 4 * w.shape[3])
    z = conv2d(x, kernel, padding=(before, taps - 1 - before))
    b, h, width, _ = z.shape
    z = z.reshape(b, h, width, 2, 2, w.shape[3]).transpose(0, 1, 3, 2, 4, 5)
    return z.reshape(b, 2 * h, 2 * width, w.shape[3])


def conv2d_down2(x: jax.Array, w: jax.Array, f: np.ndarray) -> jax.Array:
    """A 'same' k x k convolution at half the resolution: FIR filter, then a stride-2
    correlation (a 1x1 kernel: filter and drop every second pixel, then the 1x1)."""
    k, taps = w.shape[0], len(f)
    before, after = k // 2 + (taps - 1) // 2, k // 2 + (taps - 2) // 2
    if k == 1:
        return conv2d(upfirdn2d(x, f, down=2, padding=(before, after)), w)
    return conv2d(upfirdn2d(x, f, padding=(before, after)), w, stride=2)


def bias_act(x: jax.Array, bias: jax.Array | None, lrelu: bool, gain: float, clamp: float | None) -> jax.Array:
    """x + bias on the last axis, then leaky ReLU (when `lrelu`), times `gain`, clipped to +-clamp."""
    if bias is not None:
        x = x + bias
    if lrelu:
        x = jnp.where(x >= 0, x, LRELU_SLOPE * x)
    if gain != 1:
        x = x * gain
    return x if clamp is None else jnp.clip(x, -clamp, clamp)


def normalise_2nd_moment(x: jax.Array) -> jax.Array:
    """Each row divided by its root mean square."""
    return x * lax.rsqrt(jnp.mean(jnp.square(x), axis=1, keepdims=True) + EPS)


def minibatch_std(x: jax.Array, group_size: int | None, num_features: int) -> jax.Array:
    """Appends `num_features` channels: the standard deviation over groups of examples
    (group members are examples n apart, n = batch / group), averaged over pixels and
    each feature's share of the channels. [N, H, W, C] -> [N, H, W, C + num_features]."""
    n, h, w, c = x.shape
    group = n if group_size is None else min(group_size, n)
    if n % group:
        raise ValueError(f"minibatch standard deviation: batch {n} is not a multiple of the group size {group}")
    y = x.reshape(group, n // group, h, w, num_features, c // num_features)
    y = jnp.sqrt(jnp.var(y, axis=0) + EPS)
    y = jnp.mean(y, axis=(1, 2, 4))  # [n / group, features]
    y = jnp.tile(y, (group, 1))[:, None, None, :]
    return jnp.concatenate([x, jnp.broadcast_to(y, (n, h, w, num_features))], axis=-1)


def modulated_conv2d(
    x: jax.Array, weight: jax.Array, styles: jax.Array, demodulate: bool, up: bool = False, f: np.ndarray | None = None
) -> jax.Array:
    """Convolution whose input channels are scaled per example by `styles` [B, I] and,
    with `demodulate`, whose output channels are renormalised to unit expected scale."""
    x = x * styles[:, None, None, :]
    if up:
        assert f is not None
        x = conv2d_up2(x, weight, f)
    else:
        x = conv2d(x, weight, padding=weight.shape[0] // 2)
    if not demodulate:
        return x
    squared_norms = jnp.sum(jnp.square(weight), axis=(0, 1))  # [I, O]
    return x * lax.rsqrt(jnp.square(styles) @ squared_norms + EPS)[:, None, None, :]


def layer_noise(example_keys: jax.Array, layer_index: int, height: int, width: int) -> jax.Array:
    """N(0, 1) noise [B, H, W, 1], example b's drawn from fold_in(example_keys[b], layer_index)."""
    draw = lambda key: jax.random.normal(jax.random.fold_in(key, layer_index), (height, width, 1))  # noqa: E731
    return jax.vmap(draw)(example_keys)


def unit_normal(scale: float = 1.0):
    return lambda key, shape: jax.random.normal(key, shape) * scale


class FullyConnected(nn.Module):
    """Dense layer with equalised lr: kernel [in, out] ~ N(0, 1) / lr_multiplier, used as
    kernel * lr_multiplier / sqrt(in); bias starts at `bias_init`, used times lr_multiplier."""

    features: int
    lrelu: bool = False  # leaky ReLU (gain sqrt 2) after the bias
    lr_multiplier: float = 1.0  # learning-rate multiplier (0.01 in the mapping network)
    bias_init: float = 0.0  # initial bias (1 for the style affines)

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        weight = self.param("weight", unit_normal(1.0 / self.lr_multiplier), (fan_in, self.features))
        bias = self.param("bias", nn.initializers.constant(self.bias_init), (self.features,))
        x = x @ (weight * (self.lr_multiplier / math.sqrt(fan_in)))
        return bias_act(x, bias * self.lr_multiplier, self.lrelu, LRELU_GAIN if self.lrelu else 1.0, None)


class Conv(nn.Module):
    """Convolution with equalised lr (HWIO kernel ~ N(0, 1), used times 1/sqrt(fan_in)),
    optional 2x down-sampling, bias, leaky ReLU and clamping (both scaled by `gain`)."""

    features: int
    kernel_size: int
    lrelu: bool = True  # leaky ReLU (gain sqrt 2) after the bias
    down: bool = False  # 2x FIR down-sampling
    use_bias: bool = True  # an additive bias
    conv_clamp: float | None = None  # clip the output to +-this (None: no clipping)

    @nn.compact
    def __call__(self, x: jax.Array, gain: float = 1.0) -> jax.Array:
        k, fan_in = self.kernel_size, x.shape[-1] * self.kernel_size**2
        weight = self.param("weight", unit_normal(), (k, k, x.shape[-1], self.features)) / math.sqrt(fan_in)
        bias = self.param("bias", nn.initializers.zeros, (self.features,)) if self.use_bias else None
        x = conv2d_down2(x, weight, fir_taps()) if self.down else conv2d(x, weight, padding=k // 2)
        act_gain = (LRELU_GAIN if self.lrelu else 1.0) * gain
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, bias, self.lrelu, act_gain, clamp)


class SynthesisLayer(nn.Module):
    """Modulated, demodulated 3x3 convolution (2x up-sampling with `up`), per-pixel noise
    with a learned strength (the module docstring's noise modes; `noise_keys`: one key per
    example for 'random'), bias, leaky ReLU (gain sqrt 2), optional clamping."""

    features: int
    resolution: int  # of the output
    up: bool = False  # 2x up-sampling before the convolution
    conv_clamp: float | None = None  # clip the output to +-this (None: no clipping)
    kernel_size: int = 3  # of the convolution
    layer_index: int = 0  # folded into the example keys for this layer's random noise

    @nn.compact
    def __call__(
        self, x: jax.Array, w: jax.Array, noise_mode: str, gain: float = 1.0, noise_keys: jax.Array | None = None
    ) -> jax.Array:
        k = self.kernel_size
        styles = FullyConnected(x.shape[-1], bias_init=1.0, name="affine")(w)
        weight = self.param("weight", unit_normal(), (k, k, x.shape[-1], self.features))
        noise_const = self.variable(
            "noise_const", "noise_const", lambda: jax.random.normal(self.make_rng("params"), (self.resolution,) * 2)
        )
        noise_strength = self.param("noise_strength", nn.initializers.zeros, ())
        bias = self.param("bias", nn.initializers.zeros, (self.features,))
        x = modulated_conv2d(x, weight, styles, demodulate=True, up=self.up, f=fir_taps())
        if noise_mode == "random" and noise_keys is not None:
            x = x + layer_noise(noise_keys, self.layer_index, x.shape[1], x.shape[2]) * noise_strength
        elif noise_mode == "random" and self.has_rng("noise"):
            x = x + jax.random.normal(self.make_rng("noise"), (*x.shape[:3], 1)) * noise_strength
        elif noise_mode in ("const", "random"):
            x = x + (noise_const.value * noise_strength)[None, :, :, None]
        elif noise_mode != "none":
            raise ValueError(f"noise_mode={noise_mode!r}: use 'const', 'random' or 'none'")
        clamp = None if self.conv_clamp is None else self.conv_clamp * gain
        return bias_act(x, bias, True, LRELU_GAIN * gain, clamp)


class ToRGB(nn.Module):
    """Modulated 1x1 convolution to the image's channels (no demodulation), bias, clamping."""

    channels: int
    conv_clamp: float | None = None  # clip the output to +-this (None: no clipping)

    @nn.compact
    def __call__(self, x: jax.Array, w: jax.Array) -> jax.Array:
        fan_in = x.shape[-1]
        styles = FullyConnected(fan_in, bias_init=1.0, name="affine")(w) / math.sqrt(fan_in)
        weight = self.param("weight", unit_normal(), (1, 1, fan_in, self.channels))
        bias = self.param("bias", nn.initializers.zeros, (self.channels,))
        return bias_act(modulated_conv2d(x, weight, styles, demodulate=False), bias, False, 1.0, self.conv_clamp)
