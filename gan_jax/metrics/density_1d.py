"""The theory of Goodfellow et al. 2014 made visible on one-dimensional data.

For fixed G the optimal discriminator is D*(x) = p_data(x) / (p_data(x) + p_g(x)) and
V(D*, G) = -log 4 + 2 JSD(p_data || p_g). p_data is known in closed form; p_g is a
Gaussian kernel density estimate of generated samples (Scott's bandwidth).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import stats

from gan_jax import evaluators
from gan_jax.evaluators import EvalInputs, Evaluation, Measured


def grid_1d(real_std: float, real_mean: float, fake: np.ndarray, num_points: int = 512) -> np.ndarray:
    """A grid covering the data (+-5 std) and the bulk of the generated samples."""
    low = min(real_mean - 5 * real_std, np.quantile(fake, 0.001))
    high = max(real_mean + 5 * real_std, np.quantile(fake, 0.999))
    return np.linspace(low, high, num_points)


def kde_density(samples: np.ndarray, grid: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples, np.float64).ravel()
    if np.std(samples) < 1e-8:  # a collapsed generator: a point mass, KDE is singular
        width = grid[1] - grid[0]
        return np.where(np.abs(grid - samples.mean()) < width / 2, 1.0 / width, 0.0)
    return stats.gaussian_kde(samples)(grid)


def optimal_discriminator(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    total = p_data + p_g
    return np.where(total > 1e-12, p_data / np.maximum(total, 1e-300), 0.5)


def js_divergence(p: np.ndarray, q: np.ndarray, grid: np.ndarray) -> float:
    """JSD(p || q) in nats by the trapezoid rule, in [0, log 2]."""
    m = (p + q) / 2

    def kl_to_m(a):
        ratio = np.where(a > 0, a / np.maximum(m, 1e-300), 1.0)
        return np.trapezoid(np.where(a > 0, a * np.log(ratio), 0.0), grid)

    return float(np.clip(0.5 * kl_to_m(p) + 0.5 * kl_to_m(q), 0.0, np.log(2)))


def discriminator_gap(
    d_x: np.ndarray, d_star: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, grid: np.ndarray
) -> float:
    """E_{x ~ (p_data + p_g)/2} |D(x) - D*(x)|: how far D is from optimal where it matters."""
    return float(np.trapezoid(np.abs(d_x - d_star) * (p_data + p_g) / 2, grid))


# --- the 1-D metric: these quantities every evaluation, Figure 1 at its panels -------------


def figure_steps(total: int, granularity: int) -> list[int]:
    """The panels of Figure 1: at the start, early, a quarter of the way, and at the end.

    Rounded to multiples of `granularity` (steps_per_call) so no extra program is compiled.
    """

    def round_down(s: int) -> int:
        return max(granularity, s // granularity * granularity)

    return sorted({0, round_down(total // 20), round_down(total // 4), total})


def theory_curves(inputs: EvalInputs) -> dict[str, np.ndarray]:
    """grid, p_data, p_g (KDE of the samples), D(x) and D*(x) on the grid."""
    data, fake = inputs.dataset, inputs.samples
    grid = grid_1d(data.std, data.mean, fake)
    p_data = data.density(grid)
    p_g = kde_density(fake, grid)
    d_x = inputs.discriminator(grid[:, None].astype(np.float32))[:, 0]
    return {"grid": grid, "p_data": p_data, "p_g": p_g, "d_x": d_x, "d_star": optimal_discriminator(p_data, p_g)}


def _evaluate(inputs: EvalInputs) -> Measured:
    curves = theory_curves(inputs)
    scalars: dict[str, float | None] = {
        "jsd": js_divergence(curves["p_data"], curves["p_g"], curves["grid"]),
        "d_optimality_gap": discriminator_gap(
            curves["d_x"], curves["d_star"], curves["p_data"], curves["p_g"], curves["grid"]
        ),
    }
    return Measured(scalars, curves)


def _figure1(panels: Sequence[Evaluation], run_dir: Path) -> dict[str, Path]:
    from gan_jax import plots

    return {"figure1": plots.goodfellow_figure1(panels, run_dir / "figure1.png")}


evaluators.register(
    evaluators.Metric(
        "theory_1d",
        applies=lambda data: getattr(data, "density", None) is not None,  # 1-D with p_data: density, mean, std
        compute=_evaluate,
        directions={"jsd": "min", "d_optimality_gap": "min"},
        extra_steps=figure_steps,
        figures=_figure1,
        summary=lambda data: {"data": {"mean": data.mean, "std": data.std}},
    )
)
