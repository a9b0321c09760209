"""Metrics by name: what is measured on a generator's samples, and the figures drawn from it.

A `Metric` says which datasets it applies to (`applies(dataset)`, from the dataset's
own properties: a mixture's `modes`, a 1-D `density`, an image shape) and computes
scalars (logged to metrics.jsonl and summary.json's `eval`) and, optionally, curves from
an `EvalInputs`: the dataset, the generated samples, D's probability on any points and,
for image metrics, a feature space (a feature network and the real data's reference
features). It declares its scalars' keys with their direction (`directions`: "min" when
lower is better, "max" when higher is, "none"), which the Optuna objective check and
gan-compare read. It may also ask for extra evaluation steps (Figure 1's panels), draw
figures from the evaluations taken there, and add keys to summary.json.

A run evaluates the names in `eval.metrics`, or, when that is null, every registered
metric that applies to its dataset (image metrics: when a feature network is
available for it); the loop names none of them.

    from gan_jax import evaluators
    evaluators.register(evaluators.Metric(
        "mean_norm", applies=lambda data: True, directions={"mean_norm": "none"},
        compute=lambda inputs: evaluators.Measured({"mean_norm": float(np.linalg.norm(inputs.samples.mean(0)))}),
    ))

The built-in ones are registered by the modules that define them (`BUILTIN_MODULES`):
gan_jax/metrics/modes.py (mixtures: modes captured, high quality, reverse KL),
gan_jax/metrics/density_1d.py (1-D: JSD, D's distance from D*, Goodfellow et al.'s
Figure 1) and gan_jax/metrics/image.py (FID, KID, precision/recall, density/coverage,
Inception score).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gan_jax.registry import Registry


@dataclass
class Evaluation:
    step: int
    scalars: dict[str, float | None]  # None: not defined for these samples (JSON null)
    samples: np.ndarray  # [num_samples, *data shape]
    curves: dict[str, np.ndarray] | None = None  # the metrics' curves (1-D: grid, p_data, p_g, d_x, d_star)

    def to_json(self) -> dict:
        """Everything but the samples (kept in checkpoints for the metrics' figures)."""
        curves = {k: v.tolist() for k, v in self.curves.items()} if self.curves else None
        return {"step": self.step, "scalars": self.scalars, "curves": curves}

    @classmethod
    def from_json(cls, saved: dict) -> Evaluation:
        curves = {k: np.asarray(v) for k, v in saved["curves"].items()} if saved["curves"] else None
        return cls(saved["step"], saved["scalars"], np.zeros((0, 1)), curves)


@dataclass
class EvalInputs:
    dataset: Any  # a gan_jax.data.Dataset
    samples: np.ndarray  # [num_samples, *data shape], from fixed latents
    discriminator: Callable[[np.ndarray], np.ndarray]  # x [n, *data shape] float32 -> sigmoid(D(x)) [n, 1]
    features: Any = None  # a gan_jax.metrics.feature_space.FeatureSpace, for metrics with needs_features
    labels: np.ndarray | None = None  # the samples' classes (a class-conditional generator), for needs_labels
    _fake: tuple[np.ndarray, np.ndarray | None] | None = field(default=None, repr=False)

    def fake_features(self) -> tuple[np.ndarray, np.ndarray | None]:
        """(features, logits or None: DINOv2 has none) of the samples in the feature space;
        extracted once per evaluation."""
        if self._fake is None:
            self._fake = self.features.extract(self.samples)
        return self._fake


@dataclass(frozen=True)
class Measured:
    scalars: dict[str, float | None]
    curves: dict[str, np.ndarray] | None = None


def _no_steps(total: int, granularity: int) -> Iterable[int]:
    return ()


@dataclass(frozen=True)
class Metric:
    """A named evaluation; a run's `gan_jax.evaluate.StateEvaluator` computes those it selects.

    `directions`: each scalar key it produces -> "min", "max" or "none"; `needs_features`:
    it reads `inputs.fake_features()` and `inputs.features.reference` (image metrics);
    `needs_labels`: it reads the samples' classes, `inputs.labels` (a class-conditional
    generator's). `extra_steps(total, granularity)`: steps to evaluate besides every
    eval.every (multiples of granularity, so no extra program is compiled); the first
    replica's evaluations there reach `figures(evaluations, run_dir) -> {name: path}`;
    `summary(dataset)` adds keys to summary.json; a metric not `by_default` runs only when
    eval.metrics names it."""

    name: str
    applies: Callable[[Any], bool]
    compute: Callable[[EvalInputs], Measured]
    directions: Mapping[str, str]
    needs_features: bool = False
    needs_labels: bool = False
    extra_steps: Callable[[int, int], Iterable[int]] = _no_steps
    figures: Callable[[Sequence[Evaluation], Path], dict[str, Path]] | None = None
    summary: Callable[[Any], dict[str, Any]] | None = None
    by_default: bool = True  # False: run only when eval.metrics names it (a costly one: fid_inf, cas)


EVALUATORS: Registry[Metric] = Registry("evaluator")


BUILTIN_MODULES = (
    "gan_jax.metrics.density_1d",
    "gan_jax.metrics.modes",
    "gan_jax.metrics.image",
    "gan_jax.metrics.conditional",
    "gan_jax.metrics.cas",
)
DIRECTIONS = ("min", "max", "none")


def register(metric: Metric, *, replace: bool = False) -> Metric:
    if bad := {k: v for k, v in metric.directions.items() if v not in DIRECTIONS}:
        raise ValueError(f"evaluator {metric.name!r}: directions {bad} must be one of {', '.join(DIRECTIONS)}")
    return EVALUATORS.register(metric.name, metric, replace=replace)


def registered() -> Registry[Metric]:
    """Every metric, the built-in ones included (their modules register on import)."""
    for module in BUILTIN_MODULES:
        importlib.import_module(module)
    return EVALUATORS


def applicable(dataset: Any, with_features: bool = True, labelled: bool = False) -> list[Metric]:
    """The registered metrics that apply to `dataset`, in registration order; those that
    need a feature space only `with_features`, those that need the samples' classes only
    when they are `labelled` (a class-conditional generator)."""
    return [
        e
        for e in registered()
        if e.applies(dataset) and (with_features or not e.needs_features) and (labelled or not e.needs_labels)
    ]


def direction(key: str) -> str | None:
    """ "min", "max" or "none" for a scalar key a metric declares ("fid", or "eval.fid"); None when unknown."""
    bare = key.removeprefix("eval.")
    for metric in registered():
        if bare in metric.directions:
            return metric.directions[bare]
    return None
