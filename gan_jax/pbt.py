"""Population-based training (Jaderberg et al. 2017) over a hyper-parameter population.

Every `train.pbt.every` steps (an evaluation step) the members are ranked by
`train.pbt.objective` (an evaluation key; better is the evaluator's direction). Each member
of the bottom `fraction` (at least one) copies the whole state of a member drawn uniformly
from the top `fraction`: parameters, optimiser states, model states (spectral norm's
vectors, batch statistics), the terms' states (ADA's p, LeCam's averages), the EMA and its
values of the varied keys; it keeps its own seed (its draws and its data stream). Then it
explores: each copied value is multiplied by a factor drawn from `perturb`, or, with
`resample_probability`, drawn afresh from the population's own values (a grid's axis, a
random range, the values the list's points give it), kept within its key's valid range;
`loss.name` is drawn afresh with that probability, else kept.

It runs between compiled calls, on the state the loop holds, so nothing recompiles. Its
draws come from (seed, step): a run resumed from a checkpoint before an exploit replays it
exactly, and the lineage (who copied whom, when, with which values) is saved with every
checkpoint and written to summary.json.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any

import jax
import numpy as np

from gan_jax import population

log = logging.getLogger(__name__)

# Keys whose values lie in [0, 1] (Adam's betas, a decay, a probability): explored values stay inside.
UNIT_INTERVAL_SUFFIXES = ("b1", "b2", "ema_decay", "augment.p", "augment.target")
UNIT_MARGIN = 1e-4


def errors(cfg: Any) -> list[str]:
    """What is wrong with train.pbt for this config (the objective's evaluator is checked
    once the evaluators are built, by the loop)."""
    pbt = cfg.train.pbt
    if pbt.every is None:
        return []
    messages = []
    if not population.keys(cfg):
        messages.append(
            f"train.pbt.every={pbt.every}: PBT explores the keys a population varies, and train.population is "
            "not set; give one, e.g. 'train.population={optim.lr:[1e-4,3e-4,1e-3]}'"
        )
    elif len(population.members(cfg)) < 2:
        messages.append(
            "train.pbt.every: PBT needs two or more members; widen train.population or raise train.num_seeds"
        )
    if pbt.objective is None or not str(pbt.objective).startswith("eval."):
        messages.append(f"train.pbt.objective={pbt.objective!r}: give the evaluation key PBT ranks, e.g. eval.fid")
    if pbt.every >= cfg.train.steps:
        messages.append(
            f"train.pbt.every={pbt.every}: no round before train.steps={cfg.train.steps} (none runs at the last step)"
        )
    if pbt.every % cfg.eval.every:
        messages.append(
            f"train.pbt.every={pbt.every}: an exploit ranks the latest evaluation; make it a multiple of "
            f"eval.every={cfg.eval.every}"
        )
    return messages


@dataclass(frozen=True)
class Exploration:
    every: int
    objective: str  # the evaluation scalar's name ("fid")
    direction: str  # "min" or "max"
    fraction: float
    perturb: tuple[float, ...]
    resample_probability: float
    seed: int
    members: tuple[population.Member, ...]
    domains: dict[str, population.Draw]  # key -> a fresh draw of its value
    loss_names: tuple[str, ...]  # a loss population's losses, by index
    valid: Callable[[str, float], bool]  # (key, value) -> within the key's rule

    def due(self, step: int) -> bool:
        return step > 0 and step % self.every == 0

    def describe(self) -> dict[str, Any]:
        return {
            "every": self.every,
            "objective": f"eval.{self.objective}",
            "direction": self.direction,
            "fraction": self.fraction,
            "perturb": list(self.perturb),
            "resample_probability": self.resample_probability,
        }

    def plan(
        self,
        step: int,
        scores: Sequence[float | None],
        values: dict[str, np.ndarray],
        diverged: Collection[int] = (),
    ) -> tuple[np.ndarray, dict[str, np.ndarray], list[dict]]:
        """(source of each member's state, the members' new values, the events) for an
        exploit at `step` given each member's objective value (None: none) and the members
        that diverged. A member copies only a source that ranks strictly better: a diverged
        member ranks below every living one, a member without a value below those with one;
        ties (no information) copy nothing."""
        count = len(scores)
        cut = max(1, int(math.floor(count * self.fraction)))

        def rank(i: int) -> tuple[int, float]:
            if i in diverged:
                return (2, 0.0)
            score = scores[i]
            if score is None or not math.isfinite(score):
                return (1, 0.0)
            return (0, score if self.direction == "min" else -score)

        order = sorted(range(count), key=lambda i: (rank(i), i))  # best first
        top, bottom = order[:cut], order[count - cut :]
        rng = np.random.default_rng([self.seed, step, 0x70B7])
        sources = np.arange(count)
        new_values = {k: v.copy() for k, v in values.items()}
        events = []
        for member in sorted(bottom):
            better = [t for t in top if rank(t) < rank(member)]
            if not better:
                continue
            source = int(better[int(rng.integers(len(better)))])
            sources[member] = source
            before = {k: population.readable_among(self.loss_names, k, values[k][member]) for k in values}
            for key in values:
                new_values[key][member] = self._explore(key, values[key][source], rng)
            events.append(
                {
                    "step": step,
                    "member": member,
                    "source": source,
                    "objective": {"member": _number(scores[member]), "source": _number(scores[source])},
                    "before": before,
                    "after": {k: population.readable_among(self.loss_names, k, new_values[k][member]) for k in values},
                }
            )
        return sources, new_values, events

    def exploit(
        self, state: Any, step: int, scores: Sequence[float | None], diverged: Collection[int] = ()
    ) -> tuple[Any, list[dict]]:
        """The population state after an exploit and explore round at `step`, and its events."""
        values = {k: np.asarray(v) for k, v in state.hyperparams.items()}
        sources, new_values, events = self.plan(step, scores, values, diverged)
        copied = jax.tree.map(lambda leaf: leaf[sources], state)
        hyperparams = {k: jax.numpy.asarray(v, values[k].dtype) for k, v in new_values.items()}
        return copied.replace(rng=state.rng, hyperparams=hyperparams), events

    def _explore(self, key: str, value: Any, rng: np.random.Generator) -> Any:
        resample = rng.random() < self.resample_probability
        if key == population.LOSS_KEY:
            return self.loss_names.index(self.domains[key](rng)) if resample else value
        factor = float(self.perturb[int(rng.integers(len(self.perturb)))])
        explored = float(self.domains[key](rng)) if resample else float(value) * factor
        if key.endswith(UNIT_INTERVAL_SUFFIXES):
            explored = min(max(explored, UNIT_MARGIN if key == "augment.target" else 0.0), 1.0 - UNIT_MARGIN)
        return explored if self.valid(key, explored) else float(value)


def _number(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def from_config(cfg: Any, directions: dict[str, str], valid: Callable[[str, float], bool]) -> Exploration | None:
    """The run's PBT (None: off); `directions`: the evaluators' keys -> "min" | "max" | "none"."""
    pbt = cfg.train.pbt
    if pbt.every is None:
        if pbt.objective is not None:  # a warning, not an error: a sweep may set train.pbt.every=null,500
            log.warning(
                "train.pbt.objective=%s without train.pbt.every: no PBT rounds run, the members keep their "
                "values (set train.pbt.every to the steps between rounds)",
                pbt.objective,
            )
        return None
    key = str(pbt.objective).removeprefix("eval.")
    return Exploration(
        every=int(pbt.every),
        objective=key,
        direction=directions[key],
        fraction=float(pbt.fraction),
        perturb=tuple(float(f) for f in pbt.perturb),
        resample_probability=float(pbt.resample_probability),
        seed=int(cfg.seed),
        members=tuple(population.members(cfg)),
        domains=population.domains(cfg),
        loss_names=population.loss_names(cfg),
        valid=valid,
    )
