"""64 seeds of the ring_2d MLP GAN: one population run against 64 sequential runs.

Both sides go through `gan_jax.loop.run` as `gan-train` would (compilation, evaluation,
metrics, checkpoints, figures), in this one process, so the figures exclude Python's and
JAX's start-up, which would add several seconds to each sequential run launched as its own
`gan-train`. The population is `train.num_seeds=64`; the sequential runs are
`seed=0 .. 63` with `train.num_seeds=1`, the same steps each.

    python experiments/throughput/population.py [--seeds 64] [--steps 1000] [--sequential N] [--out DIR] [--json OUT]

`--sequential N` times only the first N sequential runs and scales their total by 64/N
(the runs differ only in their seed); the output says when it did.
"""

from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from pathlib import Path

import jax

from gan_jax import loop
from gan_jax.config import compose


def config(steps: int, seed: int, num_seeds: int):
    overrides = [
        "experiment=none",
        "dataset=ring_2d",
        "logger=none",
        "train.progress_bar=false",
        f"train.steps={steps}",
        "train.batch_size=256",
        "train.steps_per_call=100",
        f"eval.every={steps}",
        f"train.checkpoint_every={steps}",
        f"train.sample_every={steps}",
        "eval.num_samples=2500",
        f"seed={seed}",
        f"train.num_seeds={num_seeds}",
    ]
    return compose(overrides)


def timed_run(cfg, run_dir: Path) -> tuple[float, dict]:
    start = time.perf_counter()
    summary = loop.run(cfg, run_dir)
    return time.perf_counter() - start, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--sequential", type=int, help="time only this many sequential runs and scale")
    parser.add_argument("--out", type=Path, help="write population_benchmark.json into this directory")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()
    logging.getLogger("absl").setLevel(logging.WARNING)
    timed = args.sequential or args.seeds

    with tempfile.TemporaryDirectory() as work:
        population_s, population = timed_run(config(args.steps, 0, args.seeds), Path(work) / "population")
        run_seconds, modes = [], []
        for seed in range(timed):
            seconds, summary = timed_run(config(args.steps, seed, 1), Path(work) / f"seed_{seed}")
            run_seconds.append(seconds)
            modes.append(summary["eval"]["modes_captured"])
    sequential_s = sum(run_seconds) * args.seeds / timed
    population_modes = [r["eval"]["modes_captured"] for r in population["replicas"][:timed]]
    results = {
        "seeds": args.seeds,
        "steps": args.steps,
        "backend": jax.default_backend(),
        "device": str(jax.devices()[0].device_kind),
        "population_seconds": population_s,
        "sequential_seconds": sequential_s,
        "sequential_runs_timed": timed,
        "sequential_run_seconds": run_seconds,
        "ratio": sequential_s / population_s,
        "population_train_seconds": population["train_seconds"],
        "modes_captured_population_vs_sequential": [population_modes, modes],
    }
    scaled = f" (scaled from {timed} timed runs)" if timed < args.seeds else ""
    print(
        f"ring_2d MLP GAN, {args.seeds} seeds x {args.steps} steps, batch 256, on "
        f"{results['backend']} ({results['device']})"
    )
    print(
        f"population (train.num_seeds={args.seeds}): {population_s:.1f} s "
        f"(training {population['train_seconds']:.1f} s)"
    )
    print(
        f"{args.seeds} sequential runs: {sequential_s:.1f} s{scaled}; "
        f"one run median {sorted(run_seconds)[len(run_seconds) // 2]:.2f} s"
    )
    print(f"ratio sequential / population: {results['ratio']:.1f}x")
    print(f"modes captured, replica i vs run with seed i (first {timed}): {population_modes} vs {modes}")
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "population_benchmark.json").write_text(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
