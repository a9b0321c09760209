"""A hyper-parameter population: many GANs, differing in settings the step reads as traced
values, trained as one vmapped state by one compiled program.

`train.population` gives the points, in one of three forms:

    grid     {optim.lr: [1e-4, 3e-4], penalty.r1.weight: [0.1, 1, 10]}     every combination
    list     [{optim.lr: 1e-4, loss.name: hinge}, {optim.lr: 3e-4}]          these points
    random   {random: 16, optim.lr: {low: 1e-5, high: 1e-3, log: true},      16 points drawn from
              loss.name: [hinge, wgan]}                                      `seed`: a range
                                                                             uniformly (log: in log
                                                                             space), a list's items

crossed with `train.num_seeds`: member m is point m // num_seeds with seed `seed` + m % num_seeds,
so member m is the run `member_config(cfg, m)` describes, trained alone.

A key may vary over a population when the step reads it as a number (`traceable_keys`): the
optimisers' lr and betas, every regulariser's weight, the EMA's decay or half-life, ADA's
fixed p or its target, and `loss.name` among the registered losses (the step switches on
the member's loss index: every loss is a function of D's outputs). Everything else changes
the program (an architecture, a width, d_steps, the batch, the dataset): a sweep (-m) axis.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from omegaconf import DictConfig, ListConfig, OmegaConf

from gan_jax import losses, schedules
from gan_jax.conf_dir import CONFIG_DIR
from gan_jax.errors import ConfigError

LOSS_KEY = "loss.name"
RANDOM_KEY = "random"


@dataclass(frozen=True)
class Member:
    index: int
    seed: int
    values: dict[str, Any]  # the point's settings: {"optim.lr": 3e-4, "loss.name": "hinge"}

    def label(self) -> str:
        shown = ", ".join(f"{k}={_short(v)}" for k, v in self.values.items())
        return f"member {self.index} (seed {self.seed}{', ' + shown if shown else ''})"


def _short(value: Any) -> str:
    return f"{value:.4g}" if isinstance(value, float) else str(value)


def spec(cfg: Any) -> Any:
    """train.population as plain Python (None when unset or empty)."""
    node = cfg.train.get("population")
    if node is None:
        return None
    plain = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig | ListConfig) else node
    return plain or None


def traceable_keys(cfg: Any) -> tuple[str, ...]:
    """The keys of this config a population may vary."""
    keys = list(schedules.schedulable_keys(cfg)) + [LOSS_KEY]
    if cfg.augment.get("name") == "ada":
        keys.append("augment.target")
    return tuple(keys)


def keys(cfg: Any) -> tuple[str, ...]:
    """The keys this config's population varies, in the order it names them ((): none)."""
    given = spec(cfg)
    if given is None:
        return ()
    if isinstance(given, list):
        return tuple(dict.fromkeys(k for point in given if isinstance(point, dict) for k in point))
    return tuple(k for k in given if k != RANDOM_KEY)


def points(cfg: Any) -> list[dict[str, Any]]:
    """The hyper-parameter points of a config whose train.population is sound ([{}]: none)."""
    given = spec(cfg)
    if given is None:
        return [{}]
    if isinstance(given, list):
        chosen = [dict(p) for p in given]
    elif RANDOM_KEY in given:
        chosen = _random_points(given, cfg.seed)
    else:
        names = list(given)
        chosen = [dict(zip(names, combination, strict=True)) for combination in itertools.product(*given.values())]
    return [{k: _as_setting(k, v) for k, v in point.items()} for point in chosen]


def _as_setting(key: str, value: Any) -> Any:
    """A point's value as its key holds it: the numbers as floats (a grid's `10` is the run's 10.0)."""
    if key != LOSS_KEY and isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return value


