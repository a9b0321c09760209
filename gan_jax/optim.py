"""Optimisers for the two players: `optim.lr` for both, `optim.g_lr` / `optim.d_lr` override
(Adam's betas likewise: `optim.b1`, `optim.b2`, overridden by `optim.g_b2`, `optim.d_b1`, ...).

Each optimiser is registered (`OPTIMISERS`) with its config schema and its builder
`build(lr, cfg.optim) -> optax.GradientTransformation`; `lr` is a number or an optax
schedule. `optim.lr_decay` (linear or cosine) holds each player's lr until training
iteration `optim.lr_decay_start`, then decays it to 0 at `train.steps` (CycleGAN's
constant-then-linear schedule; the 2-D mixtures need it for samples that sit on the modes).

With `schedule.final` on an optimiser key (gan_jax/schedules.py), or a population varying one
(gan_jax/population.py), the player's lr or betas are hyper-parameters in its optimiser state
(optax.inject_hyperparams), which the step sets before each update (`Optimiser.hyperparams`).

A player with a lazy regulariser (one that runs every N iterations, gan_jax/penalties.py)
gets lr * c and Adam's betas ** c with c = N / (N + 1) (Karras et al. 2020, Appendix B:
the regulariser's own updates then leave the optimiser's effective step as it was).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import jax
import optax

from gan_jax.registry import Registry, Rule
from gan_jax.schedules import Schedules
from gan_jax.schema import MISSING, in_range, one_of, optional_positive, positive, rule

LR_DECAYS = ("linear", "cosine")


@dataclass
class OptimConfig:
    name: str = one_of(lambda: OPTIMISERS.names())
    lr: float = positive()
    g_lr: float | None = optional_positive(MISSING)
    d_lr: float | None = optional_positive(MISSING)
    # null: a constant lr.
    lr_decay: str | None = rule(None, f"null or one of {', '.join(LR_DECAYS)}", lambda v: v is None or v in LR_DECAYS)
    # The training iteration the decay starts at (null: 0); it ends at train.steps.
    lr_decay_start: int | None = rule(None, "null or an integer >= 0", lambda v: v is None or v >= 0)


@dataclass
class AdamConfig(OptimConfig):
    """Adam's moment decay rates; the other optimisers have none to set."""

    b1: float = in_range(0.0, 1.0)
    b2: float = in_range(0.0, 1.0)
    # One player's own (null: b1, b2).
    g_b1: float | None = rule(None, "null or a number in [0, 1]", lambda v: v is None or 0 <= v <= 1)
    g_b2: float | None = rule(None, "null or a number in [0, 1]", lambda v: v is None or 0 <= v <= 1)
    d_b1: float | None = rule(None, "null or a number in [0, 1]", lambda v: v is None or 0 <= v <= 1)
    d_b2: float | None = rule(None, "null or a number in [0, 1]", lambda v: v is None or 0 <= v <= 1)


@dataclass(frozen=True)
class OptimPart:
    name: str
    build: Callable[[float, Any], optax.GradientTransformation]  # (lr, cfg.optim) -> optimiser
    schema: type = OptimConfig
    rules: tuple[Rule, ...] = ()


OPTIMISERS: Registry[OptimPart] = Registry("optimiser")


def register(part: OptimPart, *, replace: bool = False) -> OptimPart:
    return OPTIMISERS.register(part.name, part, replace=replace)


register(OptimPart("adam", lambda lr, cfg: optax.adam(lr, b1=cfg.b1, b2=cfg.b2), schema=AdamConfig))
register(OptimPart("rmsprop", lambda lr, cfg: optax.rmsprop(lr)))
register(OptimPart("sgd", lambda lr, cfg: optax.sgd(lr)))


@dataclass(frozen=True)
class Optimiser:
    """A player's optimiser and, when some of its settings vary (a schedule, a population),
    the iteration's values (schedules.Values) -> those settings by optax's names, to put in its state."""

    transformation: optax.GradientTransformation
    hyperparams: Callable[[dict[str, jax.Array]], dict[str, jax.Array]] | None = None


