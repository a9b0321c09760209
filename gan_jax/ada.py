"""ADA (Karras et al. 2020, "Training generative adversarial networks with limited data"):
adaptive discriminator augmentation, `augment=ada`.

Every image D sees, real or generated, in D's and G's updates and at the regularisers'
points, goes through one pipeline; each transform is applied with probability p (its
parameters and its coin drawn from the example's own key), so G's gradient flows back
through it. Images are [B, H, W, C] in [-1, 1], C = 1 or 3. In the paper's order:

    geometric (one affine map G_inv per example, output pixel -> input pixel, pixel units
    centred on the image; composed by right-multiplication, then one resampling)
      xflip       scale(1 - 2i, 1), i ~ {0, 1}
      rotate90    rotate(pi/2 * i), i ~ {0, 1, 2, 3} (an exact integer matrix)
      xint        translate(-round(t W), -round(t H)), t ~ U(-xint_max, xint_max)^2
      scale       scale(1/s, 1/s), s = 2^N(0, scale_std^2)
      rotate      rotate(theta) before and after aniso, theta ~ U(-pi, pi) * rotate_max,
                  each with probability 1 - sqrt(1 - p): one or both with probability p
      aniso       scale(1/s, s), s = 2^N(0, aniso_std^2)
      xfrac       translate(-t_x W, -t_y H), t ~ N(0, xfrac_std^2)^2
    resampled bilinearly at the image's own resolution, the sampled points mirrored into
    the image (reflect padding, as far as needed); the paper pads by reflection, upsamples
    2x with a sym6 wavelet filter, samples bilinearly and downsamples 2x with that filter
    colour (one 4x4 matrix C per example on (r, g, b, 1), composed by left-multiplication;
    v = (1, 1, 1, 0) / sqrt(3) the luma axis)
      brightness  translate(b, b, b), b ~ N(0, brightness_std^2)
      contrast    scale(c, c, c), c = 2^N(0, contrast_std^2)
      lumaflip    I - 2 v v^T i, i ~ {0, 1} (a Householder reflection)
      hue         rotation about v by theta ~ U(-pi, pi) * hue_max
      saturation  v v^T + (I - v v^T) s, s = 2^N(0, saturation_std^2)
    grey images (C = 1), as the paper's code: C's three colour rows averaged, so
    brightness and contrast act as on RGB and luma flip negates; hue and saturation are
    skipped (about the luma axis they leave grey unchanged).

An example none of whose geometric (colour) transforms was drawn keeps its pixels: the
original is selected, so p = 0 is exactly the identity.

p is the state of a monitor term `ada` of D (GANState.terms["ada"], checkpointed with the
run). Every `interval` iterations (NVIDIA's ada_interval, 4)

    r_t = E[sign(D(x_real))]  over the D updates of those iterations (all devices)
    p  <- clip(p + sign(r_t - target) * batch * interval / (ada_kimg * 1000), 0, 1)

from p = 0 (NVIDIA's training loop clips at 0 only). The term's state holds the window's
sum of the D updates' mean signs (each the mean over every device's share) and their
number; the iteration that closes a window marks it closed, and the p that follows is
`adapted_p(state)`: what the next iteration's augmentation applies (the step applies
the states an iteration starts with) and the p the term stores when the next window
opens. With d_steps = 1 p changes at iterations 4, 8, ..., as in NVIDIA's loop. `augment.p`
= a number fixes p (the controller then only logs r_t). Logged: `ada_p` (the p this
iteration applied), `ada_rt` (r_t of the window so far).

Every draw of an example comes from its own key (the step's per-example keys), so the
numbers do not depend on how the batch is split over devices.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.augment import Augmentation, AugmentPart, register
from gan_jax.schema import MISSING, at_least, one_of, positive, rule
from gan_jax.terms import DISCRIMINATOR, DView, Term, TermResult

NAME = "ada"  # the term's name: its state is GANState.terms["ada"], its metrics ada_p, ada_rt

GEOMETRIC = ("xflip", "rotate90", "xint", "scale", "rotate", "aniso", "xfrac")
COLOUR = ("brightness", "contrast", "lumaflip", "hue", "saturation")
GROUPS = {"blit": ("xflip", "rotate90", "xint"), "geom": ("scale", "rotate", "aniso", "xfrac"), "color": COLOUR}
NEEDS_RGB = ("hue", "saturation")


def expand(transforms: Any) -> tuple[str, ...]:
    """Group names (blit, geom, color) and transform names -> the transforms, in the pipeline's order."""
    chosen = {name for entry in transforms for name in GROUPS.get(entry, (entry,))}
    return tuple(name for name in GEOMETRIC + COLOUR if name in chosen)


