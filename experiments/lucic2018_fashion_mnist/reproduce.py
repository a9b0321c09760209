"""Are GANs created equal, on Fashion-MNIST: eight losses, the same random hyper-parameter
budget each, FID on 10,000 samples (Lucic et al. 2018's protocol, at a CPU scale).

For each loss, one Hydra multirun with the Optuna sweeper's random sampler draws `--budget`
settings from the search space below (the same sampler seed for every loss: losses with
the same search space try the same settings; a penalty's weight adds a dimension) and
trains each on Fashion-MNIST with the same DCGAN, scored by FID on the shipped
classifier's features (eval.features=auto; give --inception-weights for Inception FID, as
the paper's). All jobs land in one sweep directory, `DIR/sweep/<loss>_<k>`, which
gan-compare reads; a job that diverges or fails counts as a failure, as in the paper.

    python experiments/lucic2018_fashion_mnist/reproduce.py --out DIR [--budget 6] [--steps 600]
        [--width 16] [--losses a,b] [--launcher basic|submitit_local|submitit_slurm] [--paper-scale]

Writes DIR/results.json (every job: loss, setting, status, FID), DIR/table.md (per loss:
best FID, median, fraction failed, beside the paper's Fashion-MNIST column) and the
paper's two figures: DIR/fid_per_loss.png (box plots) and DIR/min_fid_vs_budget.png
(the minimum FID reached within the first b settings, bootstrapped over their order).
`--losses a,b` runs only those; the outputs cover every loss found in DIR/sweep. Rerunning
a loss into the same DIR continues its jobs (the same seed draws the same settings), so
an interrupted study picks up where it stopped.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import yaml  # noqa: E402

from gan_jax.config import upgrade_saved  # noqa: E402
from gan_jax.rundir import write_atomic  # noqa: E402

LOSSES = {
    "minimax": ["loss=minimax"],
    "non_saturating": ["loss=non_saturating"],
    "lsgan": ["loss=lsgan"],
    "wgan": ["loss=wgan"],  # weight clipping at 0.01
    "wgan_gp": ["loss=wgan", "loss.weight_clip=null", "penalty=wgan_gp", "model.discriminator.norm=layer"],
    "dragan": ["loss=non_saturating", "penalty=dragan", "model.discriminator.norm=layer"],
    "hinge": ["loss=hinge"],
    "relativistic": ["loss=relativistic"],
}
PENALISED = {"wgan_gp": "wgan_gp", "dragan": "dragan"}  # loss -> its regulariser
# Lucic et al.'s wide search: learning rate log-uniform, Adam's beta1, D steps per G step,
# the penalty's weight log-uniform where there is one.
SEARCH = {
    "optim.lr": "tag(log, interval(1e-5, 1e-2))",
    "optim.b1": "interval(0.0, 0.9)",
    "train.d_steps": "choice(1, 5)",
}
PENALTY_WEIGHT_SEARCH = "tag(log, interval(0.1, 100.0))"


def penalty_search(loss: str) -> dict[str, str]:
    return {f"penalty.{PENALISED[loss]}.weight": PENALTY_WEIGHT_SEARCH} if loss in PENALISED else {}


# Lucic et al. 2018, best FID on Fashion-MNIST (Inception features), mean +- std.
PAPER = {
    "minimax": "29.6 +- 1.6",
    "non_saturating": "26.5 +- 1.6",
    "lsgan": "30.7 +- 2.2",
    "wgan": "21.5 +- 1.6",
    "wgan_gp": "24.5 +- 2.1",
    "dragan": "27.7 +- 1.2",
    "hinge": "-",
    "relativistic": "-",
}
CPU_SCALE = {"steps": 600, "width": 16}
PAPER_SCALE = {"steps": 18750, "width": 64}  # 20 epochs of 60,000 images at batch 64
BOOTSTRAP_ORDERS = 500


def scale_overrides(args: argparse.Namespace) -> list[str]:
    scale = [
        f"train.steps={args.steps}",
        f"model.generator.width={args.width}",
        f"model.discriminator.width={args.width}",
        f"eval.every={args.steps}",
        f"eval.num_samples={args.num_samples}",
        f"train.checkpoint_every={args.steps}",
        f"train.sample_every={args.steps}",
        "eval.metrics=[fid]",
    ]
    if args.inception_weights:
        scale += ["eval.features=inception_v3", f"eval.inception_weights={args.inception_weights}"]
    return ["experiment=fashion_mnist_dcgan", *scale, "logger=none", "train.progress_bar=false"]


def job_overrides(loss: str, args: argparse.Namespace, sweep_dir: Path) -> list[str]:
    search = SEARCH | penalty_search(loss)
    return [
        "-m",
        *LOSSES[loss],
        *scale_overrides(args),
        *(f"{key}={value}" for key, value in search.items()),
        "hydra/sweeper=optuna",
        "hydra/sweeper/sampler=random",
        f"hydra.sweeper.sampler.seed={args.seed}",
        f"hydra.sweeper.n_trials={args.budget}",
        "hydra.sweeper.n_jobs=1",
        "hydra.sweeper.direction=minimize",
        "hydra.sweeper.max_failure_rate=1.0",  # failures are data here
        f"hydra/launcher={args.launcher}",
        "objective=eval.fid",
        f"hydra.sweep.dir={sweep_dir}",
        f"hydra.sweep.subdir={loss}_${{hydra.job.num}}",
    ]


def run_loss(loss: str, args: argparse.Namespace, sweep_dir: Path) -> float:
    """One multirun of `budget` jobs; returns its wall time. A failing job does not stop it."""
    started = time.perf_counter()
    command = [sys.executable, "-m", "gan_jax.train", *job_overrides(loss, args, sweep_dir)]
    print(f"[{loss}] {' '.join(command[3:])}", flush=True)
    subprocess.run(command, check=False, env=_with_jax_cache(sweep_dir))  # exit 1 when any job failed: counted below
    return time.perf_counter() - started


def best_setting_over_seeds(loss: str, jobs: list[dict], args: argparse.Namespace, out: Path) -> dict | None:
    """The loss's best setting trained again with seeds 1..args.seeds (one population run,
    DIR/seeds/<loss>): the spread that seeds alone cause, beside the setting's seed-0 FID."""
    finished = [j for j in jobs if j["fid"] is not None]
    if not finished or args.seeds < 1:
        return None
    best = min(finished, key=lambda j: j["fid"])
    setting = best["setting"]
    names = {"lr": "optim.lr", "b1": "optim.b1", "d_steps": "train.d_steps"}
    if loss in PENALISED:
        names["penalty_weight"] = f"penalty.{PENALISED[loss]}.weight"
    run_dir = out / "seeds" / loss
    command = [
        *(f"{names[k]}={v}" for k, v in setting.items()),
        *LOSSES[loss],
        *scale_overrides(args),
        "seed=1",
        f"train.num_seeds={args.seeds}",
        f"hydra.run.dir={run_dir}",
    ]
    print(f"[{loss}, seeds 1..{args.seeds}] {' '.join(command)}", flush=True)
    subprocess.run([sys.executable, "-m", "gan_jax.train", *command], check=False, env=_with_jax_cache(out / "sweep"))
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    replicas = summary.get("replicas", [])
    fids = [best["fid"]] + [r.get("eval", {}).get("fid") for r in replicas]
    return {"job": best["job"], "setting": setting, "seeds": [0, *range(1, args.seeds + 1)], "fids": fids}


