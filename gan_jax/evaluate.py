"""Evaluation of a training state: generated samples, moments and, in 1-D, the theory."""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

import jax
import numpy as np

from gan_jax import step
from gan_jax.data.toy import ToyDataset
from gan_jax.metrics import density_1d, modes


@dataclass
class Evaluation:
    step: int
    scalars: dict[str, float | None]  # None: not defined for these samples (JSON null)
    samples: np.ndarray  # [num_samples, *data shape]
    curves: dict[str, np.ndarray] | None = None  # 1-D: grid, p_data, p_g, d_x, d_star

    def to_json(self) -> dict:
        """Everything but the samples (kept in checkpoints for Figure 1's panels)."""
        curves = {k: v.tolist() for k, v in self.curves.items()} if self.curves else None
        return {"step": self.step, "scalars": self.scalars, "curves": curves}

    @classmethod
    def from_json(cls, saved: dict) -> Evaluation:
        curves = {k: np.asarray(v) for k, v in saved["curves"].items()} if saved["curves"] else None
        return cls(saved["step"], saved["scalars"], np.zeros((0, 1)), curves)


class Evaluator:
    """Compiled once; called on an unreplicated state at chosen steps."""

    def __init__(self, parts: step.GANParts, num_samples: int):
        self.parts = parts
        self.num_samples = num_samples
        self._generate = jax.jit(partial(step.generate, parts), static_argnums=2)
        self._d_prob = jax.jit(
            lambda player, x: jax.nn.sigmoid(step.apply_model(parts.models.discriminator, player, x)[0])
        )

    def __call__(self, state: step.GANState) -> Evaluation:
        fake = np.asarray(self._generate(step.sampling_generator(state), state.rng, self.num_samples))
        scalars: dict[str, float | None] = dict(_moment_scalars(fake))
        data = self.parts.data
        if isinstance(data, ToyDataset) and data.modes is not None:
            scalars |= modes.mode_metrics(fake, data.modes, data.std)
        curves = None
        if isinstance(data, ToyDataset) and data.density is not None:
            curves = self._theory_1d(state, fake)
            scalars["jsd"] = density_1d.js_divergence(curves["p_data"], curves["p_g"], curves["grid"])
            scalars["d_optimality_gap"] = density_1d.discriminator_gap(
                curves["d_x"], curves["d_star"], curves["p_data"], curves["p_g"], curves["grid"]
            )
        return Evaluation(int(state.step), scalars, fake, curves)

    def fixed_batch(self, state: step.GANState, count: int = 64) -> np.ndarray:
        """`count` samples from the same latents at every call: the sample grids."""
        return np.asarray(self._generate(step.sampling_generator(state), state.rng, count))

    def _theory_1d(self, state: step.GANState, fake: np.ndarray) -> dict[str, np.ndarray]:
        data = self.parts.data
        assert isinstance(data, ToyDataset) and data.mean is not None and data.density is not None
        grid = density_1d.grid_1d(data.std, data.mean, fake)
        p_data = data.density(grid)
        p_g = density_1d.kde_density(fake, grid)
        d_x = np.asarray(self._d_prob(state.discriminator, grid[:, None].astype(np.float32)))[:, 0]
        return {
            "grid": grid,
            "p_data": p_data,
            "p_g": p_g,
            "d_x": d_x,
            "d_star": density_1d.optimal_discriminator(p_data, p_g),
        }


def _moment_scalars(samples: np.ndarray) -> dict[str, float]:
    if samples.ndim > 2 or samples.shape[1] == 1:  # 1-D, or images: over all pixels
        return {"sample_mean": float(samples.mean()), "sample_std": float(samples.std())}
    return {f"sample_mean_{i}": float(v) for i, v in enumerate(samples.mean(0))} | {
        f"sample_std_{i}": float(v) for i, v in enumerate(samples.std(0))
    }
