"""Population-based training against random search at equal compute, on grid_2d (MLP) and
Fashion-MNIST (DCGAN).

For each setting the same random population (`train.population={random: N, ...}`, drawn
from `seed`: the same N points on both sides) is trained twice, each side one `gan-train`
process (one vmapped program), with the same steps, batch, evaluations and seed:

    random search  the population as drawn, each member keeping its values to the end
    PBT            the same population with train.pbt.every = eval.every: at every evaluation
                   but the last, the bottom `fraction` copies a top member's whole state and
                   perturbs (x0.8 / x1.2) or resamples its values (Jaderberg et al. 2017)

Both sides evaluate at the same steps (PBT's exploits need them; random search gets the same
evaluations, so the compute is equal, evaluation included) and are compared on the members'
final evaluations: best and median over the members.

    grid_2d         16 members, 2,000 steps, batch 256, non-saturating loss + R1; search over
                    lr (log-uniform 1e-4..1e-2), beta1 (0..0.9), R1 weight (log-uniform 0.01..10);
                    PBT ranks eval.high_quality (--grid-objective: modes_captured, reverse_kl) every
                    250 steps;
                    reported: modes captured (of 25) and high-quality fraction, 2,500 samples
    fashion_mnist   8 members, 300 steps, DCGAN width 16, batch 64, no EMA; search over
                    lr (log-uniform 1e-5..1e-2), beta1 (0..0.9), Lucic et al.'s ranges; PBT ranks
                    eval.fid every 75 steps on 2,000 samples (the shipped classifier's features,
                    against 10,000 test images); the final checkpoints are rescored by gan-eval on
                    10,000 samples

    python experiments/pbt_vs_random_search/reproduce.py --out DIR [--settings grid_2d,fashion_mnist]
        [--grid-members 16] [--grid-steps 2000] [--grid-every 250] [--grid-objective high_quality]
        [--fmnist-members 8] [--fmnist-steps 300] [--fmnist-every 75] [--fmnist-width 16]
        [--fmnist-num-samples 2000] [--final-num-samples 10000] [--seed 0]

Writes DIR/runs/<setting>_{random,pbt}/ (the gan-train run directories, each with its
population.png), DIR/results.json (the commands, every member's start, end values and final
metrics, best / median per side, PBT's lineage and how many of the initial draws the final
members descend from), DIR/table.md and DIR/pbt_vs_random.png (per setting: the objective
over training, every member of both sides, and the PBT run's hyper-parameter trajectories
with its copies marked). A run already finished with the same command is not trained again.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from gan_jax.rundir import write_atomic  # noqa: E402

SIDES = ("random", "pbt")
SIDE_LABELS = {"random": "random search", "pbt": "PBT"}
SIDE_COLOURS = {"random": "tab:blue", "pbt": "tab:orange"}
DIRECTIONS = {"modes_captured": "max", "high_quality": "max", "reverse_kl": "min", "fid": "min"}
SETTINGS = ("grid_2d", "fashion_mnist")
SHORT = {"optim.lr": "lr", "optim.b1": "b1", "penalty.r1.weight": "r1"}


def population_override(members: int, space: dict[str, str]) -> str:
    return "train.population={" + ",".join([f"random:{members}", *(f"{k}:{v}" for k, v in space.items())]) + "}"


def grid_setting(args: argparse.Namespace) -> dict:
    space = {
        "optim.lr": "{low:1e-4,high:1e-2,log:true}",
        "optim.b1": "{low:0.0,high:0.9}",
        "penalty.r1.weight": "{low:0.01,high:10.0,log:true}",
    }
    steps, every = args.grid_steps, args.grid_every
    return {
        "objective": args.grid_objective,
        "metrics": ["modes_captured", "high_quality", "reverse_kl"],
        "members": args.grid_members,
        "steps": steps,
        "every": every,
        "space": space,
        "overrides": [
            "experiment=none",
            "dataset=grid_2d",
            "model=mlp",
            "model.latent_dim=2",
            "optim=adam",
            "optim.b2=0.999",
            "loss=non_saturating",
            "penalty=r1",
            "train.batch_size=256",
            f"train.steps_per_call={min(50, every)}",
            "train.log_every=50",
            "eval.metrics=[modes]",
            "eval.num_samples=2500",
            population_override(args.grid_members, space),
        ],
    }


def fashion_setting(args: argparse.Namespace) -> dict:
    space = {"optim.lr": "{low:1e-5,high:1e-2,log:true}", "optim.b1": "{low:0.0,high:0.9}"}  # Lucic et al.'s
    steps, every, width = args.fmnist_steps, args.fmnist_every, args.fmnist_width
    return {
        "objective": "fid",
        "metrics": ["fid"],
        "members": args.fmnist_members,
        "steps": steps,
        "every": every,
        "space": space,
        "final_num_samples": args.final_num_samples,
        "overrides": [
            "experiment=fashion_mnist_dcgan",  # DCGAN, non-saturating loss, Adam, steps_per_call 1
            f"model.generator.width={width}",
            f"model.discriminator.width={width}",
            "train.batch_size=64",
            "train.ema_decay=null",  # a few hundred steps: G itself is evaluated
            "train.log_every=25",
            "eval.metrics=[fid]",
            f"eval.num_samples={args.fmnist_num_samples}",
            "eval.reference_num_samples=10000",
            population_override(args.fmnist_members, space),
        ],
    }


def side_overrides(setting: dict, side: str, seed: int, run_dir: Path) -> list[str]:
    steps, every, objective = setting["steps"], setting["every"], setting["objective"]
    common = [
        *setting["overrides"],
        f"seed={seed}",
        f"train.steps={steps}",
        f"eval.every={every}",
        f"train.checkpoint_every={steps}",
        "train.keep_checkpoints=1",
        f"train.sample_every={steps}",
        f"objective=eval.{objective}",
        "logger=none",
        "train.progress_bar=false",
        f"hydra.run.dir={run_dir}",
    ]
    if side == "random":
        return common
    return [*common, f"train.pbt.every={every}", f"train.pbt.objective=eval.{objective}"]


def train(setting_name: str, setting: dict, side: str, args: argparse.Namespace) -> tuple[Path, float | None, bool]:
    """One gan-train process; returns its run directory, its wall seconds and whether it trained now
    (a run this script finished before with the same command is kept)."""
    run_dir = args.out / "runs" / f"{setting_name}_{side}"
    command = [sys.executable, "-m", "gan_jax.train", *side_overrides(setting, side, args.seed, run_dir)]
    saved = run_dir / "command.json"
    summary = run_dir / "summary.json"
    if (
        summary.exists()
        and saved.exists()
        and json.loads(saved.read_text()) == command[1:]
        and json.loads(summary.read_text()).get("status") == "finished"
    ):
        print(f"[{setting_name} {side}] finished before, not trained again: {run_dir}", flush=True)
        timed = run_dir / "wall_seconds.json"
        return run_dir, json.loads(timed.read_text()) if timed.exists() else None, False
    if run_dir.exists():
        shutil.rmtree(run_dir)  # an unfinished or differently configured run of this script
    run_dir.mkdir(parents=True)
    write_atomic(saved, json.dumps(command[1:], indent=1) + "\n")
    print(f"[{setting_name} {side}] gan-train {' '.join(command[3:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=False)  # a failure is read back from summary.json
    seconds = round(time.perf_counter() - started, 1)
    write_atomic(run_dir / "wall_seconds.json", f"{seconds}\n")
    return run_dir, seconds, True


def rescore(run_dir: Path, steps: int, num_samples: int, reuse: bool) -> list[float | None] | None:
    """Every member's FID at the final checkpoint on `num_samples` samples (gan-eval; `reuse`:
    an entry eval.json already holds for that step and N), or None."""
    if not (reuse and _rescored(run_dir, steps, num_samples)):
        command = [sys.executable, "-m", "gan_jax.score", str(run_dir), "--num-samples", str(num_samples)]
        print(f"[rescore] gan-eval {' '.join(command[3:])} --metrics fid", flush=True)
        subprocess.run([*command, "--metrics", "fid"], check=False)
    return _rescored(run_dir, steps, num_samples)


def _rescored(run_dir: Path, steps: int, num_samples: int) -> list[float | None] | None:
    path = run_dir / "eval.json"
    if not path.exists():
        return None
    entries = [
        e
        for e in json.loads(path.read_text()).values()
        if isinstance(e, dict) and e.get("step") == steps and e.get("num_samples") == num_samples
    ]
    if not entries:
        return None
    latest = max(entries, key=lambda e: e.get("scored_at", 0))
    by_member = {r.get("member"): r.get("fid") for r in latest["replicas"]}
    return [by_member.get(m) for m in sorted(by_member)]


def read_rows(run_dir: Path) -> list[dict]:
    path = run_dir / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def best_of(values: list, direction: str) -> float | None:
    defined = [v for v in values if v is not None]
    if not defined:
        return None
    return max(defined) if direction == "max" else min(defined)


def median_of(values: list) -> float | None:
    defined = [v for v in values if v is not None]
    return float(statistics.median(defined)) if defined else None


def ancestry(members: int, lineage: list[dict]) -> list[int]:
    """Which initial draw each final member's state descends from (an exploit's sources are
    read from the state before that step's copies)."""
    origin = list(range(members))
    for step in sorted({e["step"] for e in lineage}):
        before = list(origin)
        for event in (e for e in lineage if e["step"] == step):
            origin[event["member"]] = before[event["source"]]
    return origin


