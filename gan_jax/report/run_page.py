"""The run page: D's outputs, the losses, the evaluation curves, the grids, the final numbers, config, provenance."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import yaml

from gan_jax import summary
from gan_jax.report.html import badge, data_uri, key_value_table, number_cell, page, section, table, text_cell
from gan_jax.report.reading import EVAL_FILE, NOT_SCORES, REPORT_FILE, RunData
from gan_jax.report.svg import Series, empty_chart, esc, fmt, line_chart, number

TRAIN_KEY = "d_loss"  # a metrics.jsonl row with it is a training row; the others are evaluation rows
HEADLINE = ("d_real", "d_fake")
LOSSES = ("d_loss", "g_loss")
RAW_OUTPUTS = ("d_real_raw", "d_fake_raw")
EQUILIBRIUM = 0.5
PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")


def training_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if TRAIN_KEY in r]


def evaluation_rows(rows: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return [r for r in rows if TRAIN_KEY not in r]


def who(row: Mapping[str, Any]) -> Any:
    """Whose row it is: its seed, or in a hyper-parameter population (whose points share
    seeds) "member <i>"."""
    return f"member {row['member']}" if "member" in row else row.get("seed")


def seeds_of(rows: Sequence[Mapping[str, Any]], written: Mapping[str, Any] | None) -> list[Any]:
    """The population's members (one for a plain run) as `who` names them, in the order
    summary.json or the rows give them."""
    replicas = (written or {}).get("replicas")
    if isinstance(replicas, list) and replicas and all(isinstance(r, dict) and "member" in r for r in replicas):
        return [who(r) for r in replicas]
    if written is not None and isinstance(written.get("seeds"), list):
        return list(written["seeds"])
    return list(dict.fromkeys(who(r) for r in rows)) or [None]


def member_label(member: Any) -> str:
    return member if isinstance(member, str) else "run" if member is None else f"seed {member}"


def metric_keys(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The numeric keys of `rows` (step and seed aside), in first-seen order."""
    keys: dict[str, None] = {}
    for row in rows:
        for k, v in row.items():
            if k not in ("step", "seed", "member") and (number(v) is not None or v is None):
                keys.setdefault(k, None)
    return list(keys)


def curve(rows: Sequence[Mapping[str, Any]], key: str, seed: Any) -> list[tuple[float, float | None]]:
    """(step, value) of `key` for one member; a null value (a diverged step) is a gap."""
    return [(float(r["step"]), number(r.get(key))) for r in rows if who(r) == seed and key in r]


def member_series(
    rows: Sequence[Mapping[str, Any]],
    key: str,
    seeds: Sequence[Any],
    colour: str | None,
    legend: str | None,
    markers: bool = False,
) -> list[Series]:
    """One Series per member: in `colour` (the legend names it once), or one palette colour each."""
    many = len(seeds) > 1
    series = []
    for index, seed in enumerate(seeds):
        points = curve(rows, key, seed)
        member = member_label(seed)
        if colour is None:
            shown_colour = PALETTE[index % len(PALETTE)]
            shown_legend = member if index < len(PALETTE) else None
        else:
            shown_colour = colour
            shown_legend = (f"{legend} ({len(seeds)} members)" if many else legend) if index == 0 else None
        series.append(
            Series(
                points,
                shown_colour,
                shown_legend,
                f"{key}, {member}",
                markers=markers,
                width=1.2 if many and colour else 1.6,
                opacity=0.65 if many and colour else 1.0,
            )
        )
    return series


def discriminator_chart(rows: Sequence[Mapping[str, Any]], seeds: Sequence[Any]) -> str:
    """The headline: mean sigmoid(D) on real and on generated data, with the 0.5 line."""
    train = training_rows(rows)
    series = member_series(train, "d_real", seeds, PALETTE[0], "D(x) on real") + member_series(
        train, "d_fake", seeds, PALETTE[1], "D(G(z)) on generated"
    )
    return line_chart(
        "D's outputs: d_real and d_fake (1/2 at the equilibrium)",
        series,
        y_label="mean sigmoid(D)",
        hline=(EQUILIBRIUM, "0.5: the equilibrium"),
        y_range=(0.0, 1.0),
    )


def losses_chart(rows: Sequence[Mapping[str, Any]], seeds: Sequence[Any]) -> str:
    train = training_rows(rows)
    series = [
        s
        for key, colour in zip(LOSSES, PALETTE[2:], strict=False)
        for s in member_series(train, key, seeds, colour, key)
    ]
    return line_chart("Losses", series, y_label="loss")


