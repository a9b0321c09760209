"""Populations in one program against the same runs one after another.

Two modes:

--mode seeds (the default): 64 seeds of the ring_2d MLP GAN, one population run against 64
sequential runs. Both sides go through `gan_jax.loop.run` as `gan-train` would (compilation,
evaluation, metrics, checkpoints, figures), in this one process, so the figures exclude
Python's and JAX's start-up, which would add several seconds to each sequential run launched
as its own `gan-train`. The population is `train.num_seeds=64`; the sequential runs are
`seed=0 .. 63` with `train.num_seeds=1`, the same steps each.

    python experiments/throughput/population.py [--seeds 64] [--steps 1000] [--sequential N] [--out DIR] [--json OUT]

`--sequential N` times only the first N sequential runs and scales their total by 64/N
(the runs differ only in their seed); the output says when it did.

--mode hyper: a 16-member hyper-parameter population (`train.population={...}`, one
`gan-train`) against the same 16 settings as a Hydra sweep (`gan-train -m ...`, the basic
launcher: the jobs one after another in one process), for each setting of --settings:

    ring_2d   the MLP GAN (3 x 128, batch 256) with R1, optim.lr x penalty.r1.weight (4 x 4)
    dcgan     experiment=fashion_mnist_dcgan at width 16, batch 64, optim.lr x loss (4 x 4)

Both sides are real `gan-train` processes, timed wall-clock end to end (start-up, data,
compilation, training, evaluation, checkpoints and figures included), the population first,
then the sweep, setting after setting in this one script run; summary.json's train_seconds
(the training loop, its first call's compilation and its evaluations included) is reported
beside. The persistent compilation cache is off on both sides. Before the DCGAN setting's
timings, an untimed one-step run prepares Fashion-MNIST (Debian's dataset-fashion-mnist, by
itself) and caches the evaluation's reference features, so neither side pays for them; with
neither the Debian files, a prepared copy in TFDS's data directory, nor --data-dir, a small
generated Fashion-MNIST-like set (tests/idx_files.py) stands in, and the output says so.

    python experiments/throughput/population.py --mode hyper [--settings ring_2d,dcgan] \
        [--steps N] [--dcgan-steps N] [--ring-grid 'optim.lr=1e-4,3e-4 penalty.r1.weight=1,10'] \
        [--dcgan-grid 'optim.lr=1e-4,2e-4 loss=non_saturating,hinge'] [--ring-override KEY=VALUE ...] \
        [--dcgan-override KEY=VALUE ...] [--data-dir DIR] [--keep-runs DIR] [--json OUT]

A grid is written as the sweep's own overrides (`KEY=V1,V2,...`, space-separated; `loss=`
is the loss group, `loss.name` in the population); its product is the members. `--steps`
sets every setting's steps (defaults: 500 ring_2d, 100 DCGAN), `--dcgan-steps` DCGAN's alone;
the overrides are added to both sides of their setting.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


# --- --mode seeds: in-process loop.run, a seed population against sequential runs ---------


def config(steps: int, seed: int, num_seeds: int):
    from gan_jax.config import compose

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
    from gan_jax import loop

    start = time.perf_counter()
    summary = loop.run(cfg, run_dir)
    return time.perf_counter() - start, summary


def seeds_mode(args) -> dict:
    import jax

    logging.getLogger("absl").setLevel(logging.WARNING)
    steps = args.steps or 1000
    timed = args.sequential or args.seeds

    with tempfile.TemporaryDirectory() as work:
        population_s, population = timed_run(config(steps, 0, args.seeds), Path(work) / "population")
        run_seconds, modes = [], []
        for seed in range(timed):
            seconds, summary = timed_run(config(steps, seed, 1), Path(work) / f"seed_{seed}")
            run_seconds.append(seconds)
            modes.append(summary["eval"]["modes_captured"])
    sequential_s = sum(run_seconds) * args.seeds / timed
    population_modes = [r["eval"]["modes_captured"] for r in population["replicas"][:timed]]
    results = {
        "seeds": args.seeds,
        "steps": steps,
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
        f"ring_2d MLP GAN, {args.seeds} seeds x {steps} steps, batch 256, on {results['backend']} ({results['device']})"
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
    return results


# --- --mode hyper: a hyper-parameter population against a Hydra sweep, as gan-train processes


@dataclass(frozen=True)
class Setting:
    name: str
    title: str
    steps: int
    overrides: tuple[str, ...]  # both sides
    grid: tuple[tuple[str, tuple[str, ...]], ...]  # (sweep key, values), the sweep's own syntax
    metric: str  # a summary eval key shown per member on both sides

    @property
    def members(self) -> int:
        return math.prod(len(values) for _, values in self.grid)


RING_GRID = "optim.lr=1e-4,3e-4,1e-3,3e-3 penalty.r1.weight=0.1,1,10,100"
DCGAN_GRID = "optim.lr=5e-5,1e-4,2e-4,4e-4 loss=non_saturating,hinge,lsgan,wgan"
RING_STEPS, DCGAN_STEPS = 500, 100


def ring_overrides(steps: int) -> list[str]:
    return [
        "experiment=none",
        "dataset=ring_2d",
        "penalty=r1",
        "logger=none",
        "train.progress_bar=false",
        f"train.steps={steps}",
        "train.batch_size=256",
        f"train.steps_per_call={min(steps, 100)}",
        f"train.log_every={max(steps // 10, 1)}",
        f"eval.every={steps}",
        f"train.checkpoint_every={steps}",
        f"train.sample_every={steps}",
        "eval.num_samples=2500",
    ]


def dcgan_overrides(steps: int) -> list[str]:
    return [
        "experiment=fashion_mnist_dcgan",  # steps_per_call=1, EMA from step 500 (G itself before)
        "logger=none",
        "train.progress_bar=false",
        "model.generator.width=16",
        "model.discriminator.width=16",
        "train.batch_size=64",
        f"train.steps={steps}",
        f"train.log_every={max(steps // 10, 1)}",
        f"eval.every={steps}",
        f"train.checkpoint_every={steps}",
        f"train.sample_every={steps}",
        "eval.num_samples=1000",
        "dataset.download=false",
    ]


def parse_grid(text: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """'optim.lr=1e-4,3e-4 loss=hinge,wgan' -> (('optim.lr', ('1e-4', '3e-4')), ('loss', ('hinge', 'wgan')))."""
    grid = []
    for item in text.split():
        key, sep, values = item.partition("=")
        if not sep or not values:
            raise SystemExit(f"grid item {item!r}: expected KEY=V1,V2,...")
        grid.append((key, tuple(values.split(","))))
    if not grid:
        raise SystemExit("an empty grid")
    return tuple(grid)


def population_key(key: str) -> str:
    return "loss.name" if key == "loss" else key


def population_override(grid) -> str:
    """The grid as train.population={key:[v, ...], ...}: every combination, in the sweep's order."""
    axes = ",".join(f"{population_key(key)}:[{','.join(values)}]" for key, values in grid)
    return f"train.population={{{axes}}}"