def _with_jax_cache(sweep_dir: Path) -> dict[str, str]:
    # Every job compiles the same programs: share them through JAX's cache.
    return {"JAX_COMPILATION_CACHE_DIR": str(sweep_dir / ".jax_cache"), **os.environ}


def jobs_of(sweep_dir: Path, loss: str) -> list[Path]:
    """The job directories `<loss>_<k>` (wgan's, not wgan_gp's)."""
    return [p for p in sweep_dir.glob(f"{loss}_*") if p.name.rsplit("_", 1)[0] == loss]


def collect(sweep_dir: Path, loss: str) -> list[dict]:
    jobs = []
    for job in sorted(jobs_of(sweep_dir, loss), key=lambda p: int(p.name.rsplit("_", 1)[1])):
        config = yaml.safe_load((job / ".hydra" / "config.yaml").read_text()) if (job / ".hydra").is_dir() else {}
        summary_path = job / "summary.json"
        summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"status": "no_summary"}
        setting = {
            "lr": config.get("optim", {}).get("lr"),
            "b1": config.get("optim", {}).get("b1"),
            "d_steps": config.get("train", {}).get("d_steps"),
        }
        if loss in PENALISED:
            penalty = upgrade_saved(config).get("penalty", {})  # sweeps run before penalty.<name>.weight
            setting["penalty_weight"] = penalty.get(PENALISED[loss], {}).get("weight")
        fid = summary.get("eval", {}).get("fid") if summary.get("status") == "finished" else None
        jobs.append(
            {
                "loss": loss,
                "job": job.name,
                "setting": setting,
                "status": summary.get("status"),
                "fid": fid,
                "train_seconds": summary.get("train_seconds"),
            }
        )
    return jobs


def min_fid_curve(fids: list[float | None], rng: np.random.Generator) -> np.ndarray:
    """[orders, budget]: the best FID within the first b settings of random orders (failure: inf)."""
    values = np.array([math.inf if f is None else f for f in fids])
    orders = np.stack([rng.permutation(len(values)) for _ in range(BOOTSTRAP_ORDERS)])
    return np.minimum.accumulate(values[orders], axis=1)


