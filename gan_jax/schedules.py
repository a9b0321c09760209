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

A hyper-parameter population (gan_jax/population.py) varies some of the same keys per
member: their values live in the training state (`GANState.hyperparams`), and a key both
varied and scheduled follows its curve from the member's value. `Schedules.values` gives
an iteration's value of every such key; the parts read them there (`reader(key)`).
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
MEMBER_PREFIX = "population/"
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

    def at_images(self, shown: Any, base: Any = None) -> Any:
        """The value after `shown` images, from `base` (default: the key's own value)."""
        base = self.base if base is None else base
        progress = jnp.clip(jnp.asarray(shown, jnp.float32) / self.images, 0.0, 1.0)
        if self.shape == "cosine":
            progress = (1 - jnp.cos(math.pi * progress)) / 2
        return base + (self.final - base) * progress


Values = dict[str, jax.Array]  # an iteration's value of each key that varies


@dataclass(frozen=True)
class Schedules:
    """The settings the step reads as traced values: the run's curves (a function of the
    steps completed) and the keys a population varies (`member_keys`, per member, from the
    state)."""

    curves: tuple[Curve, ...] = ()
    batch_size: int = 1  # images per step
    member_keys: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.curves) or bool(self.member_keys)

    def keys(self) -> tuple[str, ...]:
        return tuple(c.key for c in self.curves)

    def has(self, key: str) -> bool:
        """Whether `key` follows a schedule."""
        return key in self.keys()

    def varies(self, key: str) -> bool:
        """Whether the step reads `key` as a traced value (scheduled, or varied per member)."""
        return self.has(key) or key in self.member_keys

    def values(self, step: jax.Array, member_values: Values | None = None) -> Values:
        """Every varying key's value after `step` steps completed; `member_values`: this
        member's values of the population's keys (GANState.hyperparams)."""
        values = dict(member_values or {})
        shown = jnp.asarray(step, jnp.float32) * self.batch_size
        for curve in self.curves:
            values[curve.key] = curve.at_images(shown, values.get(curve.key))
        return values

    def value(self, key: str, step: jax.Array) -> jax.Array:
        """A scheduled `key`'s value after `step` steps completed (from its own base)."""
        return self.values(step)[key]

    def reader(self, key: str) -> Callable[[Values], jax.Array] | None:
        """values -> `key`'s value, None when `key` does not vary (its part uses the constant)."""
        return (lambda values: values[key]) if self.varies(key) else None

    def metrics(self, values: Values, member_values: Values | None = None) -> dict[str, jax.Array]:
        """What a logged row carries: each scheduled key's value at the step, and a member's
        own values (a key also scheduled: the member's, from which its curve starts)."""
        rows = {METRIC_PREFIX + c.key: values[c.key] for c in self.curves}
        own = member_values or {}
        rows |= {MEMBER_PREFIX + k: jnp.asarray(own[k], jnp.float32) for k in self.member_keys}
        return rows


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


def from_config(cfg: Any, member_keys: tuple[str, ...] = ()) -> Schedules:
    """The curves of a validated config (none without schedule.final); `member_keys`: those
    its population varies."""
    final = flat_final(cfg)
    if not final:
        return Schedules(member_keys=member_keys)
    images = float(cfg.schedule.kimg) * 1000
    curves = tuple(
        Curve(key, float(OmegaConf.select(cfg, key)), float(value), images, cfg.schedule.shape)
        for key, value in final.items()
    )
    return Schedules(curves, cfg.train.batch_size, member_keys)


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