def _valid_transforms(value: Any) -> bool:
    names = [name for entry in value for name in GROUPS.get(entry, (entry,))]
    return all(name in GEOMETRIC + COLOUR for name in names) and len(set(names)) == len(names)


def _non_negative() -> Any:
    return rule(MISSING, "a number >= 0", lambda v: v >= 0)


@dataclass
class AdaConfig:
    """augment=ada: the transforms, their strengths (NVIDIA's 'bgc' defaults) and p's controller."""

    name: str = one_of(lambda: ("ada",))
    transforms: list[str] = rule(
        MISSING,
        f"a list of groups ({', '.join(GROUPS)}) and transforms ({', '.join(GEOMETRIC + COLOUR)}), each once",
        _valid_transforms,
    )
    xint_max: float = _non_negative()
    scale_std: float = _non_negative()
    rotate_max: float = _non_negative()
    aniso_std: float = _non_negative()
    xfrac_std: float = _non_negative()
    brightness_std: float = _non_negative()
    contrast_std: float = _non_negative()
    hue_max: float = _non_negative()
    saturation_std: float = _non_negative()
    p: float | None = rule(MISSING, "null (adaptive, from 0) or a number in [0, 1]", lambda v: v is None or 0 <= v <= 1)
    target: float = rule(MISSING, "a number in (0, 1)", lambda v: 0 < v < 1)
    ada_kimg: float = positive()
    interval: int = at_least(1)


@dataclass(frozen=True)
class Strengths:
    xint_max: float
    scale_std: float
    rotate_max: float
    aniso_std: float
    xfrac_std: float
    brightness_std: float
    contrast_std: float
    hue_max: float
    saturation_std: float


# ----------------------------------------------------------------------------- geometric


def _translate(tx: jax.Array, ty: jax.Array) -> jax.Array:
    one, zero = jnp.ones_like(tx), jnp.zeros_like(tx)
    return jnp.stack([jnp.stack([one, zero, tx]), jnp.stack([zero, one, ty]), jnp.stack([zero, zero, one])])


def _scale(sx: jax.Array, sy: jax.Array) -> jax.Array:
    zero = jnp.zeros_like(sx)
    return jnp.stack([jnp.stack([sx, zero, zero]), jnp.stack([zero, sy, zero]), jnp.stack([zero, zero, zero + 1])])


def _rotation(cos: jax.Array, sin: jax.Array) -> jax.Array:
    zero = jnp.zeros_like(cos)
    return jnp.stack([jnp.stack([cos, -sin, zero]), jnp.stack([sin, cos, zero]), jnp.stack([zero, zero, zero + 1])])


# Every draw of an example comes from two vectors drawn once from its key (few PRNG calls:
# XLA compiles each one's hash separately): step i reads uniforms u = U[4i : 4i + 4] (u[0]
# its coin) and normals n = N[2i : 2i + 2], whichever transforms are chosen.
UNIFORMS_PER_STEP, NORMALS_PER_STEP = 4, 2

# Each geometric step: (u, n, probability, strengths, (height, width)) -> (matrix, applied).
GeometricStep = Callable[[jax.Array, jax.Array, Any, Strengths, tuple[int, int]], tuple[jax.Array, jax.Array]]


def _xflip(u, n, probability, s, size):
    applied = (u[0] < probability) & (u[1] < 0.5)
    return _scale(jnp.where(applied, -1.0, 1.0), jnp.ones(())), applied


def _rotate90(u, n, probability, s, size):
    quarter = jnp.where(u[0] < probability, jnp.minimum(jnp.floor(u[1] * 4), 3).astype(jnp.int32), 0)
    cos, sin = jnp.array([1.0, 0.0, -1.0, 0.0])[quarter], jnp.array([0.0, 1.0, 0.0, -1.0])[quarter]
    return _rotation(cos, sin), quarter != 0


def _xint(u, n, probability, s, size):
    t = (u[1:3] * 2 - 1) * s.xint_max
    shift = jnp.where(u[0] < probability, jnp.round(t * jnp.array([size[1], size[0]], jnp.float32)), 0.0)
    return _translate(-shift[0], -shift[1]), jnp.any(shift != 0)


def _scale_step(u, n, probability, s, size):
    applied = u[0] < probability
    factor = jnp.where(applied, jnp.exp2(n[0] * s.scale_std), 1.0)
    return _scale(1 / factor, 1 / factor), applied


