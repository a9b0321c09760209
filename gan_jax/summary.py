"""summary.json's layout: the one place that builds it and reads it back.

A run's summary (written whatever the outcome, once the run is accepted):

    status, diverged, error          how the latest attempt ended (`rundir.Status`)
    steps_completed, steps_requested, train_seconds, steps_per_second, resumed_from_step,
    started_at, devices, backend     the attempt; train_seconds adds up every attempt's
    diverged_step                    only when it diverged
    final, d_real_last_tenth, d_fake_last_tenth, eval
                                     a replica's values (`replica`): the last logged
                                     training row, d_real / d_fake over the last tenth of
                                     the steps, the latest evaluation's scalars
    seeds, replicas                  a population: one replica entry per member ({seed, and
                                     in a hyper-parameter population member, hyperparams}),
                                     instead of the replica values at the top level
    population                       a hyper-parameter population: its keys, points, members'
                                     starting values and PBT's lineage
    wandb                            id, dir, mode of the W&B run, when there is one
    ...                              whatever the evaluators add (`extra`, e.g. `data`)

A run that failed before training has only status, diverged, error, steps_completed and
started_at (`failure`). The loop, `gan-train`, the sweep report and `gan-compare` all
read and write summaries through this module; the file itself is rundir's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.rundir import Status

LAST_TENTH = ("d_real", "d_fake")  # averaged over the last tenth of the steps


def replica(rows: Sequence[Mapping[str, Any]], steps_requested: int, evaluation: Mapping[str, Any] | None) -> dict:
    """One replica's values: `rows` are its metrics.jsonl rows (training and evaluation
    rows alike), `evaluation` its latest evaluation's {"step", **scalars} or None."""
    train_rows = [r for r in rows if "d_real" in r]
    values: dict[str, Any] = {}
    if train_rows:
        values["final"] = {k: v for k, v in train_rows[-1].items() if k not in ("step", "seed", "member")}
        tail = [r for r in train_rows if r["step"] > 0.9 * steps_requested] or train_rows[-1:]
        for key in LAST_TENTH:
            values[f"{key}_last_tenth"] = float(np.mean([r[key] for r in tail if r[key] is not None]))
    if evaluation is not None:
        values["eval"] = dict(evaluation)
    return values


def run(
    *,
    status: Status,
    error: str | None,
    steps_completed: int,
    steps_requested: int,
    train_seconds: float,
    resumed_from_step: int | None,
    started_at: float,
    devices: int,
    backend: str,
    replicas: Sequence[Mapping[str, Any]],
    extra: Mapping[str, Any] | None = None,
    wandb: Mapping[str, Any] | None = None,
    processes: int = 1,
) -> dict[str, Any]:
    """A run's summary; `replicas`: each member's {"seed", ("member", "hyperparams"),
    **`replica` values} (one: a plain run, its values at the top level; several: a
    population, under `replicas`)."""
    summary: dict[str, Any] = {
        "status": status.value,
        "diverged": status == Status.DIVERGED,
        "error": error,
        "steps_completed": steps_completed,
        "steps_requested": steps_requested,
        "train_seconds": round(train_seconds, 3),
        "steps_per_second": (round(steps_completed / train_seconds, 2) if train_seconds else None),
        "resumed_from_step": resumed_from_step,
        "started_at": started_at,
        "devices": devices,  # over all processes
        "processes": processes,
        "backend": backend,
    }
    if status == Status.DIVERGED:
        summary["diverged_step"] = steps_completed
    if len(replicas) == 1:
        summary.update({k: v for k, v in replicas[0].items() if k != "seed"})
    else:
        summary["seeds"] = [r["seed"] for r in replicas]
        summary["replicas"] = [dict(r) for r in replicas]
    summary.update(extra or {})
    if wandb is not None:
        summary["wandb"] = dict(wandb)
    return summary


def failure(error: BaseException, started_at: float) -> dict[str, Any]:
    """The summary of an attempt that failed before training started."""
    status = Status.INVALID_CONFIG if isinstance(error, ConfigError) else Status.FAILED
    return {
        "status": status.value,
        "diverged": False,
        "error": f"{type(error).__name__}: {error}",
        "steps_completed": 0,
        "started_at": started_at,
    }


def keys(train_metrics: Sequence[str], eval_scalars: Sequence[str]) -> list[str]:
    """The numeric keys a summary will have, given the names the step and the evaluators produce."""
    return (
        [f"{k}_last_tenth" for k in LAST_TENTH]
        + [f"final.{k}" for k in sorted(train_metrics)]
        + [f"eval.{k}" for k in eval_scalars]
    )


def status(summary: Mapping[str, Any]) -> str:
    """The summary's status value; "unknown" for a summary without one."""
    return str(summary.get("status", "unknown"))


def replicas(summary: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """A population's replica entries; a plain run is its own single replica."""
    return list(summary.get("replicas", [summary]))


def final_metrics(replica_values: Mapping[str, Any]) -> dict[str, float]:
    """A replica's numeric results: its evaluation scalars and d_real / d_fake over the last tenth."""
    candidates = {
        **{k: v for k, v in replica_values.get("eval", {}).items() if k != "step"},
        **{f"{k}_last_tenth": replica_values.get(f"{k}_last_tenth") for k in LAST_TENTH},
    }
    return {k: v for k, v in candidates.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}


def mean_or_none(values: Iterable[float | None]) -> float | None:
    """The mean of the values that are numbers; None when there are none (a population's value)."""
    numbers = [v for v in values if v is not None]
    return float(np.mean(numbers)) if numbers else None


def best_member(summary: Mapping[str, Any], key: str, direction: str) -> Mapping[str, Any] | None:
    """The replica entry with the best `key` ("eval.fid"; direction "min" or "max"), None
    when no member has a value."""
    scored = [(v, r) for r in replicas(summary) if (v := _lookup(r, key)) is not None and np.isfinite(v)]
    if not scored:
        return None
    pick = min if direction == "min" else max
    return pick(scored, key=lambda pair: pair[0])[1]


def _lookup(tree: Any, key: str) -> Any:
    for part in key.split("."):
        tree = tree.get(part) if isinstance(tree, Mapping) else None
    return tree


def value(summary: Mapping[str, Any], key: str) -> float | None:
    """`key` ("eval.jsd") of a summary; the mean over a population's replicas."""

    return mean_or_none(_lookup(r, key) for r in replicas(summary))