def collect_side(setting: dict, run_dir: Path, seconds: float | None) -> dict:
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.exists() else {"status": "no summary.json"}
    replicas = summary.get("replicas", [])
    population = summary.get("population", {})
    members = [
        {
            "member": r.get("member"),
            "start": start.get("start"),
            "end": r.get("hyperparams"),
            **{k: (r.get("eval") or {}).get(k) for k in setting["metrics"]},
        }
        for r, start in zip(replicas, population.get("members", [{}] * len(replicas)), strict=False)
    ]
    result = {
        "run_dir": str(run_dir),
        "status": summary.get("status"),
        "error": summary.get("error"),
        "steps_completed": summary.get("steps_completed"),
        "wall_seconds": seconds,
        "train_seconds": summary.get("train_seconds"),
        "members": members,
    }
    for key in setting["metrics"]:
        values = [m[key] for m in members]
        result[key] = {"best": best_of(values, DIRECTIONS[key]), "median": median_of(values)}
    objective = setting["objective"]
    scored = [m for m in members if m[objective] is not None]
    if scored:
        best = (max if DIRECTIONS[objective] == "max" else min)(scored, key=lambda m: m[objective])
        result["best_member"] = best
    if "pbt" in population:
        lineage = population["pbt"]["lineage"]
        origin = ancestry(len(members), lineage)
        if "best_member" in result:
            result["best_member"]["origin"] = origin[result["best_member"]["member"]]
        result["pbt"] = {
            **{k: v for k, v in population["pbt"].items() if k != "lineage"},
            "copies": len(lineage),
            "rounds": len({e["step"] for e in lineage}),
            "final_origin": origin,
            "distinct_origins": len(set(origin)),
            "lineage": lineage,
        }
    return result


