"""Where a run's numbers go: metrics.jsonl (always) and W&B (unless logger=none).

W&B runs offline, with its files inside the run directory, whenever there is no API
key; it never asks for input, waits at most WANDB_INIT_TIMEOUT_S for the network, and
the mode it reports is the one its run is in.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from gan_jax.rundir import MetricsFile

log = logging.getLogger(__name__)

WANDB_INIT_TIMEOUT_S = 20


def wandb_mode(requested: str) -> str:
    """WANDB_MODE wins; `auto` means online only when an API key is in the environment."""
    if os.environ.get("WANDB_MODE"):
        return os.environ["WANDB_MODE"]
    if requested != "auto":
        return requested
    return "online" if os.environ.get("WANDB_API_KEY") else "offline"


def _finite_or_none(value: Any) -> Any:
    return value if not isinstance(value, float) or math.isfinite(value) else None


class RunLogger:
    """Appends one JSON object per logged step to metrics.jsonl and mirrors it to W&B.

    `wandb_settings`: one run's, or a list (a hyper-parameter population: a W&B run per
    member, each receiving its own rows under the plain metric names)."""

    def __init__(
        self,
        run_dir: Path,
        wandb_settings: dict | list[dict] | None = None,
        population: bool = False,
        writes: bool = True,
    ):
        self.population = population  # W&B keys of one run then carry the seed: seed_3/d_real
        self.run_dir = run_dir
        self.writes = writes  # False on a multi-process run's other processes: process 0 writes
        self.metrics = MetricsFile(run_dir)
        self.member_runs: list[Any] = []
        self.wandb_run = None
        if wandb_settings and writes:
            if isinstance(wandb_settings, list):
                self.member_runs = [_start_wandb(run_dir, reinit="create_new", **s) for s in wandb_settings]
                self.wandb_run = self.member_runs[0]
            else:
                self.wandb_run = _start_wandb(run_dir, **wandb_settings)

    @property
    def wandb_mode(self) -> str | None:
        """The mode the W&B run is really in (offline after a failed online start)."""
        if self.wandb_run is None:
            return None
        if getattr(self.wandb_run, "disabled", False):  # WANDB_MODE=disabled: nothing is logged
            return "disabled"
        return "offline" if self.wandb_run.offline else "online"

    def log(self, step: int, identity: Mapping[str, int], values: Mapping[str, Any]) -> None:
        """One row: `identity` says whose ({"seed": 3}, or a hyper-parameter population's
        {"member": 5, "seed": 3})."""
        if not self.writes:
            return
        # JSON has no NaN: a diverged value is written as null and kept in W&B as NaN.
        row = {"step": step, **identity, **{k: _finite_or_none(v) for k, v in values.items()}}
        self.metrics.append(row)
        if self.member_runs:
            self.member_runs[identity["member"]].log(dict(values), step=step)
        elif self.wandb_run is not None:
            if self.population:
                values = {f"seed_{identity['seed']}/{k}": v for k, v in values.items()}
            self.wandb_run.log(dict(values), step=step)

    def log_images(self, step: int, images: dict[str, Path]) -> None:
        """The figures (they show member 0, or the whole population) go to the (first member's) run."""
        if self.wandb_run is not None:
            import wandb

            self.wandb_run.log({k: wandb.Image(str(p)) for k, p in images.items()}, step=step)

    def update_summary(self, values: dict[str, Any]) -> None:
        if self.member_runs:  # each member's run: the run's outcome and its own replica entry
            shared = {k: v for k, v in values.items() if k not in ("replicas", "seeds", "population")}
            for run, replica in zip(self.member_runs, values.get("replicas", []), strict=False):
                run.summary.update({**shared, **replica})
        elif self.wandb_run is not None:
            self.wandb_run.summary.update(values)

    def finish(self, exit_code: int) -> None:
        self.metrics.close()
        for run in self.member_runs or ([self.wandb_run] if self.wandb_run is not None else []):
            run.finish(exit_code=exit_code)


def _start_wandb(
    run_dir: Path,
    *,
    project: str,
    entity: str | None,
    group: str | None,
    name: str,
    tags: list[str],
    mode: str,
    config: dict,
    run_id: str | None,
    reinit: str = "finish_previous",
) -> Any:
    """A new W&B run, or (given `run_id`, when a run directory is resumed) the same run continued."""
    import wandb

    settings = wandb.Settings(
        silent=True, console="off", init_timeout=WANDB_INIT_TIMEOUT_S, disable_git=True, x_disable_stats=True
    )
    kwargs: dict[str, Any] = dict(
        project=project,
        entity=entity,
        group=group,
        name=name,
        tags=tags,
        config=config,
        dir=str(run_dir),
        job_type="train",
        reinit=cast(Any, reinit),  # a population's member runs: "create_new", several at once
        settings=settings,
        id=run_id,
        resume="allow" if run_id else None,
    )
    if mode == "online" and not wandb.login(prompt=False, verify=False):
        # wandb would ask for a key on a terminal and wait for ever.
        log.warning(
            "W&B: logger.mode=online but no API key is set (WANDB_API_KEY, `wandb login`); logging offline instead"
        )
        mode = "offline"
    try:
        run = wandb.init(mode=cast(Any, mode), **kwargs)
    except Exception as error:  # online but unreachable: keep the run, log offline
        if mode != "online":
            raise
        log.warning("W&B online init failed (%s); logging offline instead", error)
        run = wandb.init(mode="offline", **kwargs)
    log.info(
        "W&B run %s (%s), files in %s",
        run.id,
        "offline" if run.offline else "online",
        Path(run.dir).parent,
    )
    return run