def _aniso(u, n, probability, s, size):
    applied = u[0] < probability
    factor = jnp.where(applied, jnp.exp2(n[0] * s.aniso_std), 1.0)
    return _scale(1 / factor, factor), applied


def _rotate(u, n, probability, s, size):
    applied = u[0] < 1 - jnp.sqrt(jnp.clip(1 - probability, 0.0, 1.0))
    theta = jnp.where(applied, (u[1] * 2 - 1) * math.pi * s.rotate_max, 0.0)
    return _rotation(jnp.cos(theta), jnp.sin(theta)), applied


def _xfrac(u, n, probability, s, size):
    applied = u[0] < probability
    t = jnp.where(applied, n * s.xfrac_std, 0.0)
    return _translate(-t[0] * size[1], -t[1] * size[0]), applied


# The paper's order; rotate twice (before and after aniso), with draws of their own.
GEOMETRIC_STEPS: tuple[tuple[str, GeometricStep], ...] = (
    ("xflip", _xflip),
    ("rotate90", _rotate90),
    ("xint", _xint),
    ("scale", _scale_step),
    ("rotate", _rotate),
    ("aniso", _aniso),
    ("rotate", _rotate),
    ("xfrac", _xfrac),
)


def _draws(uniforms: jax.Array, normals: jax.Array, slot: int) -> tuple[jax.Array, jax.Array]:
    u = uniforms[UNIFORMS_PER_STEP * slot : UNIFORMS_PER_STEP * (slot + 1)]
    return u, normals[NORMALS_PER_STEP * slot : NORMALS_PER_STEP * (slot + 1)]


def geometric_matrix(
    uniforms: jax.Array, normals: jax.Array, p: Any, chosen: tuple[str, ...], s: Strengths, size: tuple[int, int]
) -> tuple[jax.Array, jax.Array]:
    """(G_inv [3, 3]: output pixel -> input pixel, centred coordinates; any transform drawn)."""
    matrix, applied = jnp.eye(3), jnp.zeros((), bool)
    for slot, (name, step) in enumerate(GEOMETRIC_STEPS):
        if name in chosen:
            factor, drawn = step(*_draws(uniforms, normals, slot), p, s, size)
            matrix, applied = matrix @ factor, applied | drawn
    return matrix, applied


def _reflect(index: jax.Array, n: int) -> jax.Array:
    """Integer pixel indices mirrored into [0, n) (reflect padding: ..., 2, 1, 0, 1, 2, ...)."""
    if n == 1:
        return jnp.zeros_like(index)
    period = 2 * (n - 1)
    folded = jnp.mod(index, period)
    return jnp.where(folded >= n, period - folded, folded)


def resample(image: jax.Array, matrix: jax.Array) -> jax.Array:
    """image [H, W, C] sampled at G_inv @ (each output pixel), bilinearly, reflect-padded."""
    height, width, _ = image.shape
    cy, cx = (height - 1) / 2, (width - 1) / 2
    ys, xs = jnp.meshgrid(jnp.arange(height, dtype=jnp.float32), jnp.arange(width, dtype=jnp.float32), indexing="ij")
    points = jnp.stack([xs - cx, ys - cy, jnp.ones_like(xs)])  # [3, H, W]
    source = jnp.einsum("ij,jhw->ihw", matrix, points)
    x, y = source[0] + cx, source[1] + cy
    x0, y0 = jnp.floor(x), jnp.floor(y)
    wx, wy = (x - x0)[..., None], (y - y0)[..., None]
    x0i, y0i = x0.astype(jnp.int32), y0.astype(jnp.int32)
    xa, xb = _reflect(x0i, width), _reflect(x0i + 1, width)
    ya, yb = _reflect(y0i, height), _reflect(y0i + 1, height)
    top = image[ya, xa] * (1 - wx) + image[ya, xb] * wx
    bottom = image[yb, xa] * (1 - wx) + image[yb, xb] * wx
    return (top * (1 - wy) + bottom * wy).astype(image.dtype)


# ----------------------------------------------------------------------------- colour

LUMA: Any = np.array([1.0, 1.0, 1.0, 0.0], np.float32) / math.sqrt(3)  # numpy: no JAX call at import


def _translate3(b: jax.Array) -> jax.Array:
    return jnp.eye(4).at[:3, 3].set(b)


def _hue_rotation(theta: jax.Array) -> jax.Array:
    """Rotation by theta about the luma axis (Rodrigues), on homogeneous colours."""
    v = LUMA[:3]
    cross = jnp.array([[0.0, -v[2], v[1]], [v[2], 0.0, -v[0]], [-v[1], v[0], 0.0]])
    rotation = jnp.cos(theta) * jnp.eye(3) + jnp.sin(theta) * cross + (1 - jnp.cos(theta)) * jnp.outer(v, v)
    return jnp.eye(4).at[:3, :3].set(rotation)