def normalised(value) -> object:
    """A setting's value as comparable between a summary's float and an override's text."""
    try:
        return float(f"{float(value):.6g}")
    except (TypeError, ValueError):
        return str(value)


def gan_train() -> list[str]:
    script = Path(sys.executable).parent / "gan-train"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gan_jax.train"]


def child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    env["JAX_ENABLE_COMPILATION_CACHE"] = "false"  # neither side reuses an earlier run's programs
    return env


def launch(args: list[str], log: Path, summaries: tuple[Path, str] | None = None) -> tuple[float, int]:
    """Runs `gan-train ARGS`, its output into `log`: the wall-clock seconds it took and its exit
    code. A failure is fatal unless `summaries` (a folder, a glob) then finds a summary.json: a run that
    diverged, a sweep with a failed job, which the comparison reports."""
    command = gan_train() + args
    print(f"  $ {shlex.join(['gan-train', *args])}", file=sys.stderr, flush=True)
    start = time.perf_counter()
    with log.open("w") as out:
        finished = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=child_env(), cwd=ROOT)
    seconds = time.perf_counter() - start
    if finished.returncode != 0 and not (summaries and any(summaries[0].glob(summaries[1]))):
        tail = "".join(log.read_text().splitlines(keepends=True)[-40:])
        raise SystemExit(f"gan-train failed (exit {finished.returncode}; log {log}):\n{tail}")
    return seconds, finished.returncode


