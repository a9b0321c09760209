"""What a Hydra multirun checks at its start and reports at its end.

At the start: a sweeper that optimises (Optuna) needs an `objective`, and its direction
must be the one the objective's evaluator declares (minimise FID). At the end: how
many of the jobs this sweep launched failed, and how (each job records its start in
`<sweep dir>/.jobs/`); jobs left in the sweep directory by an earlier sweep are not
counted, and a job that left no summary of this attempt (killed, say) counts as failed.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

from gan_jax import rundir, summary
from gan_jax.errors import ConfigError

log = logging.getLogger("gan_jax")

NO_SUMMARY = "no_summary"


JOBS_DIR = ".jobs"  # in the sweep directory: one record per job attempt


def record_job(sweep_dir: Path, number: int, run_dir: Path, started_at: float, **outcome: Any) -> None:
    """Notes that job `number` started (and, given `status` and `error`, how it ended when it
    could not say so in its own summary.json: its directory was in use, or held a run that
    a summary of this attempt would overwrite). The sweep report reads these records."""
    directory = sweep_dir / JOBS_DIR
    directory.mkdir(parents=True, exist_ok=True)
    record = {"run_dir": str(run_dir), "started_at": started_at, **outcome}
    rundir.write_atomic(directory / f"{number}.json", json.dumps(record) + "\n")


def job_statuses(sweep_dir: Path, since: float | None = None) -> Counter:
    """status -> number of jobs.

    With `since` (the sweep's start, seconds since the epoch): the jobs this sweep launched,
    from their records; each counts with its summary.json of this attempt, or the status its
    record gives, or `no_summary` (killed, say). Jobs of earlier sweeps in the same directory
    do not count. Without `since`: every job directory's summary.json.
    """
    statuses: Counter = Counter()
    if since is None:
        for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
            if (written := rundir.read_summary(job)) is not None:
                statuses[summary.status(written)] += 1
        return statuses
    for path in sorted((sweep_dir / JOBS_DIR).glob("*.json")):
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if record["started_at"] < since:
            continue
        written = rundir.read_summary(Path(record["run_dir"]))
        if written is not None and written.get("started_at", 0) >= record["started_at"]:
            statuses[summary.status(written)] += 1
        else:
            statuses[record.get("status", NO_SUMMARY)] += 1
    return statuses


def _optimising_sweeper(config: DictConfig) -> str | None:
    target = str(config.hydra.sweeper.get("_target_", ""))
    return "optuna" if "optuna" in target.lower() else None


OPTUNA_DIRECTIONS = {"min": "minimize", "max": "maximize"}


def _direction_mismatch(config: DictConfig) -> ConfigError | None:
    """An error when Optuna's direction is the opposite of the objective's declared one."""
    from gan_jax import evaluators

    wanted = OPTUNA_DIRECTIONS.get(evaluators.direction(str(config.objective)) or "")
    given = config.hydra.sweeper.get("direction")
    given = getattr(given, "name", given)  # the Optuna plugin's schema makes it an enum
    if wanted is None or not isinstance(given, str) or given.lower() == wanted:
        return None
    return ConfigError(
        f"hydra.sweeper.direction={given}: objective={config.objective} is better when "
        f"{'lower' if wanted == 'minimize' else 'higher'}; set hydra.sweeper.direction={wanted}"
    )


class SweepReport(Callback):
    """Fails an optimising sweep without an objective at once; at the end logs the
    sweep's outcome and exits non-zero when any of its jobs did not finish."""

    def __init__(self) -> None:
        self.started_at: float | None = None

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        self.started_at = time.time()
        sweeper = _optimising_sweeper(config)
        if sweeper and config.get("objective") is None:
            error = ConfigError(
                f"hydra/sweeper={sweeper} maximises or minimises a number each job returns, and "
                "objective is null: set objective to a summary.json key, e.g. objective=eval.modes_captured "
                "or objective=d_real_last_tenth (a bad key is answered with the valid ones)"
            )
            log.error("%s", error)
            raise SystemExit(error.exit_code)
        if sweeper and (mismatch := _direction_mismatch(config)):
            log.error("%s", mismatch)
            raise SystemExit(mismatch.exit_code)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = job_statuses(sweep_dir, self.started_at) if sweep_dir.is_dir() else Counter()
        total = sum(statuses.values())
        failed = total - statuses[rundir.Status.FINISHED.value]
        detail = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        if failed or not total:
            log.error("sweep %s: %d of %d jobs failed (%s)", sweep_dir, failed, total, detail or "no jobs")
            raise SystemExit(1)
        log.info("sweep %s: all %d jobs finished", sweep_dir, total)