def table(
    results: dict[str, list[dict]], spread: dict[str, dict | None], feature_network: str, num_samples: int
) -> str:
    lines = [
        f"FID on {feature_network} features, {num_samples:,} samples against the test split (lower is better).",
        "The best setting over seeds: its FID with seed 0 (the sweep's) and seeds 1.., mean +- std.",
        "",
        "| loss | settings | failed | best FID | median FID | best setting over seeds | paper's best FID (Inception) |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for loss, jobs in results.items():
        fids = [j["fid"] for j in jobs if j["fid"] is not None]
        failed = sum(j["fid"] is None for j in jobs)
        best = f"{min(fids):.1f}" if fids else "-"
        median = f"{float(np.median(fids)):.1f}" if fids else "-"
        share = f"{failed} ({failed / max(len(jobs), 1):.0%})"
        over_seeds = "-"
        if spread.get(loss) and None not in (seeded := spread[loss]["fids"]):
            over_seeds = f"{np.mean(seeded):.1f} +- {np.std(seeded, ddof=1):.1f} ({len(seeded)} seeds)"
        lines.append(f"| {loss} | {len(jobs)} | {share} | {best} | {median} | {over_seeds} | {PAPER[loss]} |")
    return "\n".join(lines) + "\n"


def figures(results: dict[str, list[dict]], out: Path) -> None:
    losses = list(results)
    fig, ax = plt.subplots(figsize=(1.1 * len(losses) + 2, 4))
    ax.boxplot([[j["fid"] for j in results[loss] if j["fid"] is not None] or [np.nan] for loss in losses])
    ax.set_xticks(range(1, len(losses) + 1), losses, rotation=30, ha="right")
    ax.set_ylabel("FID (finished runs)")
    ax.set_title("FID over the hyper-parameter budget, per loss")
    fig.tight_layout()
    fig.savefig(out / "fid_per_loss.png", dpi=120)
    plt.close(fig)

    rng = np.random.default_rng(0)
    fig, ax = plt.subplots(figsize=(6, 4))
    for loss in losses:
        curves = min_fid_curve([j["fid"] for j in results[loss]], rng)
        budget = np.arange(1, curves.shape[1] + 1)
        finite = np.where(np.isfinite(curves), curves, np.nan)
        ax.plot(budget, np.nanmedian(finite, axis=0), label=loss)
        ax.fill_between(budget, np.nanpercentile(finite, 10, axis=0), np.nanpercentile(finite, 90, axis=0), alpha=0.15)
    ax.set_xlabel("budget (settings tried)")
    ax.set_ylabel("minimum FID reached")
    ax.set_title("Minimum FID vs budget (median, 10-90% over orders)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out / "min_fid_vs_budget.png", dpi=120)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--budget", type=int, default=6)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--width", type=int, default=None)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--losses", default=",".join(LOSSES))
    parser.add_argument("--launcher", default="basic")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--inception-weights", default=None)
    parser.add_argument(
        "--seeds", type=int, default=3, help="train each loss's best setting again with seeds 1..N (0: skip)"
    )
    parser.add_argument("--paper-scale", action="store_true", help="width 64, 18,750 steps (for a GPU)")
    args = parser.parse_args()
    scale = PAPER_SCALE if args.paper_scale else CPU_SCALE
    args.steps = args.steps or scale["steps"]
    args.width = args.width or scale["width"]
    chosen = args.losses.split(",")
    if unknown := [loss for loss in chosen if loss not in LOSSES]:
        parser.error(f"--losses: {', '.join(unknown)} unknown; valid values are {', '.join(LOSSES)}")

    sweep_dir = args.out / "sweep"
    sweep_dir.mkdir(parents=True, exist_ok=True)
    earlier = args.out / "results.json"  # a continued study keeps the earlier multiruns' times
    seconds = json.loads(earlier.read_text()).get("seconds", {}) if earlier.exists() else {}
    for loss in chosen:
        if sum(job["status"] is not None for job in collect(sweep_dir, loss)) >= args.budget:
            print(f"[{loss}] all {args.budget} settings ran already (results in {sweep_dir})", flush=True)
            continue
        seconds[loss] = run_loss(loss, args, sweep_dir)
    results = {loss: collect(sweep_dir, loss) for loss in LOSSES if jobs_of(sweep_dir, loss)}
    spread = {loss: best_setting_over_seeds(loss, jobs, args, args.out) for loss, jobs in results.items()}
    feature_network = "Inception-v3" if args.inception_weights else "the shipped Fashion-MNIST classifier's"
    record = {
        "scale": {"steps": args.steps, "width": args.width, "budget": args.budget, "num_samples": args.num_samples},
        "search": {**SEARCH, "penalty.<name>.weight": PENALTY_WEIGHT_SEARCH},
        "seconds": seconds,
        "jobs": [job for jobs in results.values() for job in jobs],
        "best_setting_over_seeds": spread,
    }
    write_atomic(args.out / "results.json", json.dumps(record, indent=2) + "\n")
    summary_table = table(results, spread, feature_network, args.num_samples)
    write_atomic(args.out / "table.md", summary_table)
    figures(results, args.out)
    print(summary_table)


if __name__ == "__main__":
    main()