def sweep_point(job_dir: Path, keys: list[str]) -> tuple:
    """A sweep job's values of the grid's keys, from the overrides Hydra recorded."""
    given = {}
    for line in (job_dir / ".hydra" / "overrides.yaml").read_text().splitlines():
        key, _, value = line.removeprefix("- ").partition("=")
        given[key] = value
    return tuple(normalised(given[key]) for key in keys)


def compare_setting(setting: Setting, work: Path, data_overrides: list[str]) -> dict:
    common = list(setting.overrides) + data_overrides
    keys = [key for key, _ in setting.grid]
    print(f"== {setting.title}: {setting.members} members x {setting.steps} steps", file=sys.stderr, flush=True)

    population_dir = work / setting.name / "population"
    population_s, population_exit = launch(
        [*common, population_override(setting.grid), f"hydra.run.dir={population_dir}"],
        work / setting.name / "population.log",
        summaries=(population_dir, "summary.json"),
    )
    population = json.loads((population_dir / "summary.json").read_text())

    sweep_dir = work / setting.name / "sweep"
    sweep_s, sweep_exit = launch(
        ["-m", *common, *(f"{key}={','.join(values)}" for key, values in setting.grid), f"hydra.sweep.dir={sweep_dir}"],
        work / setting.name / "sweep.log",
        summaries=(sweep_dir, "**/summary.json"),
    )
    jobs = {}
    # rglob: a job directory's name holds its overrides, so a path among them nests it
    for summary_file in sorted(sweep_dir.rglob("summary.json")):
        jobs[sweep_point(summary_file.parent, keys)] = json.loads(summary_file.read_text())

    problems = []
    if population_exit:  # one member's non-finite value stops the whole population
        problems.append(f"the population exited {population_exit}: {population['status']}, {population['error']}")
    if sweep_exit:
        problems.append(f"the sweep exited {sweep_exit} (see {work / setting.name / 'sweep.log'})")
    if len(jobs) != setting.members:
        problems.append(f"the sweep left {len(jobs)} summaries for {setting.members} settings")
    if len(population["replicas"]) != setting.members:
        problems.append(f"the population has {len(population['replicas'])} members for {setting.members} settings")
    if population["steps_completed"] != setting.steps:
        problems.append(f"the population completed {population['steps_completed']} of {setting.steps} steps")
    members = []
    for replica in population["replicas"]:
        point = tuple(normalised(replica["hyperparams"][population_key(key)]) for key in keys)
        job = jobs.get(point)
        if job is None:
            problems.append(f"no sweep job for member {replica['member']} ({point})")
            continue
        if job["steps_completed"] != setting.steps or job["status"] != "finished":
            problems.append(f"sweep job {point}: {job['status']}, {job['steps_completed']} of {setting.steps} steps")
        members.append(
            {
                "member": replica["member"],
                "point": dict(zip(keys, point, strict=True)),
                "population_" + setting.metric: replica.get("eval", {}).get(setting.metric),
                "sweep_" + setting.metric: job.get("eval", {}).get(setting.metric),
                "sweep_train_seconds": job["train_seconds"],
            }
        )
    member_steps = setting.members * setting.steps
    sweep_train_s = sum(job["train_seconds"] for job in jobs.values())
    return {
        "setting": setting.name,
        "title": setting.title,
        "members": setting.members,
        "steps": setting.steps,
        "grid": {key: list(values) for key, values in setting.grid},
        "overrides": common,
        "backend": population.get("backend"),
        "population_seconds": population_s,
        "sweep_seconds": sweep_s,
        "ratio": sweep_s / population_s,
        "population_train_seconds": population["train_seconds"],
        "sweep_train_seconds": sweep_train_s,
        "population_ms_per_member_step": 1e3 * population_s / member_steps,
        "sweep_ms_per_member_step": 1e3 * sweep_s / member_steps,
        "population_train_ms_per_member_step": 1e3 * population["train_seconds"] / member_steps,
        "sweep_train_ms_per_member_step": 1e3 * sweep_train_s / member_steps,
        "metric": setting.metric,
        "per_member": members,
        "problems": problems,
    }


