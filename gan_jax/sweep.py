"""What a Hydra multirun reports at its end: how many of its jobs failed, and how."""

from __future__ import annotations

import json
import logging
from collections import Counter
from pathlib import Path
from typing import Any

from hydra.experimental.callback import Callback
from omegaconf import DictConfig

log = logging.getLogger("gan_jax")


def job_statuses(sweep_dir: Path) -> Counter:
    """status -> number of jobs, from each job directory's summary.json."""
    statuses = Counter()
    for summary in sorted(sweep_dir.glob("*/summary.json")):
        statuses[json.loads(summary.read_text()).get("status", "unknown")] += 1
    return statuses


class SweepReport(Callback):
    """Logs the sweep's outcome; exits non-zero when any job did not finish."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        statuses = job_statuses(sweep_dir)
        total = sum(statuses.values())
        failed = total - statuses["finished"]
        detail = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()))
        if failed:
            log.error("sweep %s: %d of %d jobs failed (%s)", sweep_dir, failed, total, detail)
            raise SystemExit(1)
        log.info("sweep %s: all %d jobs finished", sweep_dir, total)
