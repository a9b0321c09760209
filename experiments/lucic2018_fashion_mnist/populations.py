"""The Lucic-style study's settings trained as hyper-parameter populations, not one job each.

reproduce.py trains every (loss, setting) as a job of a Hydra sweep. Here the same settings
(read from a study's results.json, by default the committed one) become populations
(`train.population`, a list of points): what a population may vary (the loss among the
unpenalised losses, Adam's lr and beta1, a penalty's weight) varies inside one program, and
what changes the program (the penalty and D's normalisation of wgan_gp and dragan, the D
steps per G step) splits them into one gan-train run each:

    unpenalised_d1   minimax, non_saturating, lsgan, wgan, hinge, relativistic x their d_steps=1 settings
    unpenalised_d5   the same x their d_steps=5 settings
    wgan_gp_d1, wgan_gp_d5, dragan_d1, dragan_d5

    python experiments/lucic2018_fashion_mnist/populations.py --out DIR [--programs unpenalised_d1,...]
        [--results experiments/lucic2018_fashion_mnist/results.json] [--steps 600] [--width 16]

Writes DIR/populations/<program>/ (a run directory each, gan-compare reads it),
DIR/populations.json (every member: its job in the sweep, its FID there and here, each
program's wall time) and DIR/populations.md (the table beside the sweep's). Programs run by
an earlier call into the same DIR, at the same scale, stay in both.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from reproduce import CPU_SCALE, LOSSES, PENALISED, _with_jax_cache, scale_overrides

from gan_jax.rundir import write_atomic

HERE = Path(__file__).resolve().parent
LOSS_NAMES = {loss: overrides[0].removeprefix("loss=") for loss, overrides in LOSSES.items()}


def programs(jobs: list[dict]) -> dict[str, list[dict]]:
    """The study's jobs grouped by what a population cannot vary: the penalty family and d_steps."""
    grouped: dict[str, list[dict]] = {}
    for job in jobs:
        family = job["loss"] if job["loss"] in PENALISED else "unpenalised"
        grouped.setdefault(f"{family}_d{job['setting']['d_steps']}", []).append(job)
    return grouped


def point(job: dict) -> dict:
    setting = job["setting"]
    values = {"optim.lr": setting["lr"], "optim.b1": setting["b1"]}
    if job["loss"] in PENALISED:
        values[f"penalty.{PENALISED[job['loss']]}.weight"] = setting["penalty_weight"]
    else:
        values["loss.name"] = LOSS_NAMES[job["loss"]]
    return values


def overrides(name: str, jobs: list[dict], args: argparse.Namespace, run_dir: Path) -> list[str]:
    points = ",".join(
        "{" + ",".join(f"{k}:{v!r}" if isinstance(v, float) else f"{k}:{v}" for k, v in point(j).items()) + "}"
        for j in jobs
    )
    return [
        *LOSSES[jobs[0]["loss"]],  # a penalised family's loss settings; the unpenalised members set their own loss
        *scale_overrides(args),
        f"train.d_steps={jobs[0]['setting']['d_steps']}",
        f"train.population=[{points}]",
        f"hydra.run.dir={run_dir}",
    ]


def run_program(name: str, jobs: list[dict], args: argparse.Namespace, out: Path) -> dict:
    run_dir = out / "populations" / name
    command = [sys.executable, "-m", "gan_jax.train", *overrides(name, jobs, args, run_dir)]
    print(f"[{name}: {len(jobs)} members] {' '.join(command[3:])}", flush=True)
    started = time.perf_counter()
    subprocess.run(command, check=False, env=_with_jax_cache(out / "populations"))
    seconds = time.perf_counter() - started
    summary_path = run_dir / "summary.json"
    written = json.loads(summary_path.read_text()) if summary_path.exists() else {}
    replicas = written.get("replicas", [])
    members = []
    for index, job in enumerate(jobs):
        replica = replicas[index] if index < len(replicas) else {}
        members.append(
            {
                "program": name,
                "member": index,
                "loss": job["loss"],
                "setting": job["setting"],
                "sweep_job": job["job"],
                "sweep_fid": job["fid"],
                "sweep_train_seconds": job["train_seconds"],
                "fid": replica.get("eval", {}).get("fid") if written.get("status") == "finished" else None,
            }
        )
    return {
        "program": name,
        "members": members,
        "status": written.get("status"),
        "wall_seconds": seconds,
        "train_seconds": written.get("train_seconds"),
    }


