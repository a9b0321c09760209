"""Limited data on Fashion-MNIST: the conditional ResNet on a slice of the training set,
with no regulariser, DiffAugment, LeCam, bCR and DiffAugment + LeCam, at equal steps
(Tseng et al. 2021's comparison, at a CPU scale).

Every (data size, setting) pair is one gan-train run of `experiment=fashion_mnist_conditional`
(projection cGAN, ResNet, hinge loss, spectral norm) on `dataset.split=train[:P%]` (TFDS's
slicing syntax), shrunk to `--width` channels and `--steps` steps of batch `--batch-size`,
scored once at the end on `--num-samples` samples of the EMA generator against the 10,000
test images, on the shipped Fashion-MNIST classifier's features: FID, KID, intra-class FID
and class accuracy. Runs land in DIR/runs/<size>_<setting>; a finished run is not run again,
an interrupted one continues from its checkpoint.

    python experiments/limited_data_fashion_mnist/reproduce.py --out DIR [--steps 400]
        [--batch-size 32] [--width 32] [--num-samples 2000] [--sizes 100,10] [--settings a,b]

Writes DIR/results.json (every run: size, setting, overrides, status, metrics, seconds),
DIR/table.md (per data size and setting, with LeCam's FID gain over no regulariser) and
DIR/fid_per_setting.png (FID and class accuracy per setting, one bar group per data size).
The outputs cover every run found in DIR/runs, not only those of this invocation.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from gan_jax.rundir import write_atomic  # noqa: E402

# DiffAugment's policy: translation + cutout, as Tseng et al.'s BigGAN CIFAR scripts
# (`--DiffAugment translation,cutout`); color is mostly moot on grey images.
AUGMENT = "augment.policy=[translation,cutout]"
LECAM = ["penalty=lecam", "penalty.lecam.weight=0.3"]  # the paper's lambda; its decay 0.99 is the default
SETTINGS = {
    "none": [],
    "diffaugment": [AUGMENT],
    "lecam": LECAM,
    "diffaugment_lecam": [AUGMENT, *LECAM],
    # bCR takes its transforms from augment.policy, which also augments what D judges in its
    # main pass: in this framework bcr comes on top of DiffAugment (gan_jax/regularisers/consistency.py).
    "bcr": ["penalty=bcr", AUGMENT],
}
LABELS = {
    "none": "no regulariser",
    "diffaugment": "DiffAugment",
    "lecam": "LeCam",
    "diffaugment_lecam": "DiffAugment + LeCam",
    "bcr": "bCR (+ DiffAugment)",
}
TRAIN_SIZE = 60_000  # Fashion-MNIST's training split
METRICS = ["fid", "kid", "intra_fid", "class_accuracy"]


def split_of(percent: int) -> str:
    # Quoted for Hydra's override grammar: an unquoted `train[:10%]` is parsed as a list.
    return "dataset.split=train" if percent == 100 else f'dataset.split="train[:{percent}%]"'


def run_name(percent: int, setting: str) -> str:
    return f"{percent}pct_{setting}"


def scale_overrides(args: argparse.Namespace) -> list[str]:
    return [
        "experiment=fashion_mnist_conditional",
        f"model.generator.width={args.width}",
        f"model.discriminator.width={args.width}",
        f"train.batch_size={args.batch_size}",
        f"train.steps={args.steps}",
        "train.steps_per_call=1",
        "train.ema_decay=0.99",
        f"train.ema_start={args.steps // 2}",
        f"train.checkpoint_every={args.steps}",
        f"train.sample_every={args.steps}",
        "train.log_every=25",
        f"eval.every={args.steps}",
        f"eval.num_samples={args.num_samples}",
        f"eval.metrics=[{','.join(METRICS)}]",
        f"seed={args.seed}",
        "logger=none",
        "train.progress_bar=false",
    ]


def overrides_of(percent: int, setting: str, args: argparse.Namespace) -> list[str]:
    return [*scale_overrides(args), split_of(percent), *SETTINGS[setting]]


def read_summary(run_dir: Path) -> dict:
    path = run_dir / "summary.json"
    return json.loads(path.read_text()) if path.exists() else {}


def finished(run_dir: Path, steps: int) -> bool:
    summary = read_summary(run_dir)
    return summary.get("status") == "finished" and summary.get("steps_completed", 0) >= steps


def train(percent: int, setting: str, args: argparse.Namespace, runs: Path) -> float | None:
    """One gan-train run; returns its wall time (None when it was finished already)."""
    run_dir = runs / run_name(percent, setting)
    if finished(run_dir, args.steps):
        print(f"[{run_dir.name}] finished already", flush=True)
        return None
    command = [sys.executable, "-m", "gan_jax.train", *overrides_of(percent, setting, args), f"hydra.run.dir={run_dir}"]
    print(f"[{run_dir.name}] {' '.join(command[3:])}", flush=True)
    started = time.perf_counter()
    env = {"JAX_COMPILATION_CACHE_DIR": str(runs / ".jax_cache"), **os.environ}  # shared compiled programs
    subprocess.run(command, check=False, env=env)  # a failure is recorded from its summary
    return time.perf_counter() - started


def collect(runs: Path, seconds: dict[str, float], args: argparse.Namespace) -> list[dict]:
    records = []
    for percent in sorted(args.all_sizes, reverse=True):
        for setting in SETTINGS:
            run_dir = runs / run_name(percent, setting)
            if not run_dir.is_dir():
                continue
            summary = read_summary(run_dir)
            evaluation = summary.get("eval", {}) if summary.get("status") == "finished" else {}
            records.append(
                {
                    "size_percent": percent,
                    "train_images": TRAIN_SIZE * percent // 100,
                    "setting": setting,
                    "run": run_dir.name,
                    "overrides": overrides_of(percent, setting, args),
                    "status": summary.get("status", "no_summary"),
                    "error": summary.get("error"),
                    "steps": summary.get("steps_completed"),
                    "epochs": (summary.get("steps_completed") or 0) * args.batch_size / (TRAIN_SIZE * percent / 100),
                    **{metric: evaluation.get(metric) for metric in METRICS},
                    "kid_std": evaluation.get("kid_std"),
                    "class_accuracy_min": evaluation.get("class_accuracy_min"),
                    # mean sigmoid(D) on real and generated batches over the last tenth of the
                    # steps: near 1 and 0 when D has overfitted (the paper's failure mode)
                    "d_real_last_tenth": summary.get("d_real_last_tenth"),
                    "d_fake_last_tenth": summary.get("d_fake_last_tenth"),
                    "train_seconds": summary.get("train_seconds"),
                    "wall_seconds": seconds.get(run_dir.name),
                }
            )
    return records


def _fmt(value: float | None, spec: str) -> str:
    return "-" if value is None else format(value, spec)


def table(records: list[dict], args: argparse.Namespace) -> str:
    lines = [
        f"Conditional ResNet (width {args.width}), {args.steps} steps of batch {args.batch_size}, seed {args.seed}; "
        f"EMA generator, {args.num_samples:,} samples against the 10,000 test images on the shipped "
        "classifier's features. FID, KID (the raw MMD^2 on these features, not x 1000) and intra-FID: lower is "
        "better; class accuracy (chance: 10%): higher. One seed each. D(x) / D(G(z)): mean sigmoid of D's "
        "output on real and generated batches over the last tenth of the steps (near 1 / 0: D overfits).",
        "",
        "| data | setting | epochs | FID | KID | intra-FID | class accuracy | FID vs none | D(x) / D(G(z)) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by_key = {(r["size_percent"], r["setting"]): r for r in records}
    for r in records:
        base = by_key.get((r["size_percent"], "none"), {}).get("fid")
        delta = "-" if base is None or r["fid"] is None or r["setting"] == "none" else f"{r['fid'] - base:+.1f}"
        if r["status"] != "finished":
            data = f"{r['size_percent']}% ({r['train_images']:,})"
            row = f"| {data} | {LABELS[r['setting']]} | - | {r['status']} | - | - | - | - | - |"
        else:
            accuracy = None if r["class_accuracy"] is None else 100 * r["class_accuracy"]
            row = (
                f"| {r['size_percent']}% ({r['train_images']:,}) | {LABELS[r['setting']]} | {r['epochs']:.1f} "
                f"| {_fmt(r['fid'], '.1f')} | {_fmt(r['kid'], '.1f')} | {_fmt(r['intra_fid'], '.1f')} "
                f"| {_fmt(accuracy, '.1f')}% | {delta} "
                f"| {_fmt(r['d_real_last_tenth'], '.2f')} / {_fmt(r['d_fake_last_tenth'], '.2f')} |"
            )
        lines.append(row)
    gains = []
    for percent in sorted({r["size_percent"] for r in records}, reverse=True):
        none, lecam = by_key.get((percent, "none"), {}).get("fid"), by_key.get((percent, "lecam"), {}).get("fid")
        da, da_lecam = (by_key.get((percent, s), {}).get("fid") for s in ("diffaugment", "diffaugment_lecam"))
        gain = "-" if none is None or lecam is None else f"{none - lecam:+.1f}"
        gain_da = "-" if da is None or da_lecam is None else f"{da - da_lecam:+.1f}"
        gains.append(f"| {percent}% | {gain} | {gain_da} |")
    lines += [
        "",
        "LeCam's FID gain (positive: LeCam better), the quantity Tseng et al. find growing as data shrink:",
        "",
        "| data | none - LeCam | DiffAugment - (DiffAugment + LeCam) |",
        "|---|---:|---:|",
        *gains,
    ]
    return "\n".join(lines) + "\n"


def figure(records: list[dict], out: Path) -> None:
    sizes = sorted({r["size_percent"] for r in records}, reverse=True)
    settings = [s for s in SETTINGS if any(r["setting"] == s for r in records)]
    by_key = {(r["size_percent"], r["setting"]): r for r in records}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    width = 0.8 / max(len(settings), 1)
    for ax, metric, label in ((axes[0], "fid", "FID (lower is better)"), (axes[1], "class_accuracy", "class accuracy")):
        for k, setting in enumerate(settings):
            values = [by_key.get((p, setting), {}).get(metric) for p in sizes]
            heights = [np.nan if v is None else v for v in values]
            x = np.arange(len(sizes)) + (k - (len(settings) - 1) / 2) * width
            ax.bar(x, heights, width, label=LABELS[setting])
        ax.set_xticks(range(len(sizes)), [f"{p}% ({TRAIN_SIZE * p // 100:,} images)" for p in sizes])
        ax.set_ylabel(label)
    axes[1].axhline(0.1, color="grey", linestyle="--", linewidth=1, label="chance (10%)")
    axes[0].set_title("FID per setting, per training-set size")
    axes[1].set_title("Class accuracy per setting")
    handles, labels = axes[1].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=len(labels), fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    fig.savefig(out / "fid_per_setting.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--width", type=int, default=32)
    parser.add_argument("--num-samples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", default="100,10", help="percentages of the training split, e.g. 100,10,1")
    parser.add_argument("--settings", default=",".join(SETTINGS))
    args = parser.parse_args()
    sizes = [int(p) for p in args.sizes.split(",")]
    chosen = args.settings.split(",")
    if unknown := [s for s in chosen if s not in SETTINGS]:
        parser.error(f"--settings: {', '.join(unknown)} unknown; valid values are {', '.join(SETTINGS)}")
    if bad := [p for p in sizes if not 0 < p <= 100]:
        parser.error(f"--sizes: {bad} not percentages in (0, 100]")

    runs = args.out / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    earlier = args.out / "results.json"  # a continued study keeps the earlier runs' wall times
    seconds = json.loads(earlier.read_text()).get("wall_seconds", {}) if earlier.exists() else {}
    # bcr last: it is the newest regulariser, and the others should not wait on it.
    order = [s for s in chosen if s != "bcr"] + [s for s in chosen if s == "bcr"]
    for setting in order:
        for percent in sizes:
            took = train(percent, setting, args, runs)
            if took is not None:
                seconds[run_name(percent, setting)] = round(took, 1)
    found = {int(p.name.split("pct_")[0]) for p in runs.glob("*pct_*") if p.is_dir()}
    args.all_sizes = sorted(found | set(sizes), reverse=True)
    records = collect(runs, seconds, args)
    record = {
        "scale": {
            "steps": args.steps,
            "batch_size": args.batch_size,
            "width": args.width,
            "num_samples": args.num_samples,
            "seed": args.seed,
        },
        "settings": SETTINGS,
        "wall_seconds": seconds,
        "runs": records,
    }
    write_atomic(args.out / "results.json", json.dumps(record, indent=2) + "\n")
    summary_table = table(records, args)
    write_atomic(args.out / "table.md", summary_table)
    figure(records, args.out)
    print(summary_table)


if __name__ == "__main__":
    main()