def other_training_charts(rows: Sequence[Mapping[str, Any]], seeds: Sequence[Any]) -> list[str]:
    """The other training metrics (raw critic outputs, gradient norms, penalties, ...), one chart each."""
    train = training_rows(rows)
    keys = [k for k in metric_keys(train) if k not in (*HEADLINE, *LOSSES, *RAW_OUTPUTS)]
    charts = []
    if any(k in r for r in train for k in RAW_OUTPUTS):
        raw = [
            s
            for key, colour in zip(RAW_OUTPUTS, PALETTE, strict=False)
            for s in member_series(train, key, seeds, colour, key)
        ]
        charts.append(line_chart("D's raw outputs (the critic's values)", raw, y_label="D"))
    charts += [line_chart(key, member_series(train, key, seeds, None, None)) for key in keys]
    return charts


def direction_words(key: str, directions: Callable[[str], str | None]) -> str:
    way = directions(key)
    return {"min": " (lower is better)", "max": " (higher is better)"}.get(way or "", "")


def known_direction(key: str) -> str | None:
    try:
        from gan_jax import evaluators

        return evaluators.direction(key)
    except Exception:  # a metric module that fails to import must not cost the page
        return None


def gan_eval_points(evaluations: Mapping[str, Any], key: str) -> list[Series]:
    """gan-eval's scores of `key` (eval.json), as markers: one series per sample count."""
    by_count: dict[Any, list[tuple[float, float | None]]] = {}
    for entry in evaluations.values():
        step = number(entry.get("step"))
        for replica in entry.get("replicas", []) if isinstance(entry.get("replicas"), list) else []:
            if step is not None and isinstance(replica, dict) and number(replica.get(key)) is not None:
                by_count.setdefault(entry.get("num_samples"), []).append((step, number(replica[key])))
    return [
        Series(points, "#000", f"gan-eval, N={count}", f"{key}, gan-eval N={count}", line=False, markers=True)
        for count, points in by_count.items()
    ]


def evaluation_charts(
    rows: Sequence[Mapping[str, Any]],
    seeds: Sequence[Any],
    evaluations: Mapping[str, Any],
    directions: Callable[[str], str | None] = known_direction,
) -> list[str]:
    """One chart per evaluation key (the rows without d_loss), one curve per member, gan-eval's points on top."""
    evaluated = evaluation_rows(rows)
    keys = metric_keys(evaluated)
    for entry in evaluations.values():
        for replica in entry.get("replicas", []) if isinstance(entry.get("replicas"), list) else []:
            if isinstance(replica, dict):
                keys += [
                    k for k, v in replica.items() if k not in NOT_SCORES and number(v) is not None and k not in keys
                ]
    return [
        line_chart(
            key + direction_words(key, directions),
            member_series(evaluated, key, seeds, None, None, markers=True) + gan_eval_points(evaluations, key),
        )
        for key in keys
    ]


def evaluations_table(evaluations: Mapping[str, Any]) -> str:
    """eval.json: one row per entry and replica."""
    entries = [(k, e) for k, e in evaluations.items() if isinstance(e.get("replicas"), list)]
    metrics = sorted(
        {
            k
            for _, e in entries
            for r in e["replicas"]
            if isinstance(r, dict)
            for k, v in r.items()
            if k not in NOT_SCORES and number(v) is not None
        }
    )
    rows = []
    for name, entry in entries:
        scored = number(entry.get("scored_at"))
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(scored)) if scored is not None else None
        for replica in entry["replicas"]:
            if isinstance(replica, dict):
                rows.append(
                    [
                        text_cell(name),
                        number_cell(entry.get("step")),
                        number_cell(entry.get("num_samples")),
                        text_cell(when),
                    ]
                    + [text_cell(who(replica))]
                    + [number_cell(replica.get(m)) for m in metrics]
                )
    named = "member" if any("member" in r for _, e in entries for r in e["replicas"] if isinstance(r, dict)) else "seed"
    return table(["entry", "step", "N", "scored at", named, *metrics], rows, sortable=True)


