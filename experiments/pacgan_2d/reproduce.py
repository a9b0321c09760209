"""PacGAN's 2-D table (Lin et al. 2018, Table 1): GAN and PacGAN2/3/4 on the ring and the grid.

Each (dataset, setting) is one gan_jax population: `--seeds` independent GANs (seeds
0 .. N-1) trained in one compiled program from experiment=lin2018_pacgan_<ring|grid> (the
paper's networks, loss, optimiser and batch of 100 packs), with
model.discriminator.pack=m and train.batch_size=100m; each seed is evaluated on 2,500
samples by the PacGAN protocol (modes captured, % high-quality samples, reverse KL;
gan_jax/metrics/modes.py). `--steps` and `--lr` scale the paper's 400,000 iterations at
Adam 1e-4 down to what a CPU affords, and `--lr-decay-start N` decays the lr linearly to
0 from iteration N (not the paper's: its lr is constant); all are recorded with the results.

Writes DIR/results.json (per dataset and setting: each seed's metrics, mean, std,
seconds), DIR/table.md (ours beside the paper's rows) and DIR/samples_<dataset>.png (the
first seeds' samples per setting).

    python experiments/pacgan_2d/reproduce.py --out DIR [--seeds 10] [--steps 400000] [--lr 1e-4] [--lr-decay-start N]
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

DATASETS = {"ring_2d": "lin2018_pacgan_ring", "grid_2d": "lin2018_pacgan_grid"}
PACKS = {"GAN": 1, "PacGAN2": 2, "PacGAN3": 3, "PacGAN4": 4}
PAPER_BATCH_PACKS = 100  # the paper's batch: 100 packs of m examples
METRICS = ("modes_captured", "high_quality", "reverse_kl")
# Lin et al. 2018, Table 1 (10 trials): modes, % high quality, reverse KL. Only the rows
# checked against the paper are filled in ("?": to be read from its Table 1, with the
# spreads, before quoting).
PAPER = {
    "ring_2d": {
        "GAN": ("6.3", "98.2", "0.45"),
        "PacGAN2": ("7.9", "95.6", "0.07"),
        "PacGAN3": ("?", "?", "?"),
        "PacGAN4": ("?", "?", "?"),
    },
    "grid_2d": {
        "GAN": ("17.3", "94.8", "0.70"),
        "PacGAN2": ("?", "?", "?"),
        "PacGAN3": ("?", "?", "?"),
        "PacGAN4": ("24.8", "93.6", "0.04"),
    },
}


def overrides(dataset: str, pack: int, seeds: int, steps: int, lr: float | None, decay_start: int | None) -> list[str]:
    per_call = min(steps, 500)
    return [
        f"experiment={DATASETS[dataset]}",
        f"model.discriminator.pack={pack}",
        f"train.batch_size={PAPER_BATCH_PACKS * pack}",
        f"train.num_seeds={seeds}",
        f"train.steps={steps}",
        f"train.steps_per_call={per_call}",
        f"train.log_every={per_call}",
        f"eval.every={steps}",
        f"train.sample_every={steps}",
        f"train.checkpoint_every={steps}",
        "logger=none",
        "train.progress_bar=false",
        *([f"optim.lr={lr}"] if lr is not None else []),
        *([] if decay_start is None else ["optim.lr_decay=linear", f"optim.lr_decay_start={decay_start}"]),
    ]


def mean_and_std(per_seed: list[dict], key: str) -> dict:
    values = [s[key] for s in per_seed if s[key] is not None]
    return {
        "mean": float(np.mean(values)) if values else None,
        "std": float(np.std(values)) if values else None,
        "defined_for": len(values),
    }


def run_setting(dataset: str, name: str, args: argparse.Namespace) -> dict:
    run_dir = args.out / "runs" / f"{dataset}_{name}"
    start = time.perf_counter()
    cfg = compose(overrides(dataset, PACKS[name], args.seeds, args.steps, args.lr, args.lr_decay_start))
    summary = loop.run(cfg, run_dir)
    per_seed = [{k: r.get("eval", {}).get(k) for k in METRICS} for r in summary["replicas"]]
    result = {
        "seconds": round(time.perf_counter() - start, 1),
        "status": summary["status"],
        "per_seed": per_seed,
        **{key: mean_and_std(per_seed, key) for key in METRICS},
    }
    print(
        f"{dataset} {name:8s} modes {result['modes_captured']['mean']:5.2f}  high quality "
        f"{100 * result['high_quality']['mean']:5.1f}%  ({result['seconds']} s)",
        flush=True,
    )
    return result


def _ours(r: dict) -> list[str]:
    kl = r["reverse_kl"]
    return [
        f"{r['modes_captured']['mean']:.1f} +- {r['modes_captured']['std']:.1f}",
        f"{100 * r['high_quality']['mean']:.1f} +- {100 * r['high_quality']['std']:.1f}",
        f"{kl['mean']:.2f} +- {kl['std']:.2f}" if kl["mean"] is not None else "-",
    ]


def table(results: dict, settings: dict) -> str:
    lr = settings["lr"] if settings["lr"] is not None else "1e-4 (the paper's)"
    if settings.get("lr_decay_start") is not None:
        lr = f"{lr}, decayed linearly to 0 from iteration {settings['lr_decay_start']:,}"
    lines = [
        f"Ours: mean +- std over {settings['seeds']} seeds, {settings['steps']:,} iterations at Adam lr {lr} "
        "(the paper: 400,000 at 1e-4); the paper: its mean over 10 trials ('?': not yet checked against it). "
        "PacGAN protocol: 2,500 samples, high quality = within 3 std of a mode.",
        "",
    ]
    for dataset, by_setting in results.items():
        lines += [
            f"### {dataset}",
            "",
            "| setting | modes (ours) | (paper) | high-quality % (ours) | (paper) | reverse KL (ours) | (paper) |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, r in by_setting.items():
            ours = _ours(r)
            paper = PAPER[dataset][name]
            lines.append(f"| {name} | {ours[0]} | {paper[0]} | {ours[1]} | {paper[1]} | {ours[2]} | {paper[2]} |")
        lines.append("")
    return "\n".join(lines)


def scatter(dataset: str, names: list[str], out: Path, seeds_shown: int = 3) -> Path:
    modes = data.build(compose([f"experiment={DATASETS[dataset]}"]).dataset).modes
    span = np.abs(modes).max() * 1.5
    samples = {name: np.load(out / "runs" / f"{dataset}_{name}" / "samples.npy") for name in names}
    rows = min(seeds_shown, *(len(s) for s in samples.values()))
    fig, axes = plt.subplots(rows, len(names), figsize=(2.6 * len(names), 2.6 * rows), squeeze=False)
    for column, name in enumerate(names):
        for row in range(rows):
            ax = axes[row, column]
            ax.scatter(samples[name][row, :, 0], samples[name][row, :, 1], s=1, alpha=0.3)
            ax.scatter(modes[:, 0], modes[:, 1], s=12, c="r", marker="x")
            ax.set_xlim(-span, span)
            ax.set_ylim(-span, span)
            ax.set_aspect("equal")
            ax.set_xticks([])
            ax.set_yticks([])
            ax.set_title(f"{name}, seed {row}", fontsize=8)
    fig.tight_layout()
    path = out / f"samples_{dataset}.png"
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=400_000)
    parser.add_argument("--lr", type=float, help="Adam's learning rate for both players (default: the paper's 1e-4)")
    parser.add_argument("--lr-decay-start", type=int, help="decay the lr linearly to 0 from this iteration on")
    parser.add_argument("--datasets", default=",".join(DATASETS), help="comma-separated subset of ring_2d,grid_2d")
    parser.add_argument("--settings", default=",".join(PACKS), help="comma-separated subset of GAN,PacGAN2,...")
    args = parser.parse_args()
    datasets, names = args.datasets.split(","), args.settings.split(",")
    if unknown := (set(datasets) - set(DATASETS)) | (set(names) - set(PACKS)):
        valid = f"datasets: {', '.join(DATASETS)}; settings: {', '.join(PACKS)}"
        parser.error(f"unknown {', '.join(sorted(unknown))}; {valid}")
    logging.getLogger("absl").setLevel(logging.WARNING)
    args.out.mkdir(parents=True, exist_ok=True)
    settings = {"seeds": args.seeds, "steps": args.steps, "lr": args.lr, "lr_decay_start": args.lr_decay_start}
    results = {dataset: {name: run_setting(dataset, name, args) for name in names} for dataset in datasets}
    write_atomic(args.out / "results.json", json.dumps({**settings, "results": results}, indent=2) + "\n")
    write_atomic(args.out / "table.md", table(results, settings))
    for dataset in datasets:
        scatter(dataset, names, args.out)
    print(table(results, settings))


if __name__ == "__main__":
    main()