def fashion_mnist_data(args, work: Path) -> tuple[list[str], str]:
    """The dataset overrides of the DCGAN setting, and where its data comes from."""
    if args.data_dir:
        return [f"dataset.data_dir={args.data_dir}"], f"--data-dir {args.data_dir}"
    tfds_dir = Path(os.environ.get("TFDS_DATA_DIR") or Path.home() / "tensorflow_datasets")
    if any((tfds_dir / "fashion_mnist").glob("*/dataset_info.json")):
        return [], f"prepared in {tfds_dir}"
    if all((DEBIAN_FASHION_MNIST / f"{name}-idx{d}-ubyte.gz").is_file() for name, d in _IDX):
        return [], f"Debian's {DEBIAN_FASHION_MNIST}, prepared into {tfds_dir}"
    # Neither: a small generated Fashion-MNIST-like set, prepared in a process of its own
    # (this one keeps off the accelerator, which the gan-train processes need whole).
    data_dir = work / "tfds"
    code = (
        "import sys; from pathlib import Path; sys.path.insert(0, sys.argv[1]);"
        "from idx_files import write_fashion_mnist_like; from gan_jax.data import images;"
        "import tensorflow_datasets as tfds; tfds.disable_progress_bar();"
        "source = write_fashion_mnist_like(Path(sys.argv[2]) / 'idx', train=4096, test=1024);"
        "images.prepare_fashion_mnist_from_debian(Path(sys.argv[2]), source, counts=None)"
    )
    print(f"== no Fashion-MNIST here: preparing a generated stand-in in {data_dir}", file=sys.stderr, flush=True)
    with (work / "tfds_prepare.log").open("w") as log:
        command = [sys.executable, "-c", code, str(ROOT / "tests"), str(data_dir)]
        subprocess.run(command, check=True, env=child_env(), stdout=log, stderr=subprocess.STDOUT)
    # its reference features in the scratch directory too, not in the user's cache
    overrides = [f"dataset.data_dir={data_dir}", "eval.reference_num_samples=null", f"eval.cache_dir={work / 'cache'}"]
    return overrides, "a generated Fashion-MNIST-like set (4,096 train, 1,024 test images; no real data here)"


_IDX = (("train-images", 3), ("train-labels", 1), ("t10k-images", 3), ("t10k-labels", 1))


def warm_up_dcgan(setting: Setting, data_overrides: list[str], work: Path) -> float:
    """One untimed step with an evaluation: the data prepared, the reference features cached."""
    print("== DCGAN warm-up (untimed): Fashion-MNIST, reference features", file=sys.stderr, flush=True)
    one_step = [
        "train.steps=1",
        "train.log_every=1",
        "eval.every=1",
        "train.checkpoint_every=1",
        "train.sample_every=1",
    ]
    replaced = {override.partition("=")[0] for override in one_step}
    kept = [o for o in setting.overrides if o.partition("=")[0] not in replaced]
    args = [*kept, *data_overrides, *one_step, f"hydra.run.dir={work / 'dcgan' / 'warm_up'}"]
    return launch(args, work / "dcgan" / "warm_up.log")[0]


def hyper_settings(args) -> list[Setting]:
    ring_steps = args.steps or RING_STEPS
    dcgan_steps = args.dcgan_steps or args.steps or DCGAN_STEPS
    available = {
        "ring_2d": Setting(
            "ring_2d",
            "ring_2d MLP GAN + R1",
            ring_steps,
            tuple(ring_overrides(ring_steps) + args.ring_override),
            parse_grid(args.ring_grid),
            "modes_captured",
        ),
        "dcgan": Setting(
            "dcgan",
            "Fashion-MNIST DCGAN",
            dcgan_steps,
            tuple(dcgan_overrides(dcgan_steps) + args.dcgan_override),
            parse_grid(args.dcgan_grid),
            "fid",
        ),
    }
    chosen = [name.strip() for name in args.settings.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in available]
    if unknown:
        raise SystemExit(f"--settings: unknown {unknown}; choose from {list(available)}")
    return [available[name] for name in chosen]


def grid_label(grid) -> str:
    return " x ".join(f"{key} ({len(values)})" for key, values in grid)