def grid_slider(grids: Sequence[tuple[int, bytes]], total: int) -> str:
    """The sample grids behind a step slider (without script: the last grid)."""
    if not grids:
        return (
            '<p class="muted">no sample grids yet (samples/step_&lt;step&gt;.png, every train.sample_every steps)</p>'
        )
    frames = "".join(
        f'<figure data-step="{step}"{"" if i == len(grids) - 1 else " hidden"}>'
        f'<img class="grid-image" src="{data_uri(png)}" alt="samples at step {step}"></figure>'
        for i, (step, png) in enumerate(grids)
    )
    last = len(grids) - 1
    shown = f"{len(grids)} of {total}, evenly spaced" if total > len(grids) else f"{total}"
    return (
        f'<div class="slider"><label>step <output>{grids[-1][0]}</output>'
        f'<input type="range" min="0" max="{last}" value="{last}" step="1" aria-label="training step">'
        f'<span class="muted">{esc(shown)} grids</span></label>{frames}</div>'
    )


def png_size(png: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG's IHDR chunk; None for anything else."""
    if len(png) < 24 or png[:8] != b"\x89PNG\r\n\x1a\n" or png[12:16] != b"IHDR":
        return None
    return int.from_bytes(png[16:20], "big"), int.from_bytes(png[20:24], "big")


def figures_html(figures: Sequence[tuple[str, bytes]]) -> str:
    if not figures:
        return '<p class="muted">none yet (the run writes its figures when it ends)</p>'
    items = "".join(
        f"<figure{_wide(png)}><figcaption>{esc(name)}</figcaption>"
        f'<img src="{data_uri(png)}" alt="{esc(name)}"></figure>'
        for name, png in figures
    )
    return f'<div class="figures">{items}</div>'


def _wide(png: bytes) -> str:
    size = png_size(png)
    return ' class="wide"' if size is not None and size[0] > 2 * size[1] else ""


def run_status(written: Mapping[str, Any] | None, rows: Sequence[Mapping[str, Any]]) -> tuple[str, str]:
    """(status, detail): summary.json's, or `running` when the rows have gone past it (or there is none)."""
    last = max((r["step"] for r in rows if isinstance(r.get("step"), int)), default=None)
    if written is None:
        if last is None:
            return "no_summary", "nothing logged yet"
        return "running", f"no summary.json yet: in training, or stopped without one (last row at step {last})"
    status = summary.status(written)
    done = written.get("steps_completed")
    if last is not None and isinstance(done, int) and last > done:
        return "running", f"continuing; summary.json is of an earlier attempt ({status} at step {done})"
    return status, str(written.get("error") or "")


def final_numbers(written: Mapping[str, Any] | None, seeds: Sequence[Any]) -> str:
    """One row per member: d_real / d_fake over the last tenth, the latest evaluation, the last training row."""
    if written is None:
        return '<p class="muted">none yet (summary.json is written when the run ends)</p>'
    entries = summary.replicas(written)
    finals = [summary.final_metrics(e) for e in entries]
    lasts = [{f"final.{k}": v for k, v in (e.get("final") or {}).items() if number(v) is not None} for e in entries]
    keys = list(dict.fromkeys(k for f in finals for k in f)) + list(dict.fromkeys(k for f in lasts for k in f))
    if not keys:
        return '<p class="muted">no final numbers in summary.json</p>'
    values = [{**final, **last} for final, last in zip(finals, lasts, strict=True)]
    if len(entries) == 1:
        return table(["metric", "value"], [[text_cell(k), number_cell(values[0].get(k))] for k in keys])
    varied = sorted({k for e in entries for k in (e.get("hyperparams") or {})})
    rows = [
        [text_cell(member_label(who(entry)) if varied else entry.get("seed"))]
        + [text_cell(_shown((entry.get("hyperparams") or {}).get(k))) for k in varied]
        + [number_cell(v.get(k)) for k in keys]
        for entry, v in zip(entries, values, strict=True)
    ]
    return table(["member" if varied else "seed", *varied, *keys], rows, sortable=True)


def _shown(value: Any) -> str | None:
    return f"{value:.4g}" if isinstance(value, float) else None if value is None else str(value)


PROVENANCE_SKIP = ("final", "eval", "replicas", "seeds", "d_real_last_tenth", "d_fake_last_tenth")


def provenance(written: Mapping[str, Any] | None) -> str:
    if written is None:
        return '<p class="muted">no summary.json yet</p>'
    items = []
    for key, value in written.items():
        if key in PROVENANCE_SKIP:
            continue
        if key == "started_at" and number(value) is not None:
            value = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(float(value)))
        items.append((key, value))
    return key_value_table(items)


