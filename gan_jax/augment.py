"""DiffAugment (Zhao et al. 2020): differentiable augmentations of everything D sees.

`augment.policy` lists the transforms, applied in that order to real and generated
images alike, in D's step, in G's step (so G's gradient flows back through them) and in
the penalties' points. Each example is transformed with its own key, derived like every
other draw from (seed, step, purpose, example index), so the numbers do not depend on
how the batch is split over devices. Images are [B, H, W, C] in [-1, 1].

    color        brightness + U(-0.5, 0.5); saturation x (U(0, 1) * 2) around the pixel's
                 channel mean; contrast x (U(0, 1) + 0.5) around the image's mean
    translation  shift by up to 1/8 of the size in each direction, zeros filling in
    cutout       zero a square of half the size at a uniformly drawn centre

Every transform is affine in the image for a given key: the same key applies the same
operation to a real and a generated image.

`augment=` chooses the pipeline (a config group, `AUGMENTATIONS`): `diffaugment` (the
default; its `augment.policy=[]` is off), `none`, and pipelines registered elsewhere
(ADA). A pipeline is an `Augmentation`: `apply(images, keys, states)`, where `states` are
the terms' states of the iteration (a pipeline with state, ADA's p, keeps it in a term it
contributes, e.g. a monitor term that adapts p from D's outputs).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp

from gan_jax.registry import Registry
from gan_jax.schema import MISSING, one_of, rule
from gan_jax.terms import Term

Transform = Callable[[jax.Array, jax.Array], jax.Array]  # (one image [H, W, C], key) -> image

TRANSLATION_RATIO = 1 / 8
CUTOUT_RATIO = 1 / 2

TRANSFORMS: Registry[Transform] = Registry("augmentation")


def color(image: jax.Array, key: jax.Array) -> jax.Array:
    brightness, saturation, contrast = jax.random.uniform(key, (3,))
    image = image + (brightness - 0.5)
    channel_mean = jnp.mean(image, axis=-1, keepdims=True)
    image = (image - channel_mean) * (saturation * 2) + channel_mean
    mean = jnp.mean(image)
    return (image - mean) * (contrast + 0.5) + mean


def translation(image: jax.Array, key: jax.Array) -> jax.Array:
    height, width, channels = image.shape
    shift_h, shift_w = int(height * TRANSLATION_RATIO + 0.5), int(width * TRANSLATION_RATIO + 0.5)
    key_h, key_w = jax.random.split(key)
    dh = jax.random.randint(key_h, (), -shift_h, shift_h + 1)
    dw = jax.random.randint(key_w, (), -shift_w, shift_w + 1)
    padded = jnp.pad(image, ((shift_h, shift_h), (shift_w, shift_w), (0, 0)))
    return jax.lax.dynamic_slice(padded, (shift_h + dh, shift_w + dw, 0), (height, width, channels))


def cutout(image: jax.Array, key: jax.Array) -> jax.Array:
    height, width, _ = image.shape
    size_h, size_w = int(height * CUTOUT_RATIO + 0.5), int(width * CUTOUT_RATIO + 0.5)
    key_h, key_w = jax.random.split(key)
    top = jax.random.randint(key_h, (), 0, height + (1 - size_h % 2)) - size_h // 2
    left = jax.random.randint(key_w, (), 0, width + (1 - size_w % 2)) - size_w // 2
    rows, cols = jnp.arange(height)[:, None], jnp.arange(width)[None, :]
    inside = (rows >= top) & (rows < top + size_h) & (cols >= left) & (cols < left + size_w)
    return image * jnp.where(inside, 0.0, 1.0)[..., None].astype(image.dtype)


for _name, _transform in (("color", color), ("translation", translation), ("cutout", cutout)):
    TRANSFORMS.register(_name, _transform)


def build(policy: Sequence[str]) -> Callable[[jax.Array, jax.Array], jax.Array] | None:
    """(images [B, H, W, C], one key per example [B]) -> augmented images; None for an empty policy."""
    if not policy:
        return None
    transforms = [TRANSFORMS.get(name) for name in policy]

    def augment_one(image: jax.Array, key: jax.Array) -> jax.Array:
        for index, transform in enumerate(transforms):
            image = transform(image, jax.random.fold_in(key, index))
        return image

    return jax.vmap(augment_one)


def _names() -> tuple[str, ...]:
    return TRANSFORMS.names()


@dataclass
class AugmentConfig:
    """augment=diffaugment: DiffAugment's transforms, in the order listed ([] = off)."""

    name: str = one_of(lambda: ("diffaugment",))
    policy: list[str] = rule(
        MISSING,
        f"a list of augmentation names ({', '.join(_names())}), each at most once",
        lambda v: all(name in _names() for name in v) and len(set(v)) == len(v),
    )


@dataclass
class NoAugmentConfig:
    name: str = one_of(lambda: ("none",))


@dataclass(frozen=True)
class Augmentation:
    """What every image D sees goes through: apply(images [B, H, W, C], one key per example,
    the terms' states, the iteration's values of the settings that vary (schedules.Values)) ->
    images; `terms`: what the pipeline adds to the objectives (its
    state, e.g. ADA's p and the controller that adapts it)."""

    apply: Callable[[jax.Array, jax.Array, dict[str, Any], Any], jax.Array]
    terms: tuple[Term, ...] = ()


@dataclass(frozen=True)
class AugmentPart:
    """A pipeline as gan-train chooses it: `augment=<name>` composes conf/augment/<name>.yaml
    over `schema`; `build(cfg.augment, context) -> Augmentation | None` (None: off, as
    DiffAugment with an empty policy); `is_on(cfg.augment)`: it transforms images (the rules
    refuse it on data that are not images, and a consistency regulariser needs it)."""

    name: str
    schema: type
    build: Callable[[Any, dict[str, Any]], Augmentation | None]
    is_on: Callable[[Any], bool]
    rules: tuple[Callable[[Any], str | None], ...] = ()


AUGMENTATIONS: Registry[AugmentPart] = Registry("augmentation pipeline")


def register(part: AugmentPart, *, replace: bool = False) -> AugmentPart:
    return AUGMENTATIONS.register(part.name, part, replace=replace)


def _diffaugment(cfg: Any, context: dict[str, Any]) -> Augmentation | None:
    transform = build(cfg.policy)
    if transform is None:
        return None

    def apply(images: jax.Array, keys: jax.Array, states: dict[str, Any], values: Any = None) -> jax.Array:
        return transform(images, keys)

    return Augmentation(apply)


register(AugmentPart("diffaugment", AugmentConfig, _diffaugment, is_on=lambda cfg: bool(cfg.policy)))
register(AugmentPart("none", NoAugmentConfig, lambda cfg, context: None, is_on=lambda cfg: False))


def from_config(cfg: Any, context: dict[str, Any]) -> Augmentation | None:
    """cfg.augment -> its pipeline (None: off). `context`: what a pipeline may need of the run
    (the global batch size, ...)."""
    return AUGMENTATIONS.get(cfg.name).build(cfg, context)


def is_on(cfg: Any) -> bool:
    return AUGMENTATIONS.get(cfg.name).is_on(cfg)
