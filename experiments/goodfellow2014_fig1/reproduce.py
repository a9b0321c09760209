"""Goodfellow et al. 2014, Figure 1, over seeds and target Gaussians.

Runs `experiment=goodfellow2014_fig1` for each target N(mean, std^2) and seed, and
writes DIR/results.json (per run and per target: d_real / d_fake over the last tenth of
training, the generator's sample mean and std, the JSD estimate) plus each run's
directory with its figures.

    python experiments/goodfellow2014_fig1/reproduce.py --out DIR [--seeds 5]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
from pathlib import Path

from hydra import compose, initialize_config_dir

from gan_jax import loop
from gan_jax.config import register_schemas

CONF = str(Path(__file__).resolve().parents[2] / "conf")
TARGETS = [(4.0, 0.5), (-3.0, 2.0), (10.0, 0.1)]


def run_one(out: Path, mean: float, std: float, seed: int) -> dict:
    with initialize_config_dir(version_base="1.3", config_dir=CONF):
        cfg = compose(
            "config",
            overrides=[
                "experiment=goodfellow2014_fig1",
                "logger=none",
                "train.progress_bar=false",
                f"dataset.mean={mean}",
                f"dataset.std={std}",
                f"seed={seed}",
            ],
        )
    summary = loop.run(cfg, out / f"mean{mean}_std{std}_seed{seed}")
    e = summary["eval"]
    return {
        "mean": mean,
        "std": std,
        "seed": seed,
        "d_real_last_tenth": summary["d_real_last_tenth"],
        "d_fake_last_tenth": summary["d_fake_last_tenth"],
        "sample_mean": e["sample_mean"],
        "sample_std": e["sample_std"],
        "jsd": e["jsd"],
        "train_seconds": summary["train_seconds"],
    }


def aggregate(runs: list[dict]) -> dict:
    keys = ("d_real_last_tenth", "d_fake_last_tenth", "sample_mean", "sample_std", "jsd")
    return {
        k: {
            "mean": statistics.mean(r[k] for r in runs),
            "min": min(r[k] for r in runs),
            "max": max(r[k] for r in runs),
        }
        for k in keys
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args()
    register_schemas()
    args.out.mkdir(parents=True, exist_ok=True)
    runs = [run_one(args.out, m, s, seed) for m, s in TARGETS for seed in range(args.seeds)]
    per_target = {f"N({m}, {s}^2)": aggregate([r for r in runs if (r["mean"], r["std"]) == (m, s)]) for m, s in TARGETS}
    (args.out / "results.json").write_text(json.dumps({"runs": runs, "per_target": per_target}, indent=2))
    shutil.copy(args.out / f"mean{TARGETS[0][0]}_std{TARGETS[0][1]}_seed0" / "figure1.png", args.out / "figure1.png")
    print(
        f"{'target':16s} {'d_real':>7s} {'d_fake':>7s} {'mean (min..max)':>24s} {'std (min..max)':>22s} {'JSD max':>8s}"
    )
    for name, a in per_target.items():
        print(
            f"{name:16s} {a['d_real_last_tenth']['mean']:7.3f} {a['d_fake_last_tenth']['mean']:7.3f} "
            f"{a['sample_mean']['mean']:8.3f} ({a['sample_mean']['min']:.3f}..{a['sample_mean']['max']:.3f}) "
            f"{a['sample_std']['mean']:7.3f} ({a['sample_std']['min']:.3f}..{a['sample_std']['max']:.3f}) "
            f"{a['jsd']['max']:8.4f}"
        )


if __name__ == "__main__":
    main()