def table(ran: list[dict]) -> str:
    lines = [
        "| program | members | wall s (population) | train s (population) | train s (the sweep's jobs, summed) |",
        "|---|---:|---:|---:|---:|",
    ]
    for program in ran:
        swept = sum(m["sweep_train_seconds"] or 0 for m in program["members"])
        lines.append(
            f"| {program['program']} | {len(program['members'])} | {program['wall_seconds']:.0f} | "
            f"{program['train_seconds'] or 0:.0f} | {swept:.0f} |"
        )
    lines += [
        "",
        "| loss | lr | beta1 | d_steps | FID, sweep job | FID, population member |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for program in ran:
        for m in program["members"]:
            s = m["setting"]
            here = "-" if m["fid"] is None else f"{m['fid']:.1f}"
            there = "-" if m["sweep_fid"] is None else f"{m['sweep_fid']:.1f}"
            lines.append(f"| {m['loss']} | {s['lr']:.2e} | {s['b1']:.2f} | {s['d_steps']} | {there} | {here} |")
    both = [(m["sweep_fid"], m["fid"]) for p in ran for m in p["members"] if m["fid"] and m["sweep_fid"]]
    if len(both) > 2:
        sweep_fids, population_fids = np.log(np.array(both)).T
        correlation = float(np.corrcoef(sweep_fids, population_fids)[0, 1])
        lines += [
            "",
            f"Correlation of log FID, sweep job against population member, over {len(both)} settings: "
            f"{correlation:.3f}.",
        ]
    return "\n".join(lines) + "\n"


def _earlier_programs(path: Path, scale: dict, chosen: list[str]) -> list[dict]:
    """The programs an earlier call wrote to DIR/populations.json at the same scale and not run
    again now: the study can be run a program at a time."""
    if not path.exists():
        return []
    earlier = json.loads(path.read_text())
    if earlier.get("scale") != scale:
        print(f"{path}: written at scale {earlier.get('scale')}, not {scale}: its programs are replaced", flush=True)
        return []
    return [program for program in earlier["programs"] if program["program"] not in chosen]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--results", type=Path, default=HERE / "results.json", help="the study whose settings to train")
    parser.add_argument("--programs", default=None, help="comma-separated program names (default: all)")
    parser.add_argument("--steps", type=int, default=CPU_SCALE["steps"])
    parser.add_argument("--width", type=int, default=CPU_SCALE["width"])
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--inception-weights", default=None)
    args = parser.parse_args()
    study = json.loads(args.results.read_text())
    grouped = programs(study["jobs"])
    chosen = args.programs.split(",") if args.programs else list(grouped)
    if unknown := [p for p in chosen if p not in grouped]:
        parser.error(f"--programs: {', '.join(unknown)} unknown; valid values are {', '.join(grouped)}")
    scale = {"steps": args.steps, "width": args.width, "num_samples": args.num_samples}
    kept = _earlier_programs(args.out / "populations.json", scale, chosen)
    ran = [run_program(name, grouped[name], args, args.out) for name in chosen]
    ran = sorted(kept + ran, key=lambda program: list(grouped).index(program["program"]))
    record = {"scale": scale, "programs": ran}
    write_atomic(args.out / "populations.json", json.dumps(record, indent=2) + "\n")
    summary = table(ran)
    write_atomic(args.out / "populations.md", summary)
    print(summary)


if __name__ == "__main__":
    main()
