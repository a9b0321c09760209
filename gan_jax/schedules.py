"""Hyper-parameters that follow a curve over training: `schedule.final` names keys of the
config and the value each reaches after `schedule.kimg` thousand images (R3GAN's
`*_scheduler` settings, Huang et al. 2024):

    value(n) = base + (final - base) * (1 - cos(pi * n / N)) / 2     shape=cosine
    value(n) = base + (final - base) * n / N                         shape=linear

for n = images shown = steps completed x train.batch_size (StyleGAN's and R3GAN's count),
N = schedule.kimg x 1000, and `final` from n = N on; `base` is the key's own value. A value
is a function of the step, which is state of the run: a resumed run follows the same curve,
and every logged row carries each scheduled value as `schedule/<key>`.

The keys that can follow a schedule are those the step reads as numbers: the optimisers'
lr and Adam's betas (each player's from its own key when set, g_lr, d_b2, ...), every
regulariser's weight, the EMA's decay or half-life, and a fixed ADA probability. Each is
applied by the part that owns it (gan_jax/optim.py, penalties.py, ema.py, ada.py); the
schedule only says what the value is at a step.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import jax.numpy as jnp
from omegaconf import OmegaConf

from gan_jax.schema import MISSING, one_of, rule

SHAPES = ("cosine", "linear")
METRIC_PREFIX = "schedule/"
OPTIM_KEYS = ("lr", "g_lr", "d_lr", "b1", "b2", "g_b1", "g_b2", "d_b1", "d_b2")


@dataclass
class ScheduleConfig:
    # Thousands of images over which every key in `final` moves from its value to its final one.
    kimg: float | None = rule(MISSING, "null or a number > 0", lambda v: v is None or v > 0)
    shape: str = one_of(lambda: SHAPES)
    # The scheduled keys' final values, as a tree of the config: {optim: {lr: 5.0e-5}}.
    final: Any = MISSING


@dataclass(frozen=True)
class Curve:
    """One key's value as a function of the images shown."""

    key: str
    base: float
    final: float
    images: float  # N: the final value is reached after this many
    shape: str = "cosine"

    def at_images(self, shown: Any) -> Any:
        progress = jnp.clip(jnp.asarray(shown, jnp.float32) / self.images, 0.0, 1.0)
        if self.shape == "cosine":
            progress = (1 - jnp.cos(math.pi * progress)) / 2
        return self.base + (self.final - self.base) * progress


@dataclass(frozen=True)
class Schedules:
    """The run's curves; a step's values are functions of the steps completed."""

    curves: tuple[Curve, ...] = ()
    batch_size: int = 1  # images per step

    def __bool__(self) -> bool:
        return bool(self.curves)

    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.curves)

    def has(self, key: str) -> bool:
        return key in self.keys()

    def value(self, key: str, step: jax.Array) -> jax.Array:
        """`key`'s value after `step` steps completed."""
        curve = next(c for c in self.curves if c.key == key)
        return curve.at_images(jnp.asarray(step, jnp.float32) * self.batch_size)

    def of(self, key: str) -> Callable[[jax.Array], jax.Array] | None:
        """step -> `key`'s value, None when `key` does not follow a schedule."""
        return (lambda step: self.value(key, step)) if self.has(key) else None

    def metrics(self, step: jax.Array) -> dict[str, jax.Array]:
        """What a logged row carries: each scheduled key's value at `step`."""
        return {METRIC_PREFIX + c.key: self.value(c.key, step) for c in self.curves}


def flat_final(cfg: Any) -> dict[str, Any]:
    """schedule.final as {dotted key: final value}."""
    node = cfg.get("schedule")
    if node is None or node.get("final") is None:
        return {}
    final = node.final
    tree = OmegaConf.to_container(final, resolve=True) if OmegaConf.is_config(final) else final
    return _dotted(tree) if isinstance(tree, dict) else {"": tree}


def _dotted(tree: dict, prefix: str = "") -> dict[str, Any]:
    """{"optim": {"lr": 1}} -> {"optim.lr": 1}."""
    flat: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat |= _dotted(value, f"{prefix}{key}.")
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def from_config(cfg: Any) -> Schedules:
    """The curves of a validated config (none without schedule.final)."""
    final = flat_final(cfg)
    if not final:
        return Schedules()
    images = float(cfg.schedule.kimg) * 1000
    curves = tuple(
        Curve(key, float(OmegaConf.select(cfg, key)), float(value), images, cfg.schedule.shape)
        for key, value in final.items()
    )
    return Schedules(curves, cfg.train.batch_size)


def schedulable_keys(cfg: Any) -> tuple[str, ...]:
    """The keys of this config that may follow a schedule."""
    keys = [f"optim.{k}" for k in OPTIM_KEYS if k in cfg.optim]
    keys += [f"penalty.{name}.weight" for name in (cfg.get("penalty") or {})]
    keys += ["train.ema_decay", "train.ema_kimg"]
    if "p" in cfg.augment:
        keys.append("augment.p")
    return tuple(keys)


def errors(cfg: Any, field_rule: Callable[[str], tuple[Callable[[Any], bool], str] | None]) -> list[str]:
    """What is wrong with schedule.final for this config; `field_rule(key)` is the key's
    own (test, description) from its schema."""

    final = flat_final(cfg)
    if not final:
        return []
    messages = []
    if cfg.schedule.kimg is None:
        messages.append(
            f"schedule.final sets {', '.join(final)}: give the span they follow, schedule.kimg (e.g. 20000)"
        )
    valid = schedulable_keys(cfg)
    for key, value in final.items():
        name = f"schedule.final.{key}"
        if key not in valid:
            messages.append(f"{name}: not a key that can follow a schedule; valid keys here are {', '.join(valid)}")
            continue
        base = OmegaConf.select(cfg, key)
        if base is None:
            what = "the adaptive p" if key == "augment.p" else "null"
            messages.append(f"{name}: {key} is {what}, so the schedule has no value to start from; set {key}")
            continue
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            messages.append(f"{name}={value!r}: must be a finite number")
            continue
        own = field_rule(key)
        if own is not None and not own[0](value):
            rule_text = own[1].removeprefix("null or ")  # a final value is a number
            messages.append(f"{name}={value!r}: must be {rule_text}, as {key} must")
    if cfg.optim.get("lr_decay") is not None and any(k.endswith("lr") and k.startswith("optim.") for k in final):
        messages.append(
            f"schedule.final sets an lr with optim.lr_decay={cfg.optim.lr_decay}: both shape the lr; "
            "set optim.lr_decay=null or drop the lr from schedule.final"
        )
    return messages