def config_html(config_yaml: str | None, overrides: Sequence[str] | None) -> str:
    parts = []
    if overrides:
        parts.append("<p>overrides: " + " ".join(f"<code>{esc(o)}</code>" for o in overrides) + "</p>")
    if config_yaml is None:
        parts.append('<p class="muted">no .hydra/config.yaml (written once the run is accepted)</p>')
    else:
        parts.append(f'<pre class="config">{esc(config_yaml)}</pre>')
    return "".join(parts)


def config_value(config_yaml: str | None, key: str) -> Any:
    """`key` ("train.steps") of the recorded config; None when absent or unreadable."""
    try:
        tree: Any = yaml.safe_load(config_yaml) if config_yaml else None
    except yaml.YAMLError:
        return None
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, dict) else None
    return tree


def run_header(data: RunData, status: str, detail: str) -> str:
    rows = data.rows
    last = max((r["step"] for r in rows if isinstance(r.get("step"), int)), default=0)
    requested = (data.summary or {}).get("steps_requested") or config_value(data.config_yaml, "train.steps")
    seeds = seeds_of(rows, data.summary)
    named = "members" if isinstance(seeds[0], str) else "seeds"
    bare = [str(s).removeprefix("member ") for s in seeds]
    shown = ", ".join(bare) if len(bare) <= 16 else f"{bare[0]} .. {bare[-1]}"
    population = f", a population of {len(seeds)} ({named} {shown})" if len(seeds) > 1 else ""
    up = f' · <a href="../{REPORT_FILE}">the sweep</a>' if data.in_sweep else ""
    detail_html = f" {esc(detail)} ·" if detail else " ·"
    return (
        f"<h1>{esc(data.run_dir.name)}</h1>"
        f'<div class="path">{esc(data.run_dir.resolve())}</div>'
        f"<p>{badge(status)}{detail_html} step {esc(last)} of {esc(fmt(requested))}{esc(population)}{up}</p>"
        + last_tenth(data.summary)
    )


def last_tenth(written: Mapping[str, Any] | None) -> str:
    """The headline numbers: d_real and d_fake over the last tenth of the steps (a population: each member's)."""
    if written is None:
        return ""
    parts = []
    for entry in summary.replicas(written):
        values = [number(entry.get(f"{k}_last_tenth")) for k in HEADLINE]
        if all(v is not None for v in values):
            who_of = f"{member_label(who(entry))}: " if "seed" in entry else ""
            parts.append(f"{who_of}d_real {fmt(values[0])}, d_fake {fmt(values[1])}")
    if not parts:
        return ""
    return f'<p class="headline">over the last tenth of the steps (1/2 at the equilibrium): {esc("; ".join(parts))}</p>'


def run_page(data: RunData) -> str:
    """The run's whole page, from what `read_run` found."""
    seeds = seeds_of(data.rows, data.summary)
    status, detail = run_status(data.summary, data.rows)
    notes = "".join(f"<li>{esc(n)}</li>" for n in data.notes)
    body = f'<ul class="notes">{notes}</ul>' if notes else ""
    body += section(
        "Discriminator outputs and losses",
        f'<div class="grid">{discriminator_chart(data.rows, seeds)}{losses_chart(data.rows, seeds)}</div>',
        "d",
    )
    evaluation = "".join(evaluation_charts(data.rows, seeds, data.evaluations)) or empty_chart(
        "Evaluation", "no evaluation yet"
    )
    body += section("Evaluation", f'<div class="grid">{evaluation}</div>', "eval")
    if data.evaluations:
        body += section(
            f"Scored after training ({EVAL_FILE}, gan-eval)", evaluations_table(data.evaluations), "gan-eval"
        )
    body += section("Samples over training", grid_slider(data.grids, data.grids_total), "samples")
    body += section("Final numbers", final_numbers(data.summary, seeds), "final")
    others = "".join(other_training_charts(data.rows, seeds))
    if others:
        body += section("Other training metrics", f'<div class="grid">{others}</div>', "train")
    body += section("Figures the run wrote", figures_html(data.figures), "figures")
    body += section("Config", config_html(data.config_yaml, data.overrides), "config")
    body += section("Provenance (summary.json)", provenance(data.summary), "provenance")
    return page(f"{data.run_dir.name}: gan-report", run_header(data, status, detail), body)