def _random_points(given: dict, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    draws = {k: _draw(v) for k, v in given.items() if k != RANDOM_KEY}
    return [{key: draw(rng) for key, draw in draws.items()} for _ in range(int(given[RANDOM_KEY]))]


Draw = Callable[[np.random.Generator], Any]


def _draw(choice: Any) -> Draw:
    """rng -> a value of `choice`: a list's item uniformly, a {low, high, log} range's number
    uniformly (log: log-uniformly)."""
    if isinstance(choice, list):
        return lambda rng: choice[int(rng.integers(len(choice)))]
    low, high = float(choice["low"]), float(choice["high"])
    if choice.get("log"):
        return lambda rng: float(math.exp(rng.uniform(math.log(low), math.log(high))))
    return lambda rng: float(rng.uniform(low, high))


def domains(cfg: Any) -> dict[str, Draw]:
    """Each varied key -> a fresh draw from the values the population gives it: its random
    range or list, its grid axis, or the values the list's points give it (PBT resamples so)."""
    given = spec(cfg)
    if isinstance(given, list):
        return {
            key: _draw(list(dict.fromkeys(p.get(key, OmegaConf.select(cfg, key)) for p in given))) for key in keys(cfg)
        }
    return {key: _draw(given[key]) for key in keys(cfg)}


def members(cfg: Any) -> list[Member]:
    """Every member of the run: the points crossed with the seeds (a plain run: one)."""
    seeds = range(cfg.seed, cfg.seed + cfg.train.num_seeds)
    return [
        Member(index, seed, point) for index, (point, seed) in enumerate((p, s) for p in points(cfg) for s in seeds)
    ]


def initial_state(parts: Any, cfg: Any) -> Any:
    """The run's fresh state: every member's, stacked (step.init_population)."""
    from gan_jax import step

    return step.init_population(parts, [m.seed for m in members(cfg)], numeric_values(cfg))


def first_values(cfg: Any) -> dict[str, np.ndarray]:
    """Member 0's values of the varied keys, for a state of one member (step.init_state)."""
    return {key: column[0] for key, column in numeric_values(cfg).items()}


def member_config(cfg: Any, member: Member) -> DictConfig:
    """The config of the single run that `member` is: its point's settings, its seed, no population."""
    single = cfg.copy()  # keeps each section's schema, as composing `loss=<name> ...` would
    for key, value in member.values.items():
        if key == LOSS_KEY:
            single.loss = loss_config(cfg, str(value))
        else:
            OmegaConf.update(single, key, value, merge=False)
    single.seed = member.seed
    single.train.num_seeds = 1
    single.train.population = None
    single.train.pbt.every = None
    return single


def loss_config(cfg: Any, name: str) -> DictConfig:
    """The loss settings of a member whose loss is `name`: the run's own loss node when it
    is that loss, else conf/loss/<name>.yaml's settings, as `loss=<name>` composes them."""
    if name == cfg.loss.name:
        return cfg.loss.copy()
    node = OmegaConf.load(Path(CONFIG_DIR) / "loss" / f"{name}.yaml")
    settings = {k: v for k, v in OmegaConf.to_container(node).items() if k != "defaults"}  # type: ignore[union-attr]
    return cast(DictConfig, OmegaConf.merge(OmegaConf.structured(losses.LOSSES.get(name).schema), settings))


def loss_names(cfg: Any) -> tuple[str, ...]:
    """The losses a loss population switches between, in the order the step indexes them
    (() when the loss does not vary)."""
    if LOSS_KEY not in keys(cfg):
        return ()
    given = spec(cfg)
    if isinstance(given, dict):  # a grid's axis, or the list random draws from: in its order
        return tuple(dict.fromkeys(str(name) for name in given[LOSS_KEY]))
    return tuple(dict.fromkeys(str(p.get(LOSS_KEY, cfg.loss.name)) for p in given))


def numeric_values(cfg: Any) -> dict[str, np.ndarray]:
    """Each varied key's value per member ([members] float32; loss.name as its loss index):
    what GANState.hyperparams starts as."""
    varied = keys(cfg)
    if not varied:
        return {}
    names = loss_names(cfg)
    columns: dict[str, list[float]] = {k: [] for k in varied}
    for member in members(cfg):
        for key in varied:
            if key == LOSS_KEY:
                columns[key].append(names.index(str(member.values.get(key, cfg.loss.name))))
            else:
                columns[key].append(float(member.values.get(key, OmegaConf.select(cfg, key))))
    return {k: np.asarray(v, np.int32 if k == LOSS_KEY else np.float32) for k, v in columns.items()}


def readable(cfg: Any, key: str, value: float) -> Any:
    """A member's value (float32 in the state) as the config spells it: the shortest decimal
    that is the same float32 (0.001), a loss index as its name."""
    return readable_among(loss_names(cfg), key, value)


def readable_among(loss_order: Sequence[str], key: str, value: float) -> Any:
    """`readable`, given the population's losses by index."""
    return loss_order[int(value)] if key == LOSS_KEY else float(str(np.float32(value)))


def ended_values(cfg: Any, member: Member, rows: list[dict]) -> dict[str, Any]:
    """A member's values of the varied keys as it ended (PBT moves them): its last training
    row's, else its point's."""
    trained = [r for r in rows if "d_loss" in r]
    if not trained:
        return {k: member.values.get(k, OmegaConf.select(cfg, k)) for k in keys(cfg)}
    return {k: trained[-1].get(schedules.MEMBER_PREFIX + k) for k in keys(cfg)}


def summary(cfg: Any, replicas: list[dict], pbt: dict | None) -> dict[str, Any]:
    """summary.json's `population`: the keys varied, the points, each member's start, PBT's
    settings and lineage (`pbt`), and with an `objective` that ranks (an evaluation key with
    a direction) the best member: what gan-train returns to a sweeper (Optuna)."""
    from gan_jax import evaluators
    from gan_jax import summary as summaries

    described: dict[str, Any] = {
        "keys": list(keys(cfg)),
        "points": points(cfg),
        "num_seeds": cfg.train.num_seeds,
        "members": [{"member": m.index, "seed": m.seed, "start": dict(m.values)} for m in members(cfg)],
    }
    if pbt is not None:
        described["pbt"] = pbt
    objective = cfg.objective
    way = evaluators.direction(objective or "")
    if objective is not None and objective.startswith("eval.") and way in ("min", "max"):
        best = summaries.best_member({"replicas": replicas}, objective, way)
        described["best"] = (
            None
            if best is None
            else {
                "objective": objective,
                "direction": way,
                "value": summaries.value(best, objective),
                "member": best["member"],
                "seed": best["seed"],
                "hyperparams": best["hyperparams"],
            }
        )
    return described


# --- validation ------------------------------------------------------------------------

STRUCTURAL_HINT = "it changes the compiled program; sweep it instead: gan-train -m {key}=A,B"


def errors(cfg: Any, validate_member: Any) -> list[str]:
    """What is wrong with train.population; `validate_member(member_cfg)` raises ConfigError
    for a member's config (each member's values meet their keys' own rules that way)."""
    given = spec(cfg)
    if given is None:
        return []
    form = _form_errors(given)
    if form:
        return form
    messages = _key_errors(cfg) or _value_errors(cfg)
    if messages:
        return messages
    if cfg.train.pbt.every is None and len(points(cfg)) < 2 and cfg.train.num_seeds < 2:
        return ["train.population: one point; give two or more (or drop train.population)"]
    messages = _repeated_point_errors(cfg)
    seen: set[str] = set()
    for member in members(cfg):
        if member.seed != cfg.seed:  # each point once: its seeds share its settings
            continue
        try:
            validate_member(member_config(cfg, member))
        except ValueError as error:  # a ConfigError's lines, or OmegaConf refusing a value's type
            lines = str(error).splitlines()
            for line in lines[1:] if isinstance(error, ConfigError) else lines[:1]:
                message = f"train.population, {member.label()}: {line.strip()}"
                if line.strip() and message not in seen:
                    seen.add(message)
                    messages.append(message)
    return messages


def _repeated_point_errors(cfg: Any) -> list[str]:
    """A grid or list that names one setting twice trains the same run twice (same seed); random
    draws may coincide (a loss drawn from two names)."""
    if RANDOM_KEY in spec(cfg):
        return []
    first_of: dict[tuple, int] = {}
    messages = []
    for index, point in enumerate(points(cfg)):
        setting = tuple((k, point.get(k, OmegaConf.select(cfg, k))) for k in keys(cfg))
        if setting in first_of:
            spelled = ", ".join(f"{k}={v}" for k, v in setting)
            messages.append(
                f"train.population: points {first_of[setting]} and {index} are the same setting ({spelled}); "
                "to train a setting more than once, use train.num_seeds"
            )
        first_of.setdefault(setting, index)
    return messages


def _form_errors(given: Any) -> list[str]:
    usage = (
        "give a grid {optim.lr: [1e-4, 3e-4]}, a list of points [{optim.lr: 1e-4}, ...] or "
        "random draws {random: 16, optim.lr: {low: 1e-5, high: 1e-3, log: true}}"
    )
    if isinstance(given, list):
        if not all(isinstance(p, dict) and p for p in given):
            return [f"train.population={given!r}: a list of points must hold non-empty mappings; {usage}"]
        return []
    if not isinstance(given, dict):
        return [f"train.population={given!r}: {usage}"]
    if RANDOM_KEY in given:
        count = given[RANDOM_KEY]
        if isinstance(count, bool) or not isinstance(count, int) or count < 1:
            return [f"train.population.random={count!r}: must be the number of points to draw (an integer >= 1)"]
        messages = []
        if len(given) == 1:
            messages.append(
                "train.population.random: draws over no keys; name the ranges, e.g. optim.lr: {low: 1e-5, high: 1e-3}"
            )
        for key, choice in given.items():
            if key == RANDOM_KEY or (isinstance(choice, list) and choice):
                continue
            if key == LOSS_KEY:
                messages.append(
                    f"train.population.loss.name={choice!r}: a loss is drawn from a list, e.g. [hinge, lsgan]"
                )
                continue
            if (
                not isinstance(choice, dict)
                or set(choice) - {"low", "high", "log"}
                or not {"low", "high"} <= set(choice)
            ):
                messages.append(
                    f"train.population.{key}={choice!r}: give a range {{low: A, high: B, log: true}} "
                    "or a list of values"
                )
                continue
            low, high = choice["low"], choice["high"]
            if not all(_is_number(v) for v in (low, high)) or not low < high:
                messages.append(
                    f"train.population.{key}: low={low!r}, high={high!r}: must be finite numbers with low < high"
                )
            elif not isinstance(choice.get("log", False), bool):
                messages.append(f"train.population.{key}.log={choice['log']!r}: must be true or false")
            elif choice.get("log") and low <= 0:
                messages.append(f"train.population.{key}: log-uniform needs low > 0, not {low!r}")
        return messages
    return [
        f"train.population.{key}={values!r}: a grid axis is a non-empty list of values; {usage}"
        for key, values in given.items()
        if not isinstance(values, list) or not values
    ]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _value_errors(cfg: Any) -> list[str]:
    """Each point's values: numbers for the numeric keys (float32's: one that underflows to 0
    is refused), a loss's name for loss.name."""
    messages = []
    for point in points(cfg):
        for key, value in point.items():
            if key == LOSS_KEY:
                if not isinstance(value, str):
                    messages.append(
                        f"train.population.loss.name={value!r}: a loss's name, one of {', '.join(losses.names())}"
                    )
            elif not _is_number(value):
                messages.append(f"train.population.{key}={value!r}: must be a finite number")
            elif value != 0 and np.float32(value) == 0:
                messages.append(f"train.population.{key}={value!r}: is 0 in float32, the step's precision")
    return list(dict.fromkeys(messages))


def _key_errors(cfg: Any) -> list[str]:
    valid = traceable_keys(cfg)
    messages = []
    chosen_penalties = list(cfg.get("penalty") or {})
    for key in keys(cfg):
        if key in valid:
            continue
        parts = key.split(".")
        if parts == ["penalty", "weight"]:
            chosen = ", ".join(f"penalty.{name}.weight" for name in chosen_penalties)
            messages.append(
                f"train.population.{key}: a penalty's weight is penalty.<name>.weight, "
                + (f"here {chosen}" if chosen else "and no penalty is chosen: e.g. penalty=r1 and penalty.r1.weight")
            )
            continue
        if parts[0] == "penalty" and len(parts) == 3 and parts[1] not in chosen_penalties:
            messages.append(
                f"train.population.{key}: penalty={parts[1]} is not chosen; choose it (e.g. 'penalty=[{parts[1]}]')"
            )
            continue
        if key in ("seed", "train.num_seeds", "train.population") or key.startswith("train.pbt"):
            messages.append(f"train.population.{key}: not a hyper-parameter of a member; set {key} itself")
        elif OmegaConf.select(cfg, key, default="__absent__") != "__absent__" or key.split(".")[0] in cfg:
            messages.append(
                f"train.population.{key}: {STRUCTURAL_HINT.format(key=key)}; "
                f"keys a population may vary here: {', '.join(valid)}"
            )
        else:
            messages.append(
                f"train.population.{key}: not a key of this config; keys a population may vary: {', '.join(valid)}"
            )
    if LOSS_KEY in keys(cfg):
        for point in points(cfg):
            name = point.get(LOSS_KEY)
            if name is not None and str(name) not in losses.LOSSES:
                messages.append(f"train.population.loss.name={name!r}: valid values are {', '.join(losses.names())}")
    for key in keys(cfg):
        if key in valid and key != LOSS_KEY and OmegaConf.select(cfg, key) is None:
            messages.append(
                f"train.population.{key}: {key} is null here, so a member has no value to take it from; set {key}"
            )
    return list(dict.fromkeys(messages))
