"""Evaluation of a training state: generated samples, their moments, and the measures of the
metrics the config selects (gan_jax/evaluators.py; `eval.metrics`, null: every one that
applies to the dataset)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import jax
import numpy as np

from gan_jax import evaluators, step
from gan_jax.errors import ConfigError, TrainingDiverged
from gan_jax.evaluators import EvalInputs, Evaluation
from gan_jax.metrics import feature_space
from gan_jax.metrics.image import is_image_data

__all__ = ["Evaluation", "StateEvaluator", "num_samples"]

log = logging.getLogger(__name__)

DEFAULT_SAMPLES = {"images": 10_000, "vectors": 2_500}


def num_samples(eval_cfg: Any, dataset: Any) -> int:
    """eval.num_samples; null: 10,000 for images (the FID protocol), 2,500 for vectors."""
    if eval_cfg.num_samples is not None:
        return int(eval_cfg.num_samples)
    return DEFAULT_SAMPLES["images" if is_image_data(dataset) else "vectors"]


def select(
    requested: Sequence[str] | None, dataset: Any, eval_cfg: Any, labelled: bool = False
) -> tuple[list[evaluators.Metric], str | None]:
    """(the metrics to run, the feature network's name or None). `requested` None: every
    metric that applies (image metrics when a feature network is available; class metrics
    when the samples are `labelled`). A name that does not exist or does not apply to this
    dataset and model is a ConfigError listing those that do."""
    registry = evaluators.registered()
    network = None
    if is_image_data(dataset):
        network = feature_space.choose_network(eval_cfg.features, dataset.name, tuple(dataset.shape), eval_cfg)
    if requested is None:
        chosen = [
            e
            for e in evaluators.applicable(dataset, with_features=network is not None, labelled=labelled)
            if e.by_default
        ]
        if network is None and is_image_data(dataset):
            log.warning(
                "%s: no feature network for image metrics (eval.features=auto found neither a classifier "
                "for this dataset nor Inception weights: set eval.inception_weights or $%s)",
                dataset.name,
                "GAN_JAX_INCEPTION_WEIGHTS",
            )
        return chosen, network
    valid = [e.name for e in evaluators.applicable(dataset, labelled=labelled)]
    unknown = [name for name in requested if name not in registry]
    not_applicable = [name for name in requested if name in registry and name not in valid]
    if unknown or not_applicable:
        problems = [f"{name!r} is not a metric" for name in unknown] + [
            f"{name!r} does not apply to {dataset.name}"
            + (" with an unconditional model" if registry.get(name).needs_labels and not labelled else "")
            for name in not_applicable
        ]
        raise ConfigError(
            f"eval.metrics={list(requested)}: {'; '.join(problems)}; valid values for {dataset.name} are "
            f"{', '.join(valid) or 'none (set eval.metrics=[])'}"
        )
    chosen = [registry.get(name) for name in requested]
    if network is None and any(e.needs_features for e in chosen):
        from gan_jax.metrics.inception import missing_weights_message

        raise ConfigError(
            f"eval.metrics={list(requested)} needs a feature network, and eval.features=auto has none for "
            f"{dataset.name}: {missing_weights_message(None)}"
        )
    return chosen, network


class StateEvaluator:
    """A run's evaluation: a state's samples, their features and the selected metrics.

    Compiled once; called on an unreplicated state at chosen steps. Building it loads the
    feature network and the reference features when an image metric is selected, so a missing
    weights file or dataset split fails here, before training."""

    def __init__(
        self,
        parts: step.GANParts,
        eval_cfg: Any,
        dataset_cfg: Any,
        *,
        metrics: Sequence[str] | None = None,
        count: int | None = None,
        progress: bool = False,
    ):
        self.parts = parts
        self.num_samples = count or num_samples(eval_cfg, parts.data)
        requested = list(metrics) if metrics is not None else eval_cfg.metrics
        self.active, network = select(
            None if requested is None else list(requested), parts.data, eval_cfg, labelled=parts.models.conditional
        )
        self.features = None
        if network is not None and any(e.needs_features for e in self.active):
            self.features = feature_space.build(parts.data, dataset_cfg, eval_cfg, network, progress)
            for note in self.features.provenance(self.num_samples)["notes"]:
                log.warning("image metrics: %s (also recorded in summary.json's eval_provenance)", note)
        self.batch_size = eval_cfg.batch_size
        self._generate = jax.jit(partial(step.generate, parts), static_argnums=3)
        self._d_prob = jax.jit(
            lambda player, x: jax.nn.sigmoid(
                parts.models.split_d_output(step.apply_model(parts.models.discriminator, player, x)[0])[0]
            )
        )
        self._class_rows = jax.jit(partial(step.generate_class_rows, parts), static_argnums=2)

    def samples(self, state: step.GANState, count: int) -> np.ndarray:
        """`count` samples from fixed latents (example i from latent i, whatever the chunking),
        generated eval.batch_size at a time."""
        generator = step.sampling_generator(state)
        chunks = [
            np.asarray(self._generate(generator, state.rng, start, min(self.batch_size, count)))
            for start in range(0, count, self.batch_size)
        ]
        return np.concatenate(chunks)[:count]

    def __call__(self, state: step.GANState) -> Evaluation:
        fake = self.samples(state, self.num_samples)
        at = int(state.step)
        if self.features is not None and not np.isfinite(fake).all():
            bad = int((~np.isfinite(fake)).reshape(len(fake), -1).any(1).sum())
            raise TrainingDiverged(
                f"evaluation at step {at}: {bad} of {len(fake)} generated samples hold NaN or inf, so no "
                "image metric can be computed. Everything written so far is kept in the run directory; "
                "try a smaller optim.lr or another loss."
            )
        scalars, curves = self.measure(
            fake, lambda x: np.asarray(self._d_prob(state.discriminator, x)), self.sample_labels(len(fake))
        )
        return Evaluation(at, scalars, fake, curves)

    def sample_labels(self, count: int) -> np.ndarray | None:
        """The classes of the first `count` evaluation samples (None: an unconditional model)."""
        labels = step.evaluation_labels(self.parts, 0, count)
        return None if labels is None else np.asarray(labels)

    def measure(
        self,
        samples: np.ndarray,
        discriminator: Callable[[np.ndarray], np.ndarray] | None = None,
        labels: np.ndarray | None = None,
    ) -> tuple[dict[str, float | None], dict[str, np.ndarray] | None]:
        """The selected metrics' scalars and curves on `samples` (without a discriminator:
        only those that do not ask D, e.g. the image metrics on real images; without
        `labels`, the samples' classes, none of the class metrics)."""
        scalars: dict[str, float | None] = dict(_moment_scalars(samples))
        curves: dict[str, np.ndarray] | None = None
        inputs = EvalInputs(self.parts.data, samples, discriminator or _no_discriminator, self.features, labels)
        for metric in self.active:
            if (discriminator is None and not metric.needs_features) or (labels is None and metric.needs_labels):
                continue
            measured = metric.compute(inputs)
            scalars |= measured.scalars
            if measured.curves is not None:
                curves = {**(curves or {}), **measured.curves}
        return scalars, curves

    def fixed_batch(self, state: step.GANState, count: int = 64, columns: int = 8) -> np.ndarray:
        """`count` samples from the same latents at every call: the sample grids. A
        conditional model's: `columns` samples of each class, class by class (a row each)."""
        if self.parts.models.conditional:
            return np.asarray(self._class_rows(step.sampling_generator(state), state.rng, columns))
        return self.samples(state, count)

    def scalar_keys(self) -> list[str]:
        """The scalars every evaluation returns, known without evaluating."""
        return _moment_keys(self.parts.data.shape) + [k for e in self.active for k in e.directions]

    def directions(self) -> dict[str, str]:
        return {k: v for e in self.active for k, v in e.directions.items()}

    def extra_steps(self, total: int, granularity: int) -> frozenset[int]:
        """The steps the metrics ask for besides every eval.every (Figure 1's panels)."""
        return frozenset(s for e in self.active for s in e.extra_steps(total, granularity))

    def figures(self, panels: Sequence[Evaluation], run_dir: Path) -> dict[str, Path]:
        """The metrics' figures, from the first replica's evaluations at their extra steps."""
        drawn: dict[str, Path] = {}
        for metric in self.active:
            if metric.figures is not None:
                drawn |= metric.figures(panels, run_dir)
        return drawn

    def summary(self) -> dict[str, Any]:
        """What the metrics add to summary.json (the 1-D one: the data's mean and std; image
        metrics: `eval_provenance`, how the numbers were obtained)."""
        added: dict[str, Any] = {}
        for metric in self.active:
            if metric.summary is not None:
                added |= metric.summary(self.parts.data)
        data_provenance = getattr(self.parts.data, "provenance", None)  # what the training images are
        if data_provenance is not None:
            added["data_provenance"] = data_provenance
        if self.features is not None:
            added["eval_provenance"] = {
                "metrics": [e.name for e in self.active if e.needs_features],
                **self.features.provenance(self.num_samples),
            }
        return added


def _no_discriminator(x: np.ndarray) -> np.ndarray:
    raise ValueError("this evaluation has no discriminator")


def _moment_keys(shape: Sequence[int]) -> list[str]:
    return list(_moment_scalars(np.zeros((2, *shape))))


def _moment_scalars(samples: np.ndarray) -> dict[str, float]:
    if samples.ndim > 2 or samples.shape[1] == 1:  # 1-D, or images: over all pixels
        return {"sample_mean": float(samples.mean()), "sample_std": float(samples.std())}
    return {f"sample_mean_{i}": float(v) for i, v in enumerate(samples.mean(0))} | {
        f"sample_std_{i}": float(v) for i, v in enumerate(samples.std(0))
    }