def _brightness(u, n, probability, s):
    applied = u[0] < probability
    return _translate3(jnp.where(applied, n[0] * s.brightness_std, 0.0)), applied


def _contrast(u, n, probability, s):
    applied = u[0] < probability
    c = jnp.where(applied, jnp.exp2(n[0] * s.contrast_std), 1.0)
    return jnp.diag(jnp.array([1.0, 1.0, 1.0, 0.0]) * c + jnp.array([0.0, 0.0, 0.0, 1.0])), applied


def _lumaflip(u, n, probability, s):
    applied = (u[0] < probability) & (u[1] < 0.5)
    return jnp.eye(4) - 2 * jnp.outer(LUMA, LUMA) * applied, applied


def _hue(u, n, probability, s):
    applied = u[0] < probability
    return _hue_rotation(jnp.where(applied, (u[1] * 2 - 1) * math.pi * s.hue_max, 0.0)), applied


def _saturation(u, n, probability, s):
    applied = u[0] < probability
    factor = jnp.where(applied, jnp.exp2(n[0] * s.saturation_std), 1.0)
    along = jnp.outer(LUMA, LUMA)
    return along + (jnp.eye(4) - along) * factor, applied


ColourStep = Callable[[jax.Array, jax.Array, Any, Strengths], tuple[jax.Array, jax.Array]]
COLOUR_STEPS: tuple[tuple[str, ColourStep], ...] = (
    ("brightness", _brightness),
    ("contrast", _contrast),
    ("lumaflip", _lumaflip),
    ("hue", _hue),
    ("saturation", _saturation),
)
STEPS = len(GEOMETRIC_STEPS) + len(COLOUR_STEPS)


def colour_matrix(
    uniforms: jax.Array, normals: jax.Array, p: Any, chosen: tuple[str, ...], s: Strengths, channels: int
) -> tuple[jax.Array, jax.Array]:
    """(C [4, 4] on homogeneous (r, g, b, 1); any transform drawn). Grey: hue, saturation skipped."""
    matrix, applied = jnp.eye(4), jnp.zeros((), bool)
    for index, (name, step) in enumerate(COLOUR_STEPS):
        if name in chosen and not (channels == 1 and name in NEEDS_RGB):
            factor, drawn = step(*_draws(uniforms, normals, len(GEOMETRIC_STEPS) + index), p, s)
            matrix, applied = factor @ matrix, applied | drawn
    return matrix, applied


def recolour(image: jax.Array, matrix: jax.Array) -> jax.Array:
    """C applied to every pixel; grey: the mean of C's colour rows (out = g * sum(row[:3]) + row[3])."""
    if image.shape[-1] == 3:
        return (image @ matrix[:3, :3].T + matrix[:3, 3]).astype(image.dtype)
    row = jnp.mean(matrix[:3], axis=0)
    return (image * jnp.sum(row[:3]) + row[3]).astype(image.dtype)


def augment_one(image: jax.Array, key: jax.Array, p: Any, chosen: tuple[str, ...], s: Strengths) -> jax.Array:
    """One example through the pipeline; the original pixels where nothing was drawn."""
    height, width, channels = image.shape
    if channels not in (1, 3):
        raise ValueError(f"augment=ada: images must be grey (1 channel) or RGB (3 channels), not {channels}")
    uniform_key, normal_key = jax.random.split(key)
    uniforms = jax.random.uniform(uniform_key, (UNIFORMS_PER_STEP * STEPS,))
    normals = jax.random.normal(normal_key, (NORMALS_PER_STEP * STEPS,))
    if any(name in GEOMETRIC for name in chosen):
        matrix, drawn = geometric_matrix(uniforms, normals, p, chosen, s, (height, width))
        image = jnp.where(drawn, resample(image, matrix), image)
    if any(name in COLOUR for name in chosen):
        matrix, drawn = colour_matrix(uniforms, normals, p, chosen, s, channels)
        image = jnp.where(drawn, recolour(image, matrix), image)
    return image


# ----------------------------------------------------------------------------- the controller


def initial_state() -> dict[str, jax.Array]:
    """p = 0; the open window's sum of mean signs and number of D updates; its index; closed flag."""
    zero = jnp.zeros((), jnp.float32)
    return {"p": zero, "sign_sum": zero, "updates": zero, "window": zero, "closed": zero}


