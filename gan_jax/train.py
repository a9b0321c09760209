"""`gan-train`: the Hydra entry point. Composes the config, then hands it to the loop."""

from __future__ import annotations

import errno
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from gan_jax import distributed, loop, overrides, preemption, rundir, summary, sweep
from gan_jax.config import CONFIG_DIR, register_schemas
from gan_jax.errors import GanJaxError, RunDirectoryInUse

log = logging.getLogger("gan_jax")

register_schemas()


def _exit_with(error: Exception, run_dir: Path) -> None:
    """A single run's known failures end with their message and an exit code, no traceback."""
    if isinstance(error, GanJaxError):
        log.error("%s%s", error, f" (run directory: {run_dir})" if error.exit_code == 3 else "")
        sys.exit(error.exit_code)
    if isinstance(error, OSError) and error.errno in (errno.ENOSPC, errno.EDQUOT):
        log.error(
            "%s: the disk is full (%s). What was written is whole; free some space and run the "
            "same command: it continues from the latest checkpoint, or starts afresh if there is none",
            run_dir,
            error,
        )
        sys.exit(1)
    raise error


def _record_hydra_config(cfg: DictConfig, hydra_cfg: Any) -> Callable[[Path], None]:
    """What Hydra writes to .hydra/ (its own writing is off, hydra.output_subdir=null, so
    that a run the loop rejects leaves its directory as it was)."""

    def record(run_dir: Path) -> None:
        rundir.record_config(
            run_dir,
            OmegaConf.to_yaml(cfg),
            list(hydra_cfg.overrides.task),
            OmegaConf.to_yaml({"hydra": hydra_cfg}),
        )

    return record


def _record_failure(error: Exception, run_dir: Path, sweep_dir: Path, number: int, started_at: float) -> None:
    """A sweep job ends with a summary.json of this attempt, also one that failed before
    training, unless its directory is in use or holds an earlier run that such a summary
    would overwrite: then the job's record in the sweep directory says how it ended.
    SweepReport counts the failures when the sweep ends."""
    previous = rundir.read_summary(run_dir)
    if previous is not None and previous.get("started_at", 0) >= started_at:
        return  # the loop wrote it
    holds_a_run = (run_dir / rundir.SUMMARY_FILE).exists() or (run_dir / "checkpoints").is_dir()
    if isinstance(error, RunDirectoryInUse) or holds_a_run:
        outcome = summary.failure(error, started_at)
        sweep.record_job(sweep_dir, number, run_dir, started_at, status=outcome["status"], error=outcome["error"])
        return
    run_dir.mkdir(parents=True, exist_ok=True)
    rundir.write_summary(run_dir, summary.failure(error, started_at))


def main() -> None:
    """gan-train: the overrides Hydra would reject unhelpfully fail first (exit 2), then Hydra runs."""
    sys.argv[1:] = overrides.quote_slices(sys.argv[1:])
    if messages := overrides.errors(sys.argv[1:], CONFIG_DIR):
        logging.basicConfig(format="[%(levelname)s] %(message)s")
        log.error("Invalid config:\n  %s", "\n  ".join(messages))
        sys.exit(2)
    hydra_main()


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="config")
def hydra_main(cfg: DictConfig) -> float | None:
    started_at = time.time()
    hydra_cfg = HydraConfig.get()
    run_dir = Path(hydra_cfg.runtime.output_dir)
    sweeping = hydra_cfg.mode == RunMode.MULTIRUN
    group = Path(hydra_cfg.sweep.dir).name if sweeping else None
    name = f"{hydra_cfg.job.num}-{hydra_cfg.job.override_dirname}" if sweeping else run_dir.name
    # SIGTERM / SIGUSR1: in training, a checkpoint at the step reached and exit 75 (preempted);
    # before or after it, they unwind like an exception, so summary.json is written and W&B finished.
    preemption.install()
    try:
        distributed.initialize(cfg.dist)  # a run over several processes: process 0 writes
    except GanJaxError as error:
        _exit_with(error, run_dir)
    writes = distributed.is_primary()
    if sweeping and writes:
        sweep.record_job(Path(hydra_cfg.sweep.dir), hydra_cfg.job.num, run_dir, started_at)
    try:
        outputs = loop.run(
            cfg,
            run_dir,
            wandb_group=group,
            wandb_name=name,
            record_config=_record_hydra_config(cfg, hydra_cfg),
        )
    except Exception as error:
        if isinstance(error, preemption.Preempted):
            preemption.requeue(error)  # under submitit, for its signal: requeued, does not return
        if not sweeping or isinstance(error, preemption.Preempted):  # a preempted sweep stops, to be rerun
            _exit_with(error, run_dir)
        log.error("job %s failed: %s", run_dir, error)
        if writes:
            _record_failure(error, run_dir, Path(hydra_cfg.sweep.dir), hydra_cfg.job.num, started_at)
        return None
    many = "replicas" in outputs
    log.info(
        "finished: d_real %.3f, d_fake %.3f over the last tenth%s; outputs in %s",
        *(summary.value(outputs, f"{k}_last_tenth") or float("nan") for k in ("d_real", "d_fake")),
        f" (the mean of {len(outputs['replicas'])} members)" if many else "",
        run_dir,
    )
    for figure in sorted(run_dir.glob("*.png")):  # whatever the loop and the evaluators drew
        log.info("figure: %s", figure)
    if outputs.get("wandb", {}).get("dir"):
        log.info("W&B (%s) files: %s", outputs["wandb"]["mode"], outputs["wandb"]["dir"])
    return _objective_value(outputs, cfg.objective) if cfg.objective else None


def _objective_value(outputs: dict[str, Any], objective: str) -> float | None:
    """What a sweeper (Optuna) receives: the run's value of `objective`; a hyper-parameter
    population's best member's when the objective ranks (else its members' mean)."""
    best = outputs.get("population", {}).get("best")
    if best is None:
        return summary.value(outputs, objective)
    log.info(
        "objective %s: %s, member %d (seed %d, %s)",
        objective,
        best["value"],
        best["member"],
        best["seed"],
        ", ".join(f"{k}={v}" for k, v in best["hyperparams"].items()),
    )
    return best["value"]


if __name__ == "__main__":
    main()
