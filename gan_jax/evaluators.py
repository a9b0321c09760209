"""Evaluators by name: what is measured on a generator's samples, and the figures drawn from it.

An `Evaluator` says which datasets it applies to (`applies(dataset)`, from the dataset's
own properties: a mixture's `modes`, a 1-D `density`) and computes scalars (logged to
metrics.jsonl and summary.json's `eval`) and, optionally, curves from an `EvalInputs`:
the dataset, the generated samples and D's probability on any points. It may also ask
for extra evaluation steps (Figure 1's panels), draw figures from the evaluations taken
there, and add keys to summary.json. Every registered evaluator that applies runs; the
loop names none of them.

    from gan_jax import evaluators
    evaluators.register(evaluators.Evaluator(
        "mean_norm", applies=lambda data: True,
        compute=lambda inputs: evaluators.Measured({"mean_norm": float(np.linalg.norm(inputs.samples.mean(0)))}),
    ))

The built-in ones are registered by the modules that define them: gan_jax/metrics/modes.py
(mixtures: modes captured, high quality, reverse KL) and gan_jax/metrics/density_1d.py
(1-D: JSD, D's distance from D*, Goodfellow et al.'s Figure 1).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gan_jax.registry import Registry


@dataclass
class Evaluation:
    step: int
    scalars: dict[str, float | None]  # None: not defined for these samples (JSON null)
    samples: np.ndarray  # [num_samples, *data shape]
    curves: dict[str, np.ndarray] | None = None  # the evaluators' curves (1-D: grid, p_data, p_g, d_x, d_star)

    def to_json(self) -> dict:
        """Everything but the samples (kept in checkpoints for the evaluators' figures)."""
        curves = {k: v.tolist() for k, v in self.curves.items()} if self.curves else None
        return {"step": self.step, "scalars": self.scalars, "curves": curves}

    @classmethod
    def from_json(cls, saved: dict) -> Evaluation:
        curves = {k: np.asarray(v) for k, v in saved["curves"].items()} if saved["curves"] else None
        return cls(saved["step"], saved["scalars"], np.zeros((0, 1)), curves)


@dataclass(frozen=True)
class EvalInputs:
    dataset: Any  # a gan_jax.data.Dataset
    samples: np.ndarray  # [num_samples, *data shape], from fixed latents
    discriminator: Callable[[np.ndarray], np.ndarray]  # x [n, *data shape] float32 -> sigmoid(D(x)) [n, 1]


@dataclass(frozen=True)
class Measured:
    scalars: dict[str, float | None]
    curves: dict[str, np.ndarray] | None = None


def _no_steps(total: int, granularity: int) -> Iterable[int]:
    return ()


@dataclass(frozen=True)
class Evaluator:
    """A named evaluation. `extra_steps(total, granularity)`: steps to evaluate besides
    every train.eval_every (multiples of granularity, so no extra program is compiled);
    the first replica's evaluations there reach `figures(evaluations, run_dir) -> {name:
    path}`; `summary(dataset)` adds keys to summary.json."""

    name: str
    applies: Callable[[Any], bool]
    compute: Callable[[EvalInputs], Measured]
    extra_steps: Callable[[int, int], Iterable[int]] = _no_steps
    figures: Callable[[Sequence[Evaluation], Path], dict[str, Path]] | None = None
    summary: Callable[[Any], dict[str, Any]] | None = None


EVALUATORS: Registry[Evaluator] = Registry("evaluator")


def register(evaluator: Evaluator, *, replace: bool = False) -> Evaluator:
    return EVALUATORS.register(evaluator.name, evaluator, replace=replace)


def applicable(dataset: Any) -> list[Evaluator]:
    """The registered evaluators that apply to `dataset`, in registration order (gan_jax.evaluate
    imports the built-in ones' modules, which register them)."""
    return [e for e in EVALUATORS if e.applies(dataset)]