def window_rt(state: dict[str, jax.Array]) -> jax.Array:
    return state["sign_sum"] / jnp.maximum(state["updates"], 1.0)


def adapted_p(state: dict[str, jax.Array], target: float, rate: float) -> jax.Array:
    """The p that follows `state`: adjusted by the window's r_t once the window is closed."""
    adjusted = jnp.clip(state["p"] + jnp.sign(window_rt(state) - target) * rate, 0.0, 1.0)
    return jnp.where((state["closed"] > 0) & (state["updates"] > 0), adjusted, state["p"])


def controller_update(
    state: dict[str, jax.Array], mean_sign: jax.Array, step: jax.Array, interval: int, target: float, rate: float
) -> dict[str, jax.Array]:
    """The state after one D update at iteration `step` whose real batch had E[sign(D(x))] = mean_sign.

    A D update in a new window first applies the closed window's adjustment and empties the
    sums. Every field is a float32 identical on every device and micro-batch except the sums,
    whose averages over micro-batches keep their ratio."""
    window = (step // interval).astype(jnp.float32)
    fresh = window != state["window"]
    zero = jnp.zeros((), jnp.float32)
    return {
        "p": jnp.where(fresh, adapted_p(state, target, rate), state["p"]),
        "sign_sum": jnp.where(fresh, zero, state["sign_sum"]) + mean_sign,
        "updates": jnp.where(fresh, zero, state["updates"]) + 1.0,
        "window": window,
        "closed": ((step + 1) % interval == 0).astype(jnp.float32),
    }


def adjustment(batch_size: int, interval: int, ada_kimg: float) -> float:
    """How far p moves per window: the images shown in it over ada_kimg thousand."""
    return batch_size * interval / (ada_kimg * 1000)


def controller_term(
    interval: int,
    target: float | Callable[[Any], Any],
    rate: float,
    fixed_p: float | Callable[[Any], Any] | None,
) -> Term:
    """D's monitor term `ada`: accumulates sign(D(x_real)) and adapts p (logs only, with a
    fixed p). `target`, `fixed_p`: a number, or the iteration's values -> a number (a
    schedule's, a population member's)."""
    read_target, read_p = _reader(target), None if fixed_p is None else _reader(fixed_p)

    def fn(view: DView, state: dict[str, jax.Array]) -> TermResult:
        mean_sign = view.mean_over_devices(jnp.mean(jnp.sign(jax.lax.stop_gradient(view.real_out))))
        new = controller_update(
            state, mean_sign.astype(jnp.float32), view.step, interval, read_target(view.settings), rate
        )
        if read_p is not None:  # the state holds the p applied
            new = {**new, "p": jnp.asarray(read_p(view.settings), jnp.float32)}
        return TermResult(jnp.zeros(()), new, {f"{NAME}_p": new["p"], f"{NAME}_rt": window_rt(new)})

    # The device mean is taken inside fn (r_t from the whole batch), so p agrees on every device.
    return Term(NAME, DISCRIMINATOR, fn, kind="monitor", init=initial_state, mean_state=False)


def _reader(setting: float | Callable[[Any], Any]) -> Callable[[Any], Any]:
    """values -> the setting: itself when it is a number."""
    if callable(setting):
        return setting
    constant = float(setting)
    return lambda values: constant


def _strengths(cfg: Any) -> Strengths:
    return Strengths(**{name: float(cfg[name]) for name in Strengths.__dataclass_fields__})


def _build(cfg: Any, context: dict[str, Any]) -> Augmentation:
    chosen, strengths = expand(cfg.transforms), _strengths(cfg)
    rate = adjustment(context["batch_size"], cfg.interval, cfg.ada_kimg)
    curves = context.get("schedules")
    varying_p = None if curves is None else curves.reader("augment.p")
    varying_target = None if curves is None else curves.reader("augment.target")
    fixed_p = varying_p or (None if cfg.p is None else float(cfg.p))
    target, interval = varying_target or float(cfg.target), int(cfg.interval)
    read_target = _reader(target)

    def apply(images: jax.Array, keys: jax.Array, states: dict[str, Any], values: Any = None) -> jax.Array:
        p = _reader(fixed_p)(values) if fixed_p is not None else adapted_p(states[NAME], read_target(values), rate)
        return jax.vmap(lambda image, key: augment_one(image, key, p, chosen, strengths))(images, keys)

    return Augmentation(apply, (controller_term(interval, target, rate, fixed_p),))


register(AugmentPart(NAME, AdaConfig, _build, is_on=lambda cfg: True))
