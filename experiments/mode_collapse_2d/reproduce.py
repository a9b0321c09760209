"""Mode collapse on the 2-D ring and grid mixtures, by the VEEGAN / PacGAN protocol.

Each (dataset, method) is one gan_jax population run: `train.num_seeds` independent
GANs (seeds 0 .. N-1) trained in one compiled program, evaluated on 2,500 samples each
(modes captured, % high-quality samples, reverse KL; gan_jax/metrics/modes.py).
All methods share the MLPs (3 x 128 ReLU, z ~ N(0, I_2); `large_g`: G of 4 x 400, `pack4`:
D judges 4 examples at once), batch size, steps and optimiser (Adam 1e-3, betas 0.5 / 0.999);
WGAN-GP also takes its paper's 5 critic steps.

`--methods a,b` runs only those and merges them into an existing DIR/results.json;
`--datasets` likewise. `--lr-decay-start N` holds Adam's lr until step N, then decays it
linearly to 0 at the last step (optim.lr_decay=linear), for every method.

Writes DIR/results.json (per dataset and method: each seed's metrics, mean and std),
DIR/table.md (ours beside the VEEGAN and PacGAN rows) and DIR/samples_<dataset>.png
(the first seed's samples per method).

    python experiments/mode_collapse_2d/reproduce.py --out DIR [--seeds 10] [--steps 2500] [--methods a,b]
        [--datasets ring_2d,grid_2d] [--lr-decay-start N]
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gan_jax import data, loop  # noqa: E402
from gan_jax.config import compose  # noqa: E402
from gan_jax.rundir import write_atomic  # noqa: E402

DATASETS = ("ring_2d", "grid_2d")
METHODS = {
    "minimax": ["loss=minimax"],
    "non_saturating": ["loss=non_saturating"],
    "hinge": ["loss=hinge"],
    "wgan_gp": [
        "loss=wgan",
        "loss.weight_clip=null",
        "penalty=wgan_gp",
        "penalty.wgan_gp.weight=1.0",
        "train.d_steps=5",
    ],
    "non_saturating+r1": ["loss=non_saturating", "penalty=r1", "penalty.r1.weight=1.0"],
    "non_saturating+spectral_norm": ["loss=non_saturating", "model.discriminator.spectral_norm=true"],
    # An exponential moving average of G's parameters (samples come from it).
    "non_saturating+ema": ["loss=non_saturating", "train.ema_decay=0.999", "train.ema_start=500"],
    "hinge+ema": ["loss=hinge", "train.ema_decay=0.999", "train.ema_start=500"],
    # PacGAN4's discriminator: 4 examples a decision, the batch of 256 examples as 64 packs.
    "hinge+pack4": ["loss=hinge", "model.discriminator.pack=4"],
    # A generator of PacGAN's size (4 x 400 units; ReLU, no batch norm): a generator's
    # steepness bounds how little of its mass falls between modes.
    "hinge+large_g": ["loss=hinge", "model.generator.width=400", "model.generator.depth=4"],
    "wgan_gp+large_g": [
        "loss=wgan",
        "loss.weight_clip=null",
        "penalty=wgan_gp",
        "penalty.wgan_gp.weight=1.0",
        "train.d_steps=5",
        "model.generator.width=400",
        "model.generator.depth=4",
    ],
}
METRICS = ("modes_captured", "high_quality", "reverse_kl")
# Published rows (modes captured, % high-quality, reverse KL), ../../README's references.
PUBLISHED = {
    "ring_2d": [
        ("GAN (VEEGAN paper)", 1, 99.3, None),
        ("Unrolled GAN (VEEGAN paper)", 7.6, 35.6, None),
        ("VEEGAN", 8, 52.9, None),
        ("GAN (PacGAN paper)", 6.3, 98.2, 0.45),
        ("PacGAN2", 7.9, 95.6, 0.07),
    ],
    "grid_2d": [
        ("GAN (VEEGAN paper)", 3.3, 0.5, None),
        ("Unrolled GAN (VEEGAN paper)", 23.6, 16, None),
        ("VEEGAN", 24.6, 40, None),
        ("GAN (PacGAN paper)", 17.3, 94.8, 0.70),
        ("PacGAN4", 24.8, 93.6, 0.04),
    ],
}


def compose_run(dataset: str, method: list[str], seeds: int, steps: int, lr_decay_start: int | None = None):
    return compose(
        [
            "experiment=none",
            f"dataset={dataset}",
            "model=mlp",
            "model.latent_dim=2",
            "optim=adam",
            "optim.lr=1e-3",
            "logger=none",
            "train.progress_bar=false",
            f"train.steps={steps}",
            "train.batch_size=256",
            "train.steps_per_call=100",
            f"eval.every={steps}",
            f"train.checkpoint_every={steps}",
            f"train.sample_every={steps}",
            "train.log_every=100",
            "eval.num_samples=2500",
            f"train.num_seeds={seeds}",
            *([] if lr_decay_start is None else ["optim.lr_decay=linear", f"optim.lr_decay_start={lr_decay_start}"]),
            *method,
        ],
    )


def run_method(dataset: str, name: str, settings: dict, out: Path) -> dict:
    run_dir = out / "runs" / f"{dataset}_{name}"
    start = time.perf_counter()
    summary = loop.run(compose_run(dataset, METHODS[name], **settings), run_dir)
    per_seed = [{k: r.get("eval", {}).get(k) for k in METRICS} for r in summary["replicas"]]
    result = {
        "seconds": round(time.perf_counter() - start, 1),
        "train_seconds": summary["train_seconds"],  # over every attempt of a resumed run
        "status": summary["status"],
        "per_seed": per_seed,
    }
    for key in METRICS:
        values = [s[key] for s in per_seed if s[key] is not None]
        result[key] = {
            "mean": float(np.mean(values)) if values else None,
            "std": float(np.std(values)) if values else None,
            "defined_for": len(values),
        }
    print(
        f"{dataset:8s} {name:30s} modes {result['modes_captured']['mean']:5.2f}  "
        f"high quality {100 * result['high_quality']['mean']:5.1f}%  ({result['seconds']} s)",
        flush=True,
    )
    return result


def table(results: dict, seeds: int, steps: int, lr_decay_start: int | None) -> str:
    decay = f", lr decayed linearly to 0 from step {lr_decay_start}" if lr_decay_start is not None else ""
    lines = [
        f"Ours: mean +- std over {seeds} seeds, {steps} steps{decay}; PacGAN protocol (2,500 samples, "
        "high quality = within 3 std of a mode).",
        "",
    ]
    for dataset in results:
        lines += [
            f"### {dataset}",
            "",
            "| method | modes captured | high-quality % | reverse KL |",
            "|---|---|---|---|",
        ]
        for name, r in results[dataset].items():
            kl = r["reverse_kl"]
            kl_text = f"{kl['mean']:.3f} +- {kl['std']:.3f}" if kl["mean"] is not None else "-"
            lines.append(
                f"| gan_jax {name} | {r['modes_captured']['mean']:.2f} +- {r['modes_captured']['std']:.2f} "
                f"| {100 * r['high_quality']['mean']:.1f} +- {100 * r['high_quality']['std']:.1f} "
                f"| {kl_text} |"
            )
        for name, modes, quality, kl in PUBLISHED[dataset]:
            lines.append(f"| {name} | {modes} | {quality} | {kl if kl is not None else '-'} |")
        lines.append("")
    return "\n".join(lines)


def _previous_results(path: Path, settings: dict) -> dict:
    if not path.exists():
        return {}
    saved = json.loads(path.read_text())
    held = {key: saved.get(key) for key in settings}
    if held != settings:
        raise SystemExit(f"{path} holds the results of {held}; use those settings, or another --out")
    return saved["results"]


def scatter(dataset: str, names: list[str], out: Path) -> Path:
    modes = data.build(compose_run(dataset, [], 1, 1).dataset).modes
    fig, axes = plt.subplots(1, len(names), figsize=(3 * len(names), 3.1))
    for ax, name in zip(np.atleast_1d(axes), names, strict=True):
        samples = np.load(out / "runs" / f"{dataset}_{name}" / "samples.npy")[0]
        ax.scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.3)
        ax.scatter(modes[:, 0], modes[:, 1], s=12, c="r", marker="x")
        ax.set_title(name, fontsize=8)
        ax.set_aspect("equal")
        span = np.abs(modes).max() * 1.4
        ax.set_xlim(-span, span)
        ax.set_ylim(-span, span)
    fig.tight_layout()
    path = out / f"samples_{dataset}.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=2500)
    parser.add_argument("--methods", help=f"comma-separated subset of {', '.join(METHODS)}")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of ring_2d,grid_2d")
    parser.add_argument("--lr-decay-start", type=int, help="decay the lr linearly to 0 from this step on")
    args = parser.parse_args()
    methods = args.methods.split(",") if args.methods else list(METHODS)
    datasets = args.datasets.split(",")
    if unknown := (set(methods) - set(METHODS)) | (set(datasets) - set(DATASETS)):
        valid = f"methods: {', '.join(METHODS)}; datasets: {', '.join(DATASETS)}"
        parser.error(f"unknown {', '.join(sorted(unknown))}; {valid}")
    logging.getLogger("absl").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"seeds": args.seeds, "steps": args.steps, "lr_decay_start": args.lr_decay_start}
    results = _previous_results(args.out / "results.json", settings)
    for dataset in datasets:
        done = results.setdefault(dataset, {})
        for name in methods:
            done[name] = run_method(dataset, name, settings, args.out)
            write_atomic(args.out / "results.json", json.dumps({**settings, "results": results}, indent=2) + "\n")
        results[dataset] = {name: done[name] for name in METHODS if name in done}
    results = {dataset: results[dataset] for dataset in DATASETS if dataset in results}
    write_atomic(args.out / "results.json", json.dumps({**settings, "results": results}, indent=2) + "\n")
    write_atomic(args.out / "table.md", table(results, **settings))
    for dataset in results:
        scatter(dataset, list(results[dataset]), args.out)
    print(table(results, **settings))


if __name__ == "__main__":
    main()
