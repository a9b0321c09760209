"""Mescheder et al. 2018, "Which Training Methods for GANs do actually Converge?": Dirac-GAN.

Data: a point mass at 0. G_theta(z) = theta, D_psi(x) = psi * x. The unique equilibrium
is (theta, psi) = (0, 0). Each method trains from the same start with plain gradient
steps, simultaneous and alternating, through gan_jax's own step (configs composed as
`gan-train model=dirac dataset=dirac loss=... penalty=... train.schedule=...` would).

Writes DIR/results.json (per method and update: initial and final distance to the
equilibrium, converged) and DIR/dirac_gan.png (the gradient vector field of each
method with its two trajectories).

    python experiments/mescheder2018_dirac/reproduce.py --out DIR [--steps 10000] [--lr 0.1]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gan_jax import loop, step  # noqa: E402
from gan_jax.config import compose, validate  # noqa: E402

# method key -> overrides; the weights are the regularisation strengths of this study.
METHODS = {
    "minimax": ["loss=minimax", "penalty=none"],
    "non_saturating": ["loss=non_saturating", "penalty=none"],
    "wgan": ["loss=wgan", "loss.weight_clip=1.0", "penalty=none"],
    "wgan_gp": ["loss=wgan", "loss.weight_clip=null", "penalty=wgan_gp", "penalty.wgan_gp.weight=1.0"],
    "non_saturating+r1": ["loss=non_saturating", "penalty=r1", "penalty.r1.weight=1.0"],
    "non_saturating+r2": ["loss=non_saturating", "penalty=r2", "penalty.r2.weight=1.0"],
}
UPDATES = ("simultaneous", "alternating")
CONVERGED_BELOW = 0.05  # final distance to (0, 0), from an initial distance of sqrt(2)
CHECKPOINTS = (100, 1000, 3000, 10000)


def compose_method(overrides: list[str], update: str, lr: float):
    cfg = compose(
        [
            "experiment=none",
            "model=dirac",
            "dataset=dirac",
            "optim=sgd",
            f"optim.lr={lr}",
            f"train.schedule={update}",
            "train.batch_size=8",
            "logger=none",
            *overrides,
        ],
    )
    validate(cfg, num_devices=1)
    return cfg


def point(state: step.GANState) -> jax.Array:
    return jnp.concatenate([state.generator.params["theta"], state.discriminator.params["psi"]])


def trajectory(parts: step.GANParts, seed: int, num_steps: int) -> np.ndarray:
    """[(theta, psi)] from the start through every step: [num_steps + 1, 2]."""

    def body(state, _):
        state, _ = step.train_step(parts, 8, None, state)
        return state, point(state)

    start = step.init_state(parts, seed)
    _, points = jax.jit(lambda s: jax.lax.scan(body, s, None, length=num_steps))(start)
    return np.concatenate([np.asarray(point(start))[None], np.asarray(points)])


def vector_field(parts: step.GANParts, grid: np.ndarray) -> np.ndarray:
    """Minus each player's gradient (d theta, d psi), penalty included, at grid points.

    `parts` must use SGD with lr 1 and simultaneous updates: one step from a point is
    then exactly the negative gradient. Clipping is left out: it bounds, not steers.
    """
    parts = dataclasses.replace(parts, d_constraint=None)
    state = step.init_state(parts, 0)

    def field(theta_psi):
        start = state.replace(
            generator=state.generator.replace(params={"theta": theta_psi[:1]}),
            discriminator=state.discriminator.replace(params={"psi": theta_psi[1:]}),
        )
        moved, _ = step.train_step(parts, 8, None, start)
        return point(moved) - theta_psi

    return np.asarray(jax.jit(jax.vmap(field))(jnp.asarray(grid, jnp.float32)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=10000)
    parser.add_argument("--lr", type=float, default=0.1)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    results, paths = {}, {}
    for method, overrides in METHODS.items():
        results[method] = {}
        for update in UPDATES:
            parts = loop.build_parts(compose_method(overrides, update, args.lr))
            path = trajectory(parts, seed=0, num_steps=args.steps)
            paths[method, update] = path
            distances = np.linalg.norm(path, axis=1)
            below = np.flatnonzero(distances < CONVERGED_BELOW)
            results[method][update] = {
                "initial_distance": float(distances[0]),
                "final_distance": float(distances[-1]),
                "min_distance": float(distances.min()),
                "distance_at": {str(s): float(distances[s]) for s in CHECKPOINTS if s <= args.steps},
                "first_step_below": int(below[0]) if below.size else None,
                "converged": bool(np.isfinite(distances[-1]) and distances[-1] < CONVERGED_BELOW),
            }
        # The issue's top-level keys: the alternating run (Algorithm 1's schedule).
        results[method].update(results[method]["alternating"])

    setting = {
        "steps": args.steps,
        "optimizer": "sgd",
        "lr": args.lr,
        "start": [1.0, 1.0],
        "converged_below": CONVERGED_BELOW,
        "methods": METHODS,
    }
    (args.out / "results.json").write_text(json.dumps({"setting": setting, "results": results}, indent=2))
    plot(paths, args)

    print(f"Dirac-GAN, {args.steps} steps of SGD(lr={args.lr}) from (theta, psi) = (1, 1)")
    print(
        f"{'method':20s} {'update':13s} {'initial':>8s} {'@1000':>8s} {'final':>9s} "
        f"{'first < ' + str(CONVERGED_BELOW):>12s}  converged"
    )
    for method, by_update in results.items():
        for update in UPDATES:
            r = by_update[update]
            print(
                f"{method:20s} {update:13s} {r['initial_distance']:8.3f} "
                f"{r['distance_at'].get('1000', float('nan')):8.3f} {r['final_distance']:9.3f} "
                f"{str(r['first_step_below']):>12s}  {r['converged']}"
            )


def plot(paths: dict, args) -> None:
    fig, axes = plt.subplots(1, len(METHODS), figsize=(3.3 * len(METHODS), 3.4), sharey=True)
    ticks = np.linspace(-2, 2, 17)
    grid = np.stack(np.meshgrid(ticks, ticks, indexing="xy"), -1).reshape(-1, 2)
    for ax, (method, overrides) in zip(axes, METHODS.items(), strict=True):
        parts = loop.build_parts(compose_method(overrides, "simultaneous", 1.0))
        field = vector_field(parts, grid)
        ax.quiver(grid[:, 0], grid[:, 1], field[:, 0], field[:, 1], color="0.6", angles="xy")
        for update, colour in zip(UPDATES, ("tab:red", "tab:blue"), strict=True):
            path = np.clip(paths[method, update], -2.2, 2.2)
            ax.plot(path[:, 0], path[:, 1], color=colour, lw=1, label=update)
        ax.plot([1], [1], "ko", ms=4)
        ax.plot([0], [0], "k*", ms=8)
        ax.set_xlim(-2.2, 2.2)
        ax.set_ylim(-2.2, 2.2)
        ax.set_title(method, fontsize=9)
        ax.set_xlabel("theta")
    axes[0].set_ylabel("psi")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    fig.savefig(args.out / "dirac_gan.png", dpi=110)
    plt.close(fig)


if __name__ == "__main__":
    main()
