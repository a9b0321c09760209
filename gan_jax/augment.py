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
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import jax
import jax.numpy as jnp

from gan_jax.registry import Registry
from gan_jax.schema import MISSING, rule

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
    # [] = off; any of color, translation, cutout, applied in the order listed.
    policy: list[str] = rule(
        MISSING,
        f"a list of augmentation names ({', '.join(_names())}), each at most once",
        lambda v: all(name in _names() for name in v) and len(set(v)) == len(v),
    )
