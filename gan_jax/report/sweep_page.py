"""The sweep page: a sortable table of its runs and one box plot per final metric over gan-compare's groups."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import yaml

from gan_jax import rundir
from gan_jax.report.html import Cell, badge, number_cell, page, section, table, text_cell
from gan_jax.report.reading import REPORT_FILE, read_overrides, read_rows, sweep_members
from gan_jax.report.run_page import EQUILIBRIUM, HEADLINE, direction_words, known_direction, run_status
from gan_jax.report.svg import box_chart, empty_chart, esc, number
from gan_jax.rundir import Status


@dataclass(frozen=True)
class SweepData:
    sweep_dir: Path
    runs: list[dict[str, Any]]  # gan-compare's records (a population's replicas each, with its seed)
    members: list[Path]  # every job directory (also those without a summary yet)
    overrides: dict[str, list[str]]  # job -> its overrides.yaml
    sweep_overrides: list[str]  # multirun.yaml's task overrides (the sweep's command line)
    statuses: dict[str, str]  # job -> its status (run_status)


def _sweep_overrides(sweep_dir: Path) -> list[str]:
    try:
        loaded = yaml.safe_load((sweep_dir / "multirun.yaml").read_text())
        return [str(o) for o in loaded["hydra"]["overrides"]["task"]]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return []


def read_sweep(sweep_dir: Path) -> SweepData:
    from gan_jax import compare  # matplotlib: only for a sweep

    members = sweep_members(sweep_dir)
    statuses = {}
    for member in members:
        rows = read_rows(member, [])
        statuses[member.name] = run_status(rundir.read_summary(member), rows)[0]
    return SweepData(
        sweep_dir=sweep_dir,
        runs=compare.load_runs(sweep_dir),
        members=members,
        overrides={m.name: read_overrides(m) or [] for m in members},
        sweep_overrides=_sweep_overrides(sweep_dir),
        statuses=statuses,
    )


def distinguishing(overrides: Mapping[str, Sequence[str]]) -> dict[str, list[str]]:
    """Each job's overrides less those every job has."""
    lists = list(overrides.values())
    common = set.intersection(*(set(o) for o in lists)) if len(lists) > 1 else set()
    return {job: [o for o in given if o not in common] for job, given in overrides.items()}


def run_link(job: str) -> str:
    label = job.split("_", 1)[0] if job.split("_", 1)[0].isdigit() else job[:40]
    return f'<a href="{esc(quote(f"{job}/{REPORT_FILE}"))}" title="{esc(job)}">{esc(label)}</a>'


def sweep_table(data: SweepData, by: Sequence[str], metrics: Sequence[str]) -> str:
    """One row per run (a population's replicas each), and one per job without a summary yet."""
    shown = distinguishing(data.overrides)
    rows = []
    for run in data.runs:
        job = run["job"]
        rows.append(
            [Cell(run_link(job), _job_number(job)), text_cell(run["seed"]), Cell(badge(run["status"]), run["status"])]
            + [text_cell(" ".join(shown.get(job, [])))]
            + [text_cell(run["config"].get(k)) for k in by]
            + [number_cell(run["metrics"].get(m)) for m in metrics]
        )
    summarised = {r["job"] for r in data.runs}
    for member in data.members:
        if member.name not in summarised:
            status = data.statuses.get(member.name, "no_summary")
            blank = [text_cell(None) for _ in (*by, *metrics)]
            rows.append(
                [Cell(run_link(member.name), _job_number(member.name)), text_cell(None), Cell(badge(status), status)]
                + [text_cell(" ".join(shown.get(member.name, [])))]
                + blank
            )
    return table(["run", "seed", "status", "overrides", *by, *metrics], rows, sortable=True)


def _job_number(job: str) -> float | str:
    head = job.split("_", 1)[0]
    return float(head) if head.isdigit() else job


def finished_values(runs: Sequence[Mapping[str, Any]], metric: str) -> list[float]:
    """The finite values of `metric` over the finished runs (what gan-compare's tables count)."""
    values = [number(r["metrics"].get(metric)) for r in runs if r["status"] == Status.FINISHED]
    return [v for v in values if v is not None]


def metric_order(metrics: Iterable[str], directions: Callable[[str], str | None] = known_direction) -> list[str]:
    """D's outputs over the last tenth first (the headline), then the ranked metrics, then the rest."""
    headline = [f"{k}_last_tenth" for k in HEADLINE]
    rank = {
        m: (0, headline.index(m)) if m in headline else (1 if directions(m) in ("min", "max") else 2, 0)
        for m in metrics
    }
    return sorted(rank, key=lambda m: (*rank[m], m))


def sweep_boxes(groups: Mapping[str, Sequence[Mapping[str, Any]]], metrics: Sequence[str]) -> list[str]:
    charts = []
    for metric in metrics:
        boxes = [(label, finished_values(runs, metric)) for label, runs in groups.items()]
        counts = ", ".join(f"{len(v)}" for _, v in boxes)
        headline = metric in [f"{k}_last_tenth" for k in HEADLINE]
        charts.append(
            box_chart(
                metric + direction_words(metric, known_direction),
                boxes,
                subtitle=f"finished runs per group: {counts}",
                reference=(EQUILIBRIUM, "0.5: the equilibrium") if headline else None,
            )
        )
    return charts


def sweep_page(data: SweepData) -> str:
    from gan_jax import compare

    runs = data.runs
    by = compare.varying_keys(runs) if runs else []
    groups = compare.group_runs(runs, by) if runs else {}
    metrics = metric_order({m for r in runs for m in r["metrics"]})
    counts: dict[str, int] = {}
    for status in data.statuses.values():
        counts[status] = counts.get(status, 0) + 1
    tally = ", ".join(f"{badge(s)} {n}" for s, n in sorted(counts.items()))
    command = " ".join(f"<code>{esc(o)}</code>" for o in data.sweep_overrides)
    header = (
        f"<h1>{esc(data.sweep_dir.name)}</h1>"
        f'<div class="path">{esc(data.sweep_dir.resolve())}</div>'
        f"<p>{len(data.members)} jobs, {len(runs)} runs (a population's replicas each) in {len(groups)} groups "
        f"(by {esc(', '.join(by) or 'nothing')}) · {tally}</p>" + (f"<p>gan-train -m {command}</p>" if command else "")
    )
    body = section("Runs", sweep_table(data, by, metrics), "runs")
    boxes = "".join(sweep_boxes(groups, metrics)) or empty_chart("Final metrics", "no run has finished yet")
    body += section(
        "Final metrics by group (as gan-compare groups them)", f'<div class="grid boxes">{boxes}</div>', "boxes"
    )
    return page(f"{data.sweep_dir.name}: gan-report", header, body)
