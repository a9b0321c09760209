"""`gan-compare SWEEP_DIR`: tabulate and plot a sweep's runs, grouped by what varied.

Reads each job directory's resolved config (.hydra/config.yaml) and summary.json (a
population's replicas count as runs of their own: a hyper-parameter population's member
as the single run it is, its config with the member's settings); SWEEP_DIR may also be one
population's run directory. Groups runs by the config keys that
differ between jobs, seed excluded (or by --by KEY ...); prints one Markdown table per
metric (runs, diverged, other failures, mean +- std, median, best over finished runs) and
writes it, with one box plot per metric (one box per group, as in Lucic et al. 2018), to the sweep directory or --out.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from omegaconf import OmegaConf  # noqa: E402

from gan_jax import evaluators, population, rundir, summary  # noqa: E402
from gan_jax.rundir import Status  # noqa: E402

IGNORED_KEYS = ("seed", "logger.", "train.progress_bar", "dataset.workers")


def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    flat = {}
    for key, value in tree.items():
        flat.update(_flatten(value, f"{prefix}{key}."))
    return flat


def load_runs(sweep_dir: Path) -> list[dict]:
    """One record per run (a population: per member): its flat config, status and numeric final metrics."""
    runs = []
    own = sweep_dir / rundir.SUMMARY_FILE
    paths = [own] if own.is_file() else sorted(sweep_dir.glob(f"*/{rundir.SUMMARY_FILE}"))
    for summary_path in paths:
        job = summary_path.parent
        written = json.loads(summary_path.read_text())
        config_path = job / ".hydra" / "config.yaml"
        loaded = OmegaConf.load(config_path) if config_path.exists() else OmegaConf.create({})
        config = _flatten(OmegaConf.to_container(loaded))
        for replica in summary.replicas(written):
            runs.append(
                {
                    "job": job.name,
                    "seed": replica.get("seed", config.get("seed")),
                    "config": _member_config(loaded, replica) if "member" in replica else config,
                    "status": replica.get("status", summary.status(written)),  # a population's diverged member
                    "metrics": summary.final_metrics(replica),
                }
            )
    return runs


def _member_config(run_config: Any, replica: Any) -> dict[str, Any]:
    """The flat config of the single run a population's member is (its starting settings);
    under PBT, whose members are no fixed setting, the values it ended with and the run's
    train.pbt (so PBT's members group apart from runs of a fixed setting)."""
    member = population.members(run_config)[replica["member"]]
    pbt = run_config.train.get("pbt")
    if pbt is None or pbt.get("every") is None:
        return _flatten(OmegaConf.to_container(population.member_config(run_config, member)))
    ended = dataclasses.replace(member, values=dict(replica.get("hyperparams") or member.values))
    single = population.member_config(run_config, ended)
    single.train.pbt = pbt
    return _flatten(OmegaConf.to_container(single))


def varying_keys(runs: list[dict]) -> list[str]:
    keys = sorted({k for r in runs for k in r["config"]})
    return [
        k for k in keys if not k.startswith(IGNORED_KEYS) and len({json.dumps(r["config"].get(k)) for r in runs}) > 1
    ]


def group_runs(runs: list[dict], by: list[str]) -> dict[str, list[dict]]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for run in runs:
        label = ", ".join(f"{k}={run['config'].get(k)}" for k in by) or "all"
        groups[label].append(run)
    return dict(groups)


def _best(values: list[float], metric: str) -> float | None:
    """The best value by the direction its evaluator declares; None for metrics without one."""
    way = evaluators.direction(metric)
    if way not in ("min", "max"):
        return None
    return max(values) if way == "max" else min(values)


def group_statistics(runs: list[dict], metric: str) -> dict[str, Any]:
    """A group's row of `metric`'s table: counts, and mean, std, median, best over finished runs."""
    values = [
        r["metrics"][metric]
        for r in runs
        if r["status"] == Status.FINISHED and metric in r["metrics"] and math.isfinite(r["metrics"][metric])
    ]
    row: dict[str, Any] = {
        "runs": len(runs),
        "diverged": sum(r["status"] == Status.DIVERGED for r in runs),
        "failed": sum(r["status"] not in (Status.FINISHED, Status.DIVERGED) for r in runs),
        "mean": None,
        "std": None,
        "median": None,
        "best": None,
    }
    if values:
        row |= {
            "mean": statistics.mean(values),
            "std": statistics.stdev(values) if len(values) > 1 else 0.0,
            "median": statistics.median(values),
            "best": _best(values, metric),
        }
    return row


def metric_table(groups: dict[str, list[dict]], metric: str) -> str:
    lines = [
        f"### {metric}",
        "",
        "| group | runs | diverged | other failures | mean +- std | median | best |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for label, runs in groups.items():
        row = group_statistics(runs, metric)
        if row["mean"] is not None:
            cells = [
                f"{row['mean']:.4g} +- {row['std']:.2g}",
                f"{row['median']:.4g}",
                "-" if row["best"] is None else f"{row['best']:.4g}",
            ]
        else:
            cells = ["-", "-", "-"]
        lines.append(f"| {label} | {row['runs']} | {row['diverged']} | {row['failed']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def box_plot(groups: dict[str, list[dict]], metric: str, path: Path) -> Path:
    labels = list(groups)
    data = [
        [r["metrics"][metric] for r in groups[label] if r["status"] == Status.FINISHED and metric in r["metrics"]]
        for label in labels
    ]
    fig, ax = plt.subplots(figsize=(max(4, 1.4 * len(labels)), 3.8))
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(labels) + 1), labels, rotation=30, ha="right", fontsize=8)
    ax.set_ylabel(metric)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def compare(
    sweep_dir: Path,
    by: list[str] | None = None,
    out: Path | None = None,
    metrics: list[str] | None = None,
) -> str:
    runs = load_runs(sweep_dir)
    if not runs:
        raise SystemExit(
            f"gan-compare: no */summary.json under {sweep_dir}, nor a summary.json of its own; "
            "is it a sweep directory or a population's run directory?"
        )
    by = by or varying_keys(runs)
    unknown = [k for k in by if not any(k in r["config"] for r in runs)]
    if unknown:
        raise SystemExit(
            f"gan-compare: --by {', '.join(unknown)}: not a config key of these runs; "
            f"keys that vary: {', '.join(varying_keys(runs)) or 'none'}"
        )
    groups = group_runs(runs, by)
    names = metrics or sorted({m for r in runs for m in r["metrics"]})
    out = out or sweep_dir
    out.mkdir(parents=True, exist_ok=True)
    header = f"# {sweep_dir.name}: {len(runs)} runs in {len(groups)} groups (by {', '.join(by) or 'nothing'})\n"
    report = header + "\n" + "\n\n".join(metric_table(groups, m) for m in names) + "\n"
    (out / "comparison.md").write_text(report)
    for name in names:
        box_plot(groups, name, out / f"compare_{name}.png")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="gan-compare", description=__doc__.splitlines()[0])
    parser.add_argument("sweep_dir", type=Path)
    parser.add_argument("--by", nargs="+", help="config keys to group by (default: those that vary)")
    parser.add_argument("--metrics", nargs="+", help="metrics to tabulate (default: all)")
    parser.add_argument("--out", type=Path, help="where to write comparison.md and the plots")
    args = parser.parse_args(argv)
    print(compare(args.sweep_dir, args.by, args.out, args.metrics))


if __name__ == "__main__":
    main(sys.argv[1:])