def never_copied(setting: dict, result: dict) -> dict:
    """The members PBT never overwrote, and whether each ended exactly as its random-search twin
    (same seed, values and data: it should, bit for bit, which checks the pairing)."""
    copied = {e["member"] for e in (result["pbt"].get("pbt") or {}).get("lineage", [])}
    twins = zip(result["random"]["members"], result["pbt"]["members"], strict=False)
    same = {a["member"]: all(a[k] == b[k] for k in setting["metrics"]) for a, b in twins if a["member"] not in copied}
    return {"members": sorted(same), "identical": all(same.values())}


def fmt(value: float | None, key: str) -> str:
    if value is None:
        return "-"
    if key == "high_quality":
        return f"{100 * value:.1f}"
    if key == "modes_captured":
        return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
    return f"{value:.3f}" if key == "reverse_kl" else f"{value:.1f}"


def values_text(values: dict | None) -> str:
    if not values:
        return "-"
    return ", ".join(f"{SHORT.get(k, k)} {v:.3g}" for k, v in values.items())


COLUMN_NAMES = {
    "modes_captured": "modes (of 25)",
    "high_quality": "high-quality %",
    "reverse_kl": "reverse KL",
    "fid": "FID",
    "fid_final": "FID",
}


def setting_table(name: str, setting: dict, result: dict) -> list[str]:
    objective = setting["objective"]
    metrics = list(setting["metrics"])
    n_eval = setting.get("eval_num_samples")
    n_final = setting.get("final_num_samples")
    headers = []
    for key in metrics:
        label = COLUMN_NAMES[key] + (f", N={n_eval}" if key == "fid" and n_eval else "")
        headers += [f"best {label}", f"median {label}"]
    if n_final:
        headers += [f"best FID, N={n_final}", f"median FID, N={n_final}"]
    headers += [f"best member by {objective}: its values", "seconds (wall / train)"]
    lines = [
        f"### {name}: {setting['members']} members, {setting['steps']} steps, objective eval.{objective} "
        f"({DIRECTIONS[objective]}), evaluations every {setting['every']} steps",
        "",
        "| side | " + " | ".join(headers) + " |",
        "|---|" + "---|" * len(headers),
    ]
    for side in SIDES:
        r = result[side]
        cells = []
        for key in metrics:
            cells += [fmt(r[key]["best"], key), fmt(r[key]["median"], key)]
        if n_final:
            final = r.get("fid_final") or {}
            cells += [fmt(final.get("best"), "fid"), fmt(final.get("median"), "fid")]
        best = r.get("best_member")
        if best is None:
            cells.append("-")
        elif "origin" in best:  # PBT: its state descends from draw `origin`; its values moved
            draw = r["members"][best["origin"]]["start"]
            cells.append(
                f"member {best['member']}, from draw {best['origin']} ({values_text(draw)}), "
                f"ends at {values_text(best['end'])}"
            )
        else:
            cells.append(f"member {best['member']}: {values_text(best['start'])}")
        train_seconds = r["train_seconds"]
        cells.append(
            f"{r['wall_seconds'] if r['wall_seconds'] is not None else '-'} / "
            f"{round(train_seconds, 1) if train_seconds is not None else '-'}"
        )
        status = "" if r["status"] == "finished" else f" ({r['status']})"
        lines.append(f"| {SIDE_LABELS[side]}{status} | " + " | ".join(cells) + " |")
    pbt = result["pbt"].get("pbt")
    if pbt:
        lines += [
            "",
            f"PBT: {pbt['copies']} {'copy' if pbt['copies'] == 1 else 'copies'} over {pbt['rounds']} exploit "
            f"rounds (fraction {pbt['fraction']}, "
            f"perturb {pbt['perturb']}, resample probability {pbt['resample_probability']}); the "
            f"{setting['members']} final members descend from {pbt['distinct_origins']} of the initial draws "
            f"({', '.join(str(o) for o in sorted(set(pbt['final_origin'])))}).",
        ]
        twins = result.get("never_copied")
        if twins and twins["members"]:
            same = (
                "each ends exactly as its random-search twin"
                if twins["identical"]
                else "some do NOT end as their random-search twins (results.json: never_copied)"
            )
            lines.append(f"Members PBT never overwrote: {', '.join(map(str, twins['members']))}; {same}.")
    return [*lines, ""]


