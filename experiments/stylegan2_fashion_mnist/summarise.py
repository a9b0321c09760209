"""The table and figure of the StyleGAN2 +/- ADA runs that run.sh made (README.md here).

    python experiments/stylegan2_fashion_mnist/summarise.py RUNS_DIR [--out DIR]

For each run RUNS_DIR/<data>_<ada|off>: FID/KID at every evaluation, ada_p and r_t (the
mean over each stretch of logged rows), D(x)/D(G(z)) over the last tenth; writes
table.md, results.json and ada.png (p and r_t over training) to --out (default: here).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

DATA = {"32": "32 images", "256": "256 images", "10pct": "10% (6,000)", "full": "100% (60,000)"}
SETTINGS = {"ada": "ADA (adaptive p)", "off": "no augmentation (p = 0)", "target03": "ADA, target 0.3"}


def read_run(run_dir: Path) -> dict:
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line.strip()]
    train = [r for r in rows if "d_loss" in r]
    evals = [r for r in rows if "fid" in r]
    tail = train[-max(1, len(train) // 10) :]
    mean = lambda key, rows: sum(r[key] for r in rows) / len(rows)  # noqa: E731
    return {
        "steps": train[-1]["step"],
        "evals": [{"step": r["step"], "fid": r["fid"], "kid": r["kid"]} for r in evals],
        "ada_p": [(r["step"], r["ada_p"]) for r in train],
        "ada_rt": [(r["step"], r["ada_rt"]) for r in train],
        "final_p": train[-1]["ada_p"],
        "rt_last_tenth": mean("ada_rt", tail),
        "d_real_last_tenth": mean("d_real", tail),
        "d_fake_last_tenth": mean("d_fake", tail),
    }


def table(results: dict[str, dict], at: tuple[int, ...] = (400, 800)) -> str:
    """FID at the steps `at` (equal steps across the sizes) and at each run's end, KID at its end."""
    head = "| data | setting | steps | " + " | ".join(f"FID @ {s}" for s in at) + " | FID, KID at the end | "
    head += "p at the end (max) | r_t, last tenth | D(x) / D(G(z)), last tenth |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for name, run in results.items():
        data, setting = name.split("_", 1)
        fid = {e["step"]: e["fid"] for e in run["evals"]}
        cells = [f"{fid[s]:.1f}" if s in fid else "-" for s in at]
        last = run["evals"][-1] if run["evals"] else {"fid": float("nan"), "kid": float("nan")}
        top = max(p for _, p in run["ada_p"])
        lines.append(
            f"| {DATA.get(data, data)} | {SETTINGS.get(setting, setting)} | {run['steps']} | "
            + " | ".join(cells)
            + f" | {last['fid']:.1f}, {last['kid']:.2f} | {run['final_p']:.3f} ({top:.3f}) | "
            f"{run['rt_last_tenth']:.2f} | {run['d_real_last_tenth']:.2f} / {run['d_fake_last_tenth']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def figure(results: dict[str, dict], path: Path) -> None:
    fig, (ax_p, ax_rt) = plt.subplots(1, 2, figsize=(11, 4))
    for name, run in results.items():
        style = ":" if name.endswith("_off") else "-"
        steps, p = zip(*run["ada_p"], strict=True)
        ax_p.plot(steps, p, style, label=name)
        steps, rt = zip(*run["ada_rt"], strict=True)
        ax_rt.plot(steps, rt, style, label=name)
    ax_p.set(title="ADA's p", xlabel="iteration")
    ax_rt.axhline(0.6, color="grey", lw=0.8)
    ax_rt.set(title="r_t = E[sign D(x_real)] (target 0.6)", xlabel="iteration", ylim=(-1.05, 1.05))
    ax_p.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("runs", type=Path)
    parser.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = parser.parse_args()
    order = [f"{d}_{s}" for d in DATA for s in SETTINGS]
    results = {n: read_run(args.runs / n) for n in order if (args.runs / n / "metrics.jsonl").exists()}
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    (args.out / "table.md").write_text(table(results))
    figure(results, args.out / "ada.png")
    print(table(results))


if __name__ == "__main__":
    main()
