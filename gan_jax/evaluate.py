"""Evaluation of a training state: generated samples, their moments, and the evaluators'
measures (gan_jax/evaluators.py: every registered evaluator that applies to the dataset)."""

from __future__ import annotations

from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gan_jax import evaluators, step
from gan_jax.evaluators import EvalInputs, Evaluation
from gan_jax.metrics import density_1d, modes  # noqa: F401  (the built-in evaluators register on import)

__all__ = ["Evaluation", "Evaluator"]


class Evaluator:
    """Compiled once; called on an unreplicated state at chosen steps."""

    def __init__(self, parts: step.GANParts, num_samples: int):
        self.parts = parts
        self.num_samples = num_samples
        self.active = evaluators.applicable(parts.data)
        self._generate = jax.jit(partial(step.generate, parts), static_argnums=2)
        self._d_prob = jax.jit(
            lambda player, x: jax.nn.sigmoid(step.apply_model(parts.models.discriminator, player, x)[0])
        )

    def __call__(self, state: step.GANState) -> Evaluation:
        fake = np.asarray(self._generate(step.sampling_generator(state), state.rng, self.num_samples))
        scalars: dict[str, float | None] = dict(_moment_scalars(fake))
        curves: dict[str, np.ndarray] | None = None
        inputs = EvalInputs(self.parts.data, fake, lambda x: np.asarray(self._d_prob(state.discriminator, x)))
        for evaluator in self.active:
            measured = evaluator.compute(inputs)
            scalars |= measured.scalars
            if measured.curves is not None:
                curves = {**(curves or {}), **measured.curves}
        return Evaluation(int(state.step), scalars, fake, curves)

    def fixed_batch(self, state: step.GANState, count: int = 64) -> np.ndarray:
        """`count` samples from the same latents at every call: the sample grids."""
        return np.asarray(self._generate(step.sampling_generator(state), state.rng, count))

    def extra_steps(self, total: int, granularity: int) -> frozenset[int]:
        """The steps the evaluators ask for besides every train.eval_every (Figure 1's panels)."""
        return frozenset(s for e in self.active for s in e.extra_steps(total, granularity))

    def figures(self, panels: Sequence[Evaluation], run_dir: Path) -> dict[str, Path]:
        """The evaluators' figures, from the first replica's evaluations at their extra steps."""
        drawn: dict[str, Path] = {}
        for evaluator in self.active:
            if evaluator.figures is not None:
                drawn |= evaluator.figures(panels, run_dir)
        return drawn

    def summary(self) -> dict[str, Any]:
        """What the evaluators add to summary.json (the 1-D one: the data's mean and std)."""
        added: dict[str, Any] = {}
        for evaluator in self.active:
            if evaluator.summary is not None:
                added |= evaluator.summary(self.parts.data)
        return added


def _moment_scalars(samples: np.ndarray) -> dict[str, float]:
    if samples.ndim > 2 or samples.shape[1] == 1:  # 1-D, or images: over all pixels
        return {"sample_mean": float(samples.mean()), "sample_std": float(samples.std())}
    return {f"sample_mean_{i}": float(v) for i, v in enumerate(samples.mean(0))} | {
        f"sample_std_{i}": float(v) for i, v in enumerate(samples.std(0))
    }