def build(
    cfg,
    steps: int,
    d_steps: int,
    g_interval: int | None = None,
    d_interval: int | None = None,
    schedules: Schedules | None = None,
) -> tuple[Optimiser, Optimiser]:
    """Returns (generator optimiser, discriminator optimiser) for `steps` training
    iterations, in each of which D is updated `d_steps` times and G once; a player's lazy
    regularisation interval (None: none) rescales its lr and betas."""
    schedules = schedules or Schedules()
    return (
        _player_optimiser(cfg, "g", steps, 1, g_interval, schedules),
        _player_optimiser(cfg, "d", steps, d_steps, d_interval, schedules),
    )


def _player_optimiser(
    cfg, player: str, steps: int, updates_per_step: int, interval: int | None, schedules: Schedules
) -> Optimiser:
    make = OPTIMISERS.get(cfg.name).build
    lr_key = f"{player}_lr" if cfg.get(f"{player}_lr") is not None else "lr"
    own, scale = lazy_rescaled(players_own(cfg, player), interval)
    lr = cfg[lr_key] * scale
    # optax's name for each setting -> the config key the player takes it from
    sources = {"learning_rate": lr_key}
    for beta in ("b1", "b2"):
        if beta in own:
            sources[beta] = f"{player}_{beta}" if cfg.get(f"{player}_{beta}") is not None else beta
    scheduled = {name: key for name, key in sources.items() if schedules.varies(f"optim.{key}")}
    if not scheduled:
        return Optimiser(make(schedule(lr, cfg, steps, updates_per_step), own))

    betas = tuple(name for name in sources if name != "learning_rate")

    def with_betas(learning_rate, b1, b2):  # optax reads a factory's named parameters as its hyper-parameters
        return make(learning_rate, _WithValues(own, {"b1": b1, "b2": b2}))

    def without_betas(learning_rate):
        return make(learning_rate, own)

    factory = with_betas if betas else without_betas
    initial = {"learning_rate": lr, **{b: own[b] for b in betas}}

    def hyperparams(values: dict[str, jax.Array]) -> dict[str, jax.Array]:
        """The iteration's values of the varying settings, lazily rescaled as the constants
        are: lr * c, betas ** c."""
        settings = {}
        for name, key in scheduled.items():
            value = values[f"optim.{key}"]
            settings[name] = value * scale if name == "learning_rate" else value**scale
        return settings

    return Optimiser(optax.inject_hyperparams(factory)(**initial), hyperparams)


class _WithValues:
    """A config node with some settings replaced by (traced) values: what a builder reads."""

    def __init__(self, node: Any, values: dict[str, Any]):
        self._node, self._values = node, values

    def __getattr__(self, name: str) -> Any:
        return self._values[name] if name in self._values else getattr(self._node, name)

    def __getitem__(self, name: str) -> Any:
        return self.__getattr__(name)

    def get(self, name: str, default: Any = None) -> Any:
        return self._values.get(name, self._node.get(name, default))


def players_own(cfg, player: str):
    """cfg with b1, b2 replaced by the player's g_b1, g_b2 (or d_...) where those are set."""
    own = cfg.copy()
    for beta in ("b1", "b2"):
        if own.get(f"{player}_{beta}") is not None:
            own[beta] = own[f"{player}_{beta}"]
    return own


def lazy_rescaled(cfg, interval: int | None):
    """(cfg with betas ** c, c) for c = interval / (interval + 1); (cfg, 1) without lazy
    regularisation."""
    if interval is None:
        return cfg, 1
    ratio = interval / (interval + 1)
    rescaled = cfg.copy()
    for beta in ("b1", "b2"):
        if beta in rescaled:
            rescaled[beta] = rescaled[beta] ** ratio
    return rescaled, ratio


def schedule(lr: float, cfg, steps: int, updates_per_step: int) -> float | optax.Schedule:
    """`lr`, or with `cfg.lr_decay` a schedule of the optimiser's update count that holds
    `lr` until iteration `cfg.lr_decay_start` and reaches 0 at iteration `steps`."""
    if cfg.lr_decay is None:
        return lr
    start = (cfg.lr_decay_start or 0) * updates_per_step
    span = max(steps * updates_per_step - start, 1)
    decay = optax.linear_schedule(lr, 0.0, span) if cfg.lr_decay == "linear" else optax.cosine_decay_schedule(lr, span)
    return optax.join_schedules([optax.constant_schedule(lr), decay], [start])