def table(results: dict, settings: dict) -> str:
    lines = [
        "Best and median over the members' final evaluations; both sides start from the same random draws "
        "(same seed), train the same steps and evaluate at the same steps.",
        "",
    ]
    for name in results:
        lines += setting_table(name, settings[name], results[name])
    return "\n".join(lines)


def trajectories(pbt: dict, key: str) -> dict[int, list[tuple[int, float]]]:
    """The PBT run's (step, value) of `key` per member: its start at step 0, its training rows'
    population/<key>, and each copy's explored value at the exploit step (after that step's row)."""
    column = f"population/{key}"
    points: dict[int, list[tuple[int, int, float]]] = {m["member"]: [(0, 0, m["start"][key])] for m in pbt["members"]}
    for r in read_rows(Path(pbt["run_dir"])):
        if "d_loss" in r and column in r:
            points[r["member"]].append((r["step"], 0, r[column]))
    for event in (pbt.get("pbt") or {}).get("lineage", []):
        points[event["member"]].append((event["step"], 1, event["after"][key]))
    return {m: [(step, value) for step, _, value in sorted(p)] for m, p in points.items()}


def figure(results: dict, settings: dict, path: Path) -> Path:
    """Per setting: the objective over training (every member of both sides), then the PBT
    run's values of each key per member (a dot: a copy's explored value at its exploit)."""
    names = list(results)
    columns = 1 + max(len(settings[n]["space"]) for n in names)
    fig, axes = plt.subplots(len(names), columns, figsize=(3.8 * columns, 3.1 * len(names)), squeeze=False)
    colours = plt.get_cmap("tab20")
    for row, name in zip(axes, names, strict=True):
        setting, objective = settings[name], settings[name]["objective"]
        pbt = results[name]["pbt"]
        exploit_steps = sorted({e["step"] for e in (pbt.get("pbt") or {}).get("lineage", [])})
        ax = row[0]
        for side, width in (("random", 2.2), ("pbt", 0.9)):
            by_member: dict[int, list[tuple[int, float]]] = {}
            for r in read_rows(Path(results[name][side]["run_dir"])):
                if r.get(objective) is not None and "d_loss" not in r:
                    by_member.setdefault(r["member"], []).append((r["step"], r[objective]))
            for index, points in sorted(by_member.items()):
                steps, values = zip(*sorted(points), strict=True)
                label = SIDE_LABELS[side] if index == min(by_member) else None
                ax.plot(steps, values, color=SIDE_COLOURS[side], lw=width, alpha=0.45, label=label, marker=".", ms=3)
        for step in exploit_steps:
            ax.axvline(step, color="0.85", lw=0.6, zorder=0)
        ax.set_title(f"{name}: eval.{objective} per member", fontsize=9)
        ax.set_xlabel("step")
        if objective == "fid":
            ax.set_yscale("log")
        ax.legend(fontsize=7)
        for ax, key in zip(row[1:], setting["space"], strict=False):
            for index, points in sorted(trajectories(pbt, key).items()):
                steps, values = zip(*points, strict=True)
                ax.plot(steps, values, color=colours(index % 20), lw=1.0, drawstyle="steps-post")
            for event in (pbt.get("pbt") or {}).get("lineage", []):
                colour = colours(event["member"] % 20)
                ax.scatter([event["step"]], [event["after"][key]], color=colour, s=10, zorder=3)
            for step in exploit_steps:
                ax.axvline(step, color="0.85", lw=0.6, zorder=0)
            if key != "optim.b1":
                ax.set_yscale("log")
            ax.set_title(f"PBT: {key} per member", fontsize=9)
            ax.set_xlabel("step")
        for ax in row[1 + len(setting["space"]) :]:
            ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help="comma-separated subset of grid_2d,fashion_mnist"
    )
    parser.add_argument("--seed", type=int, default=0, help="the random draws' (and every member's) seed")
    parser.add_argument("--grid-members", type=int, default=16)
    parser.add_argument("--grid-steps", type=int, default=2000)
    parser.add_argument("--grid-every", type=int, default=250, help="evaluations (and PBT rounds) every this many")
    parser.add_argument(
        "--grid-objective", default="high_quality", choices=["high_quality", "modes_captured", "reverse_kl"]
    )
    parser.add_argument("--fmnist-members", type=int, default=8)
    parser.add_argument("--fmnist-steps", type=int, default=300)
    parser.add_argument("--fmnist-every", type=int, default=75, help="evaluations (and PBT rounds) every this many")
    parser.add_argument("--fmnist-width", type=int, default=16)
    parser.add_argument("--fmnist-num-samples", type=int, default=2000, help="samples per in-training FID")
    parser.add_argument(
        "--final-num-samples", type=int, default=10000, help="the final checkpoints' FID rescored on these; 0: not"
    )
    args = parser.parse_args()
    chosen = args.settings.split(",")
    if unknown := set(chosen) - set(SETTINGS):
        parser.error(f"unknown settings {', '.join(sorted(unknown))}; valid: {', '.join(SETTINGS)}")
    for every, steps, flag in (
        (args.grid_every, args.grid_steps, "grid"),
        (args.fmnist_every, args.fmnist_steps, "fmnist"),
    ):
        if every >= steps or steps % every:
            parser.error(f"--{flag}-every {every} must divide --{flag}-steps {steps} (and be smaller)")
    args.out.mkdir(parents=True, exist_ok=True)
    build = {"grid_2d": grid_setting, "fashion_mnist": fashion_setting}
    settings = {name: build[name](args) for name in SETTINGS if name in chosen}
    if "fashion_mnist" in settings:
        settings["fashion_mnist"]["eval_num_samples"] = args.fmnist_num_samples
    results: dict[str, dict] = {}
    for name, setting in settings.items():
        results[name] = {}
        for side in SIDES:
            run_dir, seconds, retrained = train(name, setting, side, args)
            results[name][side] = side_result = collect_side(setting, run_dir, seconds)
            side_result["command"] = ["gan-train", *json.loads((run_dir / "command.json").read_text())[2:]]
            if setting.get("final_num_samples") and side_result["status"] == "finished":
                fids = rescore(run_dir, setting["steps"], setting["final_num_samples"], reuse=not retrained)
                if fids is not None:
                    for member, fid in zip(side_result["members"], fids, strict=False):
                        member["fid_final"] = fid
                    side_result["fid_final"] = {"best": best_of(fids, "min"), "median": median_of(fids)}
        starts = [[m["start"] for m in results[name][side]["members"]] for side in SIDES]
        results[name]["same_initial_draws"] = starts[0] == starts[1]
        results[name]["never_copied"] = never_copied(setting, results[name])
        if not results[name]["same_initial_draws"]:
            print(f"WARNING: {name}: the two sides' initial draws differ", flush=True)
    settings_out = {n: {k: v for k, v in s.items() if k != "overrides"} for n, s in settings.items()}
    write_atomic(
        args.out / "results.json",
        json.dumps(
            {"args": {k: str(v) for k, v in vars(args).items()}, "settings": settings_out, "results": results}, indent=1
        )
        + "\n",
    )
    text = table(results, settings)
    write_atomic(args.out / "table.md", text)
    figure(results, settings, args.out / "pbt_vs_random.png")
    for name in results:
        population_png = Path(results[name]["pbt"]["run_dir"]) / "population.png"
        if population_png.exists():
            shutil.copyfile(population_png, args.out / f"population_{name}_pbt.png")
    print(text)


if __name__ == "__main__":
    main()
