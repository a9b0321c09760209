"""The table of the model-zoo runs that run.sh made (README.md here).

    python experiments/model_zoo_fashion_mnist/summarise.py RUNS_DIR [--out DIR]

For each family RUNS_DIR/<family> (a population of two seeds): its parameters, steps, training
seconds, images per second (both members), and each seed's FID, intra-FID and class accuracy
at the end, with their mean; writes table.md, results.json and grid_<family>.png (the last
sample grid) to --out (default: here).
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

FAMILIES = {
    "sngan": "SNGAN ResNet (projection, hinge)",
    "biggan": "BigGAN (shared embedding, hierarchical z)",
    "r3gan": "R3GAN (RpGAN + R1 + R2, schedules)",
    "stylegan2": "StyleGAN2 (projection, lazy R1 + path length)",
}
METRICS = ("fid", "intra_fid", "class_accuracy")


def read_run(run_dir: Path) -> dict:
    summary = json.loads((run_dir / "summary.json").read_text())
    batch = _batch_size(run_dir)
    members = summary.get("replicas") or [summary]
    per_seed = [{"seed": m.get("seed", 0), **{k: m["eval"][k] for k in METRICS}} for m in members]
    images = summary["steps_completed"] * batch * len(members)
    return {
        "parameters": summary["parameters"],
        "steps": summary["steps_completed"],
        "batch_size": batch,
        "train_seconds": summary["train_seconds"],
        "images_per_second": images / summary["train_seconds"],
        "seeds": per_seed,
        "mean": {k: sum(s[k] for s in per_seed) / len(per_seed) for k in METRICS},
    }


def _batch_size(run_dir: Path) -> int:
    for line in (run_dir / ".hydra" / "config.yaml").read_text().splitlines():
        if line.strip().startswith("batch_size:") and line.startswith("  "):
            return int(line.split(":")[1])
    raise ValueError(f"{run_dir}: no train.batch_size in .hydra/config.yaml")


def table(results: dict[str, dict]) -> str:
    head = (
        "| family | G / D parameters | steps x batch | training s | images/s | FID (seeds) | "
        "intra-FID (seeds) | class accuracy (seeds) |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, run in results.items():
        cells = []
        for key in METRICS:
            values = [s[key] for s in run["seeds"]]
            scale, unit = (100, "%") if key == "class_accuracy" else (1, "")
            each = " / ".join(f"{v * scale:.1f}" for v in values)
            cells.append(f"**{run['mean'][key] * scale:.1f}{unit}** ({each})")
        params = run["parameters"]
        lines.append(
            f"| {FAMILIES.get(name, name)} | {params['generator']:,} / {params['discriminator']:,} | "
            f"{run['steps']} x {run['batch_size']} | {run['train_seconds']:.0f} | {run['images_per_second']:.1f} | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    results = {name: read_run(args.runs / name) for name in FAMILIES if (args.runs / name / "summary.json").exists()}
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "table.md").write_text(table(results))
    for name in results:
        grids = sorted((args.runs / name / "samples").glob("step_*.png"))
        if grids:
            shutil.copyfile(grids[-1], args.out / f"grid_{name}.png")
    print(table(results))


if __name__ == "__main__":
    main()
