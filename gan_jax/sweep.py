"""What a Hydra multirun checks at its start and reports at its end.

At the start: a sweeper that optimises (Optuna) needs an `objective`. At the end: how
many of this sweep's jobs failed, and how; jobs left in the sweep directory by an
earlier sweep are not counted, and a job that left no summary of this attempt (killed,
say) counts as failed.
"""

from __future__ import annotations

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


def job_statuses(sweep_dir: Path, since: float | None = None) -> Counter:
    """status -> number of jobs, from each job directory's summary.json.

    With `since` (the sweep's start, seconds since the epoch) only jobs of that sweep
    count: a summary started before it is an earlier sweep's, and a directory touched
    since then without a new summary is a job that ended without writing one.
    """
    statuses: Counter = Counter()
    for job in sorted(p for p in sweep_dir.iterdir() if p.is_dir() and not p.name.startswith(".")):
        written = rundir.read_summary(job)
        if since is None:
            if written is not None:
                statuses[summary.status(written)] += 1
        elif written is not None and written.get("started_at", 0) >= since:
            statuses[summary.status(written)] += 1
        elif job.stat().st_mtime >= since - 1.0:  # allow for a coarse file-system clock
            statuses[NO_SUMMARY] += 1
    return statuses


def _optimising_sweeper(config: DictConfig) -> str | None:
    target = str(config.hydra.sweeper.get("_target_", ""))
    return "optuna" if "optuna" in target.lower() else None


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
