"""Mode-collapse metrics on Gaussian mixtures, by the protocol of VEEGAN and PacGAN.

A generated sample is high quality when its distance to the nearest mode's mean is
under 3 standard deviations of that mode; a mode is captured when at least one
high-quality sample is nearest to it. reverse_kl is KL(q || uniform), q the histogram
of high-quality samples over the modes (0 when they are spread evenly; undefined, and
reported as None, when no sample is of high quality).
"""

from __future__ import annotations

import numpy as np

from gan_jax import evaluators
from gan_jax.evaluators import EvalInputs, Measured

HIGH_QUALITY_STDS = 3.0


def mode_metrics(samples: np.ndarray, modes: np.ndarray, std: float) -> dict[str, float | None]:
    distances = np.linalg.norm(samples[:, None, :] - modes[None, :, :], axis=-1)
    nearest = distances.argmin(axis=1)
    high_quality = distances[np.arange(len(samples)), nearest] < HIGH_QUALITY_STDS * std
    counts = np.bincount(nearest[high_quality], minlength=len(modes))
    reverse_kl = None
    if counts.sum() > 0:
        q = counts / counts.sum()
        present = q > 0
        reverse_kl = float(np.sum(q[present] * np.log(q[present] * len(modes))))
    return {
        "modes_captured": int((counts > 0).sum()),
        "high_quality": float(high_quality.mean()),
        "reverse_kl": reverse_kl,
    }


def _evaluate(inputs: EvalInputs) -> Measured:
    data = inputs.dataset
    return Measured(mode_metrics(inputs.samples, data.modes, data.std))


evaluators.register(
    evaluators.Metric(
        "modes",
        applies=lambda data: getattr(data, "modes", None) is not None,  # a Gaussian mixture: modes, std
        compute=_evaluate,
        directions={"modes_captured": "max", "high_quality": "max", "reverse_kl": "min"},
    )
)