def hyper_mode(args) -> dict:
    settings = hyper_settings(args)
    with tempfile.TemporaryDirectory() as scratch:
        work = args.keep_runs or Path(scratch)
        for setting in settings:
            if (work / setting.name).exists():  # gan-train would resume the runs found there
                raise SystemExit(f"{work / setting.name} exists: --keep-runs wants a fresh directory")
            (work / setting.name).mkdir(parents=True)
        rows, data_source, warm_up_s = [], None, None
        for setting in settings:
            data_overrides: list[str] = []
            if setting.name == "dcgan":
                data_overrides, data_source = fashion_mnist_data(args, work)
                warm_up_s = warm_up_dcgan(setting, data_overrides, work)
            rows.append(compare_setting(setting, work, data_overrides))

    backend = rows[0]["backend"] if rows else None
    print(
        f"hyper-parameter population (one gan-train) against the same settings as a Hydra sweep "
        f"(gan-train -m, basic launcher), wall-clock end to end, on {backend}"
    )
    header = (
        f"{'setting':<22} {'grid':<38} {'steps':>5} {'population s':>12} {'sweep s':>9} {'ratio':>6} "
        f"{'pop train s':>11} {'sweep train s':>13} {'pop ms/m-step':>13} {'sweep ms/m-step':>15}"
    )
    print(header)
    print("-" * len(header))
    for row in rows:
        grid = {key: tuple(values) for key, values in row["grid"].items()}
        print(
            f"{row['title']:<22} {grid_label(grid.items()):<38} {row['steps']:>5} "
            f"{row['population_seconds']:>12.1f} {row['sweep_seconds']:>9.1f} {row['ratio']:>5.2f}x "
            f"{row['population_train_seconds']:>11.1f} {row['sweep_train_seconds']:>13.1f} "
            f"{row['population_ms_per_member_step']:>13.2f} {row['sweep_ms_per_member_step']:>15.2f}"
        )
    print(
        "ratio = sweep s / population s; train s = summary.json's train_seconds (the training loop with its "
        "first call's compilation and evaluations; the sweep's summed over its jobs); ms/m-step = wall-clock "
        "ms per member-step"
    )
    for row in rows:
        metric = row["metric"]
        shown = [(m[f"population_{metric}"], m[f"sweep_{metric}"]) for m in row["per_member"]]
        print(
            f"{row['title']}: {metric} per member, population / sweep job: "
            + " ".join(f"{_fmt(p)}/{_fmt(s)}" for p, s in shown)
        )
        for problem in row["problems"]:
            print(f"  WARNING {row['title']}: {problem}")
    if data_source:
        print(f"Fashion-MNIST: {data_source}; untimed warm-up run {warm_up_s:.1f} s")
    return {"mode": "hyper", "backend": backend, "fashion_mnist": data_source, "settings": rows}


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=["seeds", "hyper"], default="seeds")
    parser.add_argument("--seeds", type=int, default=64, help="seeds mode: the population's seeds")
    parser.add_argument(
        "--steps",
        type=int,
        help=f"training steps (seeds mode: 1000; hyper mode: every setting's, else {RING_STEPS} ring_2d, "
        f"{DCGAN_STEPS} DCGAN)",
    )
    parser.add_argument("--sequential", type=int, help="seeds mode: time only this many sequential runs and scale")
    parser.add_argument("--settings", default="ring_2d,dcgan", help="hyper mode: ring_2d, dcgan or both")
    parser.add_argument("--dcgan-steps", type=int, help="hyper mode: DCGAN's steps")
    parser.add_argument("--ring-grid", default=RING_GRID, help=f"hyper mode, sweep syntax (default {RING_GRID!r})")
    parser.add_argument("--dcgan-grid", default=DCGAN_GRID, help=f"hyper mode, sweep syntax (default {DCGAN_GRID!r})")
    parser.add_argument("--ring-override", action="append", default=[], help="hyper mode: added to both ring_2d sides")
    parser.add_argument("--dcgan-override", action="append", default=[], help="hyper mode: added to both DCGAN sides")
    parser.add_argument("--data-dir", help="hyper mode: a TFDS data_dir holding fashion_mnist")
    parser.add_argument("--keep-runs", type=Path, help="hyper mode: keep the run directories and logs here")
    parser.add_argument("--out", type=Path, help="write population_benchmark.json into this directory")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args()

    results = hyper_mode(args) if args.mode == "hyper" else seeds_mode(args)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "population_benchmark.json").write_text(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
