"""The host loop: config -> parts -> state -> compiled step -> loop -> run directory.

A run directory receives metrics.jsonl (one row per logged step), summary.json
(written whatever the outcome, once the run is accepted), samples.npy (the final
generator's samples), PNG figures (samples/step_*.png every train.sample_every steps),
checkpoints/ (and best/ with train.keep_best), the recorded config (.hydra/) and, unless
logger=none, the W&B run files.
One process owns a run directory at a time (gan_jax/rundir.py); a run over several
processes (gan_jax/distributed.py) runs this loop on each, and only process 0 writes the
directory (Orbax checkpoints are written by all together).
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn, cast

import jax
import jax.numpy as jnp
import numpy as np
from omegaconf import DictConfig, OmegaConf
from tqdm import tqdm

from gan_jax import (
    checkpoint,
    config,
    distributed,
    feed,
    memory,
    parallel,
    pbt,
    plots,
    population,
    preemption,
    report,
    run_logger,
    rundir,
    step,
    summary,
)
from gan_jax.checkpoint import BestCheckpoint, Checkpoints
from gan_jax.data import BatchDataset
from gan_jax.errors import TrainingDiverged
from gan_jax.evaluate import Evaluation, StateEvaluator
from gan_jax.parts import build as build_parts
from gan_jax.run_logger import RunLogger
from gan_jax.rundir import Status
from gan_jax.schedules import MEMBER_PREFIX

log = logging.getLogger(__name__)

SAVED_IMAGES = 1000  # of the final evaluation's images, in samples.npy (gan-eval rescores the checkpoint)
GRID_IMAGES = 64


@dataclass
class Record:
    """What the loop has seen so far; enough to write the summary at any point."""

    members: list[population.Member]  # one per replica of the population (one for a plain run)
    varied: tuple[str, ...] = ()  # the keys a hyper-parameter population varies (rows then carry "member")
    rows: list[dict] = field(default_factory=list)  # as in metrics.jsonl, each with its seed (and member)
    panels: list[Evaluation] = field(default_factory=list)  # at the evaluators' extra steps, first replica
    finals: dict[int, Evaluation] = field(default_factory=dict)  # member index -> latest evaluation
    lineage: list[dict] = field(default_factory=list)  # PBT's exploit events (gan_jax/pbt.py)
    # A hyper-parameter population's members whose values stopped being finite -> that step:
    # the others train on (a sweep's other jobs would), PBT overwrites them with a copy.
    diverged: dict[int, int] = field(default_factory=dict)
    pbt_rounds: list[int] = field(default_factory=list)  # the steps of PBT's rounds (one may copy nothing)
    steps_done: int = 0
    start_step: int = 0  # > 0 when resumed from a checkpoint
    seconds_before: float = 0.0  # training time of earlier attempts, up to start_step
    attempt_seconds: float = 0.0  # training time of this attempt

    @property
    def train_seconds(self) -> float:
        return self.seconds_before + self.attempt_seconds

    @property
    def seeds(self) -> list[int]:
        return [m.seed for m in self.members]

    def identity(self, member: population.Member) -> dict[str, int]:
        """What a row of `member` carries to say whose it is."""
        return {"member": member.index, "seed": member.seed} if self.varied else {"seed": member.seed}

    def rows_of(self, index: int) -> list[dict]:
        """Member `index`'s rows."""
        if self.varied:
            return [r for r in self.rows if r.get("member") == index]
        seed = self.members[index].seed
        return [r for r in self.rows if r["seed"] == seed]


@dataclass
class RunContext:
    """One accepted run: what it was built from, what it holds open (closed once, by `run`'s
    ExitStack, however the run ends) and what it has recorded."""

    cfg: DictConfig
    run_dir: Path
    parts: step.GANParts
    evaluate: StateEvaluator
    devices: list
    checkpoints: Checkpoints
    best: BestCheckpoint | None  # train.keep_best
    logger: RunLogger
    record: Record
    started_at: float  # time.time() when `run` was called
    parameters: dict[str, int]  # each player's parameters (one replica's), as gan-summary counts them
    exploration: pbt.Exploration | None = None  # train.pbt
    status: Status = Status.FAILED  # until the run finishes or diverges


@dataclass(frozen=True)
class Stops:
    """The steps where the loop stops to evaluate, sample or save, found without listing them.

    Each kind is due every `every` steps and at the last step; `extra` adds single steps
    (the evaluators' extra steps). Works for any number of steps without materialising them.
    """

    total: int
    eval_every: int
    sample_every: int
    save_every: int
    extra: frozenset = frozenset()

    def evaluates(self, s: int) -> bool:
        return s % self.eval_every == 0 or s == self.total or s in self.extra

    def samples(self, s: int) -> bool:
        return s % self.sample_every == 0 or s == self.total

    def saves(self, s: int) -> bool:
        return s % self.save_every == 0 or s == self.total

    def next_after(self, done: int) -> int:
        following = [(done // every + 1) * every for every in (self.eval_every, self.sample_every, self.save_every)]
        return min([self.total, *following, *(s for s in self.extra if s > done)])


def _stops(cfg: DictConfig, evaluate: StateEvaluator) -> Stops:
    train = cfg.train
    extra = evaluate.extra_steps(train.steps, train.steps_per_call)
    return Stops(train.steps, cfg.eval.every, train.sample_every, train.checkpoint_every, extra)


def _logged_by_this_schedule(row: dict, stops: Stops, log_every: int) -> bool:
    """Would a run of `stops.total` steps have written `row`? A training row (it has d_loss)
    is logged every log_every steps and at the last step; an evaluation row at the stops."""
    at = row["step"]
    if "d_loss" in row:
        return at % log_every == 0 or at == stops.total
    return stops.evaluates(at)


def chunk_sizes(stops: Stops, steps_per_call: int, start: int = 0) -> Iterator[int]:
    """Sizes of successive compiled calls from `start`: at most steps_per_call, never crossing a stop."""
    done = start
    while done < stops.total:
        size = min(steps_per_call, stops.next_after(done) - done)
        done += size
        yield size


def run(
    cfg: DictConfig,
    run_dir: Path,
    *,
    wandb_group: str | None = None,
    wandb_name: str | None = None,
    record_config: Callable[[Path], None] | None = None,
) -> dict[str, Any]:
    """Trains one GAN as `cfg` says and fills `run_dir`; returns the summary.

    Nothing in `run_dir` changes until the run is accepted (config valid, the directory
    free, a checkpoint there continued with the same config); from then on summary.json
    is written whatever happens. `record_config(run_dir)` writes the config files
    (default: `.hydra/config.yaml`).
    """
    started_at = time.time()
    distributed.initialize(cfg.dist)
    distributed.check_same_config(cfg, run_dir)
    writes = distributed.is_primary()
    devices = parallel.select_devices(cfg.train.num_devices, cfg.train.parallel)
    config.validate(cfg, len(devices))
    parts = build_parts(cfg)
    evaluate = StateEvaluator(parts, cfg.eval, cfg.dataset, progress=cfg.train.progress_bar and writes)
    _check_summary_keys(cfg, parts, evaluate)
    with contextlib.ExitStack() as resources:
        resources.enter_context(distributed.claim_run_directory(run_dir))
        checkpoints = resources.enter_context(contextlib.closing(Checkpoints(run_dir, cfg.train.keep_checkpoints)))
        best = None
        if cfg.train.keep_best is not None:
            best = resources.enter_context(
                contextlib.closing(BestCheckpoint(run_dir, cfg.train.keep_best, evaluate.directions()))
            )
        state, record, wandb_ids = _start_or_resume(cfg, parts, evaluate, checkpoints, run_dir, writes)
        if writes:
            (record_config or _record_config(cfg))(run_dir)
            (run_dir / "samples").mkdir(exist_ok=True)
        logger = RunLogger(
            run_dir,
            _wandb_settings(cfg, wandb_group, wandb_name or run_dir.name, wandb_ids, record),
            population=len(record.members) > 1,
            writes=writes,
        )
        parameters = {
            "generator": _replica_size(state.generator.params),
            "discriminator": _replica_size(state.discriminator.params),
        }
        context = RunContext(
            cfg,
            run_dir,
            parts,
            evaluate,
            devices,
            checkpoints,
            best,
            logger,
            record,
            started_at,
            parameters,
            pbt.from_config(cfg, evaluate.directions(), lambda key, value: config.key_accepts(cfg, key, value)),
        )
        resources.callback(_finish_logger, context)
        # Accepted: from here on summary.json is written whatever happens.
        return _train_and_summarise(context, state)


def _replica_size(params: Any) -> int:
    """The parameters of one replica of a population state (leaves [replicas, ...])."""
    return sum(math.prod(leaf.shape[1:]) for leaf in jax.tree.leaves(params))


def _record_config(cfg: DictConfig) -> Callable[[Path], None]:
    return lambda run_dir: rundir.record_config(run_dir, OmegaConf.to_yaml(cfg))


def _train_and_summarise(run: RunContext, state: step.GANState) -> dict[str, Any]:
    """Trains, writes the final outputs, and then, however that ended, summary.json; returns the summary."""
    error = None
    try:
        state = _train(run, state)
        if run.logger.writes:
            _write_final_outputs(run, state)
        run.status = Status.FINISHED
    except TrainingDiverged as diverged:
        run.status, error = Status.DIVERGED, str(diverged)
        raise
    except preemption.Preempted as preempted:
        run.status, error = Status.PREEMPTED, str(preempted)
        raise
    except config.ConfigError as invalid:  # found once the step is compiled (a population too large)
        run.status, error = Status.INVALID_CONFIG, f"ConfigError: {invalid}"
        raise
    except BaseException as exc:
        error = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        outputs = _summary(run, error)
        _write_summary(run, outputs)
    return outputs


def _write_summary(run: RunContext, outputs: dict[str, Any]) -> None:
    """summary.json, also in W&B; when the run is already failing, a failure here (a full
    disk, say) is logged rather than hiding the first error."""
    failing = run.status is not Status.FINISHED
    try:
        if not run.logger.writes:
            return
        if failing:
            run.checkpoints.remove_unfinished()
        rundir.write_summary(run.run_dir, outputs)
        if run.record.rows and failing:  # keep the curves up to the failure
            first_rows = run.record.rows_of(0)
            plots.discriminator_outputs(first_rows, run.run_dir / "discriminator_outputs.png")
        if run.cfg.logger.get("report"):
            report.refresh_run_report(run.run_dir)  # the final status; never raises
    except OSError as error:
        if not failing:
            raise
        log.error("could not write %s: %s", run.run_dir / rundir.SUMMARY_FILE, error)
    finally:
        run.logger.update_summary(outputs)


def _finish_logger(run: RunContext) -> None:
    """Closes metrics.jsonl and finishes the W&B run with the run's exit code."""
    run.logger.finish(0 if run.status is Status.FINISHED else 1)


def summary_keys(cfg: DictConfig, parts: step.GANParts, evaluate: StateEvaluator) -> list[str]:
    """The numeric keys a run's summary.json will have, found without training."""
    state = step.init_state(parts, 0, population.first_values(cfg))
    batch = 2 * parts.grad_accum * parts.models.d_pack  # the smallest batch the step takes
    real = None
    if parts.data.host_batches:
        real = {"images": jax.ShapeDtypeStruct((parts.d_steps, batch, *parts.data.shape), jnp.float32)}
        if parts.models.conditional:
            real["labels"] = jax.ShapeDtypeStruct((parts.d_steps, batch), jnp.int32)
    metrics = jax.eval_shape(lambda s, r: step.train_step(parts, batch, None, s, r)[1], state, real)
    return summary.keys(list(metrics), evaluate.scalar_keys())


def _check_summary_keys(cfg: DictConfig, parts: step.GANParts, evaluate: StateEvaluator) -> None:
    """objective and train.keep_best name keys this run will have (keep_best: one with a direction)."""
    if cfg.objective is not None and cfg.objective not in (keys := summary_keys(cfg, parts, evaluate)):
        raise config.ConfigError(
            f"objective={cfg.objective!r}: not a key of this run's summary.json; valid values are {', '.join(keys)}"
        )
    ranked = [f"eval.{k}" for k, way in evaluate.directions().items() if way != "none"]
    for key, chosen in (("train.keep_best", cfg.train.keep_best), ("train.pbt.objective", cfg.train.pbt.objective)):
        if key == "train.pbt.objective" and cfg.train.pbt.every is None:
            continue
        if chosen is not None and chosen not in ranked:
            raise config.ConfigError(
                f"{key}={chosen!r}: not an evaluation key with a direction in this run; "
                f"valid values are {', '.join(ranked) or 'none (this run evaluates nothing that ranks)'}"
            )


def _start_or_resume(
    cfg: DictConfig,
    parts: step.GANParts,
    evaluate: StateEvaluator,
    checkpoints: Checkpoints,
    run_dir: Path,
    writes: bool,
) -> tuple[step.GANState, Record, list[str] | None]:
    """A fresh state, or the latest intact checkpoint's, with metrics.jsonl cut to match
    (by the process that `writes` the directory; the others keep no rows).

    The config is compared with the checkpoint's before anything in the directory
    changes; a checkpoint that cannot be read is set aside and the previous one used.
    """
    members, varied = population.members(cfg), population.keys(cfg)
    fresh = population.initial_state(parts, cfg)
    metrics = rundir.MetricsFile(run_dir) if writes else _NoMetricsFile()
    metrics.read(warn=False)  # a damaged metrics.jsonl stops the run before anything is changed
    latest = checkpoints.latest_step()
    if latest is None:
        metrics.restart_at(None)
        return fresh, Record(members, varied), None
    if latest > cfg.train.steps:
        raise config.ConfigError(
            f"train.steps={cfg.train.steps}: {run_dir} holds a checkpoint at step {latest}; "
            f"continue it with train.steps >= {latest}, or start a new run directory"
        )
    saved_config = checkpoints.saved_config()
    config_differences = checkpoint.differences(saved_config, cfg) if saved_config is not None else []
    if config_differences:
        raise config.ConfigError(
            f"{run_dir} holds a run with another config ({'; '.join(config_differences)}); "
            "resume it with the same config, or start a new run directory"
        )
    restored = checkpoints.restore_latest_intact(fresh)
    if restored is None:
        log.warning("%s: no checkpoint can be restored; starting afresh", run_dir)
        metrics.restart_at(None)
        return fresh, Record(members, varied), None
    at, state, meta = restored
    _check_same_images(parts, meta, run_dir, at)
    # A run extended past its old last step drops the rows it logged only because it ended there.
    stops = _stops(cfg, evaluate)
    rows = metrics.restart_at(
        at, keep=lambda row: row["step"] < at or _logged_by_this_schedule(row, stops, cfg.train.log_every)
    )
    panels = [Evaluation.from_json(p) for p in meta["panels"]]
    log.info("resuming %s from its checkpoint at step %d", run_dir, at)
    record = Record(
        members,
        varied,
        rows=rows,
        panels=panels,
        lineage=[e for e in meta.get("pbt_lineage", []) if e["step"] <= at],
        diverged={int(k): v for k, v in meta.get("diverged_members", {}).items()},
        pbt_rounds=[r for r in meta.get("pbt_rounds", []) if r <= at],
        steps_done=at,
        start_step=at,
        seconds_before=meta.get("train_seconds", 0.0),
    )
    # a hyper-parameter population's member runs, else the run's one (None: W&B was off)
    return state, record, meta.get("wandb_ids") or ([meta["wandb_id"]] if meta.get("wandb_id") else None)


class _NoMetricsFile:
    """What a process that does not write the run directory reads of metrics.jsonl."""

    def read(self, warn: bool = True) -> list[dict]:
        return []

    def restart_at(self, step: int | None, keep: Callable[[dict], bool] | None = None) -> list[dict]:
        return []


def _train(run: RunContext, state: step.GANState) -> step.GANState:
    train, record, logger = run.cfg.train, run.record, run.logger
    stops = _stops(run.cfg, run.evaluate)
    placement = parallel.DataParallel(tuple(run.devices), train.parallel)
    train_steps = parallel.compile_train_steps(run.parts, train.batch_size, placement)
    chunks = chunk_sizes(stops, train.steps_per_call, start=record.steps_done)
    real_batches = (
        feed.device_batches(
            cast(BatchDataset, run.parts.data),
            record.seeds,
            record.steps_done,
            chunk_sizes(stops, train.steps_per_call, start=record.steps_done),
            train.d_steps,
            train.batch_size,
            placement,
            labels=run.parts.models.conditional,
            workers=run.cfg.dataset.get("workers", 0),  # absent from configs saved before it
        )
        if run.parts.data.host_batches
        else itertools.repeat(None)
    )

    def evaluate_population(members_state: step.GANState, log_rows: bool = True) -> None:
        for member in record.members:
            if member.index in record.diverged:
                continue  # nothing to score until PBT copies a member over it
            evaluation = run.evaluate(parallel.replica(members_state, member.index))
            record.finals[member.index] = evaluation
            if log_rows:
                logger.log(record.steps_done, record.identity(member), evaluation.scalars)
                record.rows.append({"step": record.steps_done, **record.identity(member), **evaluation.scalars})
            if member.index == 0 and record.steps_done in stops.extra:
                record.panels.append(evaluation)

    if (record.steps_done == 0 and 0 in stops.extra) or record.steps_done == train.steps:
        evaluate_population(state, log_rows=False)  # a metric's step 0, or a resumed run already done
    if _exploits_now(run) and record.steps_done not in record.pbt_rounds:
        # continued from a run that ended at an exploit step (it does not exploit at its last step)
        evaluate_population(state, log_rows=False)
        state = _exploit(run, state)
    replicated = placement.replicate(state)
    chunks, real_batches = _check_memory(run, train_steps, replicated, chunks, real_batches)
    start, saved_at = time.perf_counter(), record.steps_done
    with (
        tqdm(
            total=train.steps,
            initial=record.steps_done,
            unit="step",
            disable=not (train.progress_bar and logger.writes),
            dynamic_ncols=True,
            mininterval=0.5,
        ) as progress,
        preemption.deferred(),
    ):
        try:
            for call_index, size in enumerate(chunks):
                replicated, metrics = train_steps(replicated, size, next(real_batches))
                metrics = placement.fetch(metrics)  # [replicas, steps]
                first_step = record.steps_done + 1
                record.steps_done += size
                _log_rows(run, metrics, first_step)
                if stops.evaluates(record.steps_done):
                    evaluate_population(placement.unreplicate(replicated))
                    if run.best is not None:
                        _keep_if_best(run, run.best, placement.unreplicate(replicated))
                if _exploits_now(run):
                    replicated = placement.replicate(_exploit(run, placement.unreplicate(replicated)))
                if stops.samples(record.steps_done) and logger.writes:
                    _save_sample_grid(run, placement.unreplicate(replicated))
                if stops.evaluates(record.steps_done) and logger.writes and run.cfg.logger.get("report"):
                    report.refresh_run_report(run.run_dir)
                if stops.saves(record.steps_done):
                    # The time recorded with a checkpoint is the time the run had at it.
                    record.attempt_seconds = time.perf_counter() - start
                    saved_at = record.steps_done
                    run.checkpoints.save(record.steps_done, placement.unreplicate(replicated), _checkpoint_meta(run))
                progress.update(size)
                progress.set_postfix(d_real=f"{metrics['d_real'][0, -1]:.3f}", d_fake=f"{metrics['d_fake'][0, -1]:.3f}")
                if (signal_name := preemption.agreed(call_index)) and record.steps_done != train.steps:
                    record.attempt_seconds = time.perf_counter() - start
                    saved, saved_at = saved_at == record.steps_done, record.steps_done
                    _checkpoint_and_stop(run, placement.unreplicate(replicated), signal_name, saved)
        finally:
            if record.steps_done != saved_at:
                record.attempt_seconds = time.perf_counter() - start
    return placement.unreplicate(replicated)


def _check_memory(
    run: RunContext, train_steps: Any, replicated: Any, chunks: Iterator[int], real_batches: Iterator
) -> tuple[Iterator[int], Iterator]:
    """A population whose first chunk's step needs more device memory than there is stops
    here, before training (gan_jax/memory.py); the chunks and batches come back as they were."""
    if run.cfg.train.parallel == "pmap" or len(run.record.members) < 2:
        return chunks, real_batches
    limit_gb = run.cfg.train.get("memory_limit_gb")
    device = next(d for d in run.devices if d.process_index == jax.process_index())  # this process's
    limit = memory.limit_bytes(limit_gb, device)
    if limit is None:
        return chunks, real_batches
    first_size = next(chunks, None)
    if first_size is None:
        return chunks, real_batches
    first_batches = next(real_batches)
    executable = train_steps.compile(replicated, first_size, first_batches)
    source = "train.memory_limit_gb" if limit_gb is not None else f"the device ({device.device_kind})"
    memory.check(executable, limit, len(run.record.members), source)
    return itertools.chain([first_size], chunks), itertools.chain([first_batches], real_batches)


def _exploits_now(run: RunContext) -> bool:
    """PBT's round is due at the step reached (never at the last: nothing would train on it)."""
    done = run.record.steps_done
    return run.exploration is not None and run.exploration.due(done) and done != run.cfg.train.steps


def _exploit(run: RunContext, state: step.GANState) -> step.GANState:
    """PBT's exploit and explore round at this step, on the evaluation just made."""
    exploration, record = cast(pbt.Exploration, run.exploration), run.record
    finals = [record.finals.get(m.index) for m in record.members]
    scores = [None if final is None else final.scalars.get(exploration.objective) for final in finals]
    state, events = exploration.exploit(state, record.steps_done, scores, set(record.diverged))
    record.lineage += events
    record.pbt_rounds.append(record.steps_done)
    for event in events:  # a diverged member lives again as its source's copy
        record.diverged.pop(event["member"], None)
    for event in events:
        log.info(
            "PBT at step %d: member %d (%s %s) copies member %d (%s), now %s",
            event["step"],
            event["member"],
            exploration.objective,
            event["objective"]["member"],
            event["source"],
            event["objective"]["source"],
            event["after"],
        )
    return state


def _checkpoint_and_stop(run: RunContext, state: step.GANState, signal_name: str, saved: bool) -> NoReturn:
    """Preemption: a checkpoint at the step reached (unless one was just saved there), then Preempted."""
    if not saved:
        run.checkpoints.save(run.record.steps_done, state, _checkpoint_meta(run))
    raise preemption.Preempted(
        f"{signal_name} at step {run.record.steps_done}: stopped with a checkpoint there; "
        "run the same command to continue from it",
        signal_name,
    )


def _keep_if_best(run: RunContext, best: BestCheckpoint, state: step.GANState) -> None:
    """train.keep_best: saves the state when this evaluation (a population: its replicas' mean) beats the best."""
    key = best.key.removeprefix("eval.")
    finals = [run.record.finals.get(m.index) for m in run.record.members]
    value = summary.mean_or_none(None if f is None else f.scalars.get(key) for f in finals)
    best.consider(run.record.steps_done, value, state, _checkpoint_meta(run))


def _checkpoint_meta(run: RunContext) -> dict[str, Any]:
    record, wandb_run = run.record, run.logger.wandb_run
    return {
        "config": OmegaConf.to_container(run.cfg, resolve=True),
        "wandb_id": wandb_run.id if wandb_run is not None else None,
        "wandb_ids": [r.id for r in run.logger.member_runs],
        "panels": [e.to_json() for e in record.panels],
        # Batches are keyed by step: this is where the data stream resumes.
        "data_position": {"step": record.steps_done, "next_batch": record.steps_done * run.cfg.train.d_steps},
        "train_seconds": record.train_seconds,
        "images_sha256": _images_sha256(run.parts),
        "pbt_lineage": record.lineage,
        "diverged_members": {str(k): v for k, v in record.diverged.items()},
        "pbt_rounds": record.pbt_rounds,
    }


def _images_sha256(parts: step.GANParts) -> str | None:
    """A hash of the training images when the dataset has one (a folder's prepared copy)."""
    return (getattr(parts.data, "provenance", None) or {}).get("images_sha256")


def _check_same_images(parts: step.GANParts, meta: dict, run_dir: Path, at: int) -> None:
    """A checkpoint is continued on the images it was trained on (a folder edited since is refused)."""
    before, now = meta.get("images_sha256"), _images_sha256(parts)
    if before is not None and now is not None and before != now:
        raise config.ConfigError(
            f"dataset.path: {run_dir}'s checkpoint at step {at} was trained on other images (sha256 "
            f"{before[:12]}, now {now[:12]}): the folder changed; restore it, or start a new run directory"
        )


def _save_sample_grid(run: RunContext, population: step.GANState) -> None:
    """The first replica's generator on a fixed latent batch: samples/step_<step>.png."""
    first = parallel.replica(population, 0)
    fake = run.evaluate.fixed_batch(first)
    path = run.run_dir / "samples" / f"step_{run.record.steps_done:08d}.png"
    if fake.ndim == 4:
        plots.sample_grid(fake, path)
    else:
        plots.samples(_real_examples(run.parts, first, run.record.seeds[0], len(fake)), fake, path)
    run.logger.log_images(run.record.steps_done, {"sample_grid": path})


def _real_examples(parts: step.GANParts, state: step.GANState, seed: int, count: int) -> np.ndarray:
    if parts.data.host_batches:
        return cast(BatchDataset, parts.data).batch(seed, 0, count)
    return np.asarray(step.real_samples(parts, state.rng, count))


def _log_rows(run: RunContext, metrics: dict[str, np.ndarray], first_step: int) -> None:
    """Logs every log_every-th step of a chunk (metrics: [replicas, steps]).

    Stops at the first step where any replica's value is not finite; a hyper-parameter
    population only when every member's is (a member that diverged is logged at that step,
    then no more until PBT replaces it).
    """
    train, record = run.cfg.train, run.record
    finite_members = np.all([np.isfinite(v) for v in metrics.values()], axis=0)  # [replicas, steps]
    for i in range(finite_members.shape[1]):
        step_number = first_step + i
        newly = [m for m in record.members if not finite_members[m.index, i] and m.index not in record.diverged]
        if record.varied and newly:
            _members_diverged(run, newly, {k: v[:, i] for k, v in metrics.items()}, step_number)
        finite = bool(finite_members[:, i].all()) or (record.varied and len(record.diverged) < len(record.members))
        if finite and not newly and step_number % train.log_every and step_number != train.steps:
            continue
        for member in record.members:
            if record.diverged.get(member.index, step_number) < step_number:
                continue
            values: dict[str, Any] = {k: float(v[member.index, i]) for k, v in metrics.items()}
            for key in record.varied:  # as the config spells it: 0.001, not float32's 0.0010000000474974513
                values[MEMBER_PREFIX + key] = population.readable(run.cfg, key, values[MEMBER_PREFIX + key])
            run.logger.log(step_number, record.identity(member), values)
            record.rows.append({"step": step_number, **record.identity(member), **values})
        if not finite:
            record.steps_done = step_number
            bad = ", ".join(
                f"{k}={v[member.index, i]}" + (f" ({member.label()})" if len(record.members) > 1 else "")
                for member in record.members
                for k, v in metrics.items()
                if not np.isfinite(v[member.index, i])
            )
            raise TrainingDiverged(
                f"training diverged at step {step_number}: {bad}. Everything written so far "
                "is kept in the run directory; try a smaller optim.lr or another loss."
            )


def _members_diverged(run: RunContext, members: list[population.Member], values: dict, step_number: int) -> None:
    """Marks hyper-parameter population members whose values stopped being finite."""
    for member in members:
        run.record.diverged[member.index] = step_number
        run.record.finals.pop(member.index, None)  # an earlier score would rank it among the living
        bad = ", ".join(f"{k}={v[member.index]}" for k, v in values.items() if not np.isfinite(v[member.index]))
        now = {k: population.readable(run.cfg, k, values[MEMBER_PREFIX + k][member.index]) for k in run.record.varied}
        log.warning(
            "%s diverged at step %d (%s); the other members train on%s",
            dataclasses.replace(member, values=now).label(),
            step_number,
            bad,
            ", and PBT will replace it" if run.exploration is not None else "",
        )


def _write_final_outputs(run: RunContext, state: step.GANState) -> None:
    """samples.npy: [eval samples, *data shape] (images: the first SAVED_IMAGES), or
    [num_seeds, ...] for a population (NaN for a member that diverged); the figures show the
    first replica (that did not)."""
    record, evaluate, run_dir = run.record, run.evaluate, run.run_dir
    shown_member = next(m for m in record.members if m.index in record.finals)
    kept = {i: f.samples[:SAVED_IMAGES] if f.samples.ndim == 4 else f.samples for i, f in record.finals.items()}
    blank = np.full_like(kept[shown_member.index], np.nan)
    samples = np.stack([kept.get(m.index, blank) for m in record.members])
    np.save(run_dir / "samples.npy", samples[0] if len(record.members) == 1 else samples)
    first, shown_final = parallel.replica(state, shown_member.index), record.finals[shown_member.index]
    shown = min(GRID_IMAGES, evaluate.num_samples) if shown_final.samples.ndim == 4 else evaluate.num_samples
    real = _real_examples(run.parts, first, shown_member.seed, shown)
    first_rows = record.rows_of(shown_member.index)
    figures = {
        "samples": plots.samples(real, shown_final.samples, run_dir / "samples.png"),
        "discriminator_outputs": plots.discriminator_outputs(first_rows, run_dir / "discriminator_outputs.png"),
    }
    curves = plots.evaluation_curves(first_rows, evaluate.directions(), run_dir / "evaluation.png")
    if curves is not None:
        figures["evaluation"] = curves
    figures |= evaluate.figures(record.panels, run_dir)
    if record.varied:
        figures["population"] = plots.member_values(
            [record.rows_of(m.index) for m in record.members], record.varied, record.lineage, run_dir / "population.png"
        )
    run.logger.log_images(run.cfg.train.steps, figures)


def _summary(run: RunContext, error: str | None) -> dict[str, Any]:
    """summary.json (gan_jax/summary.py has its layout) from what the loop has recorded."""
    record, logger = run.record, run.logger
    replicas = [
        {
            **record.identity(member),
            **(
                {"hyperparams": population.ended_values(run.cfg, member, record.rows_of(member.index))}
                if record.varied
                else {}
            ),
            **(
                {"status": Status.DIVERGED.value, "diverged_step": record.diverged[member.index]}
                if member.index in record.diverged
                else {}
            ),
            **summary.replica(
                record.rows_of(member.index),
                run.cfg.train.steps,
                _final_evaluation(record, member.index),
            ),
        }
        for member in record.members
    ]
    wandb = None
    if logger.wandb_run is not None:
        disabled = logger.wandb_mode == "disabled"
        wandb = {
            "id": logger.wandb_run.id,
            **({"ids": [r.id for r in logger.member_runs]} if logger.member_runs else {}),
            "dir": None if disabled else str(Path(logger.wandb_run.dir).parent),
            "mode": logger.wandb_mode,
        }
    return summary.run(
        status=run.status,
        error=error,
        steps_completed=record.steps_done,
        steps_requested=run.cfg.train.steps,
        train_seconds=record.train_seconds,
        resumed_from_step=record.start_step or None,
        started_at=run.started_at,
        devices=len(run.devices),
        processes=distributed.process_count(),
        backend=jax.default_backend(),
        replicas=replicas,
        extra={"parameters": run.parameters}
        | (_population_summary(run, replicas) if record.varied else {})
        | run.evaluate.summary()
        | (run.best.summary() if run.best is not None else {}),
        wandb=wandb,
    )


def _population_summary(run: RunContext, replicas: list[dict]) -> dict[str, Any]:
    pbt_record = None if run.exploration is None else run.exploration.describe() | {"lineage": run.record.lineage}
    return {"population": population.summary(run.cfg, replicas, pbt_record)}


def _final_evaluation(record: Record, index: int) -> dict[str, Any] | None:
    final = record.finals.get(index)
    return None if final is None else {"step": final.step, **final.scalars}


def _wandb_settings(
    cfg: DictConfig, group: str | None, name: str, run_ids: list[str] | None, record: Record
) -> dict | list[dict] | None:
    """The W&B run's settings; a hyper-parameter population's: one run per member, each with
    the config of the single run it is, in a group of their own (the sweep's, when in one),
    so W&B's tables and parallel coordinates compare members as they compare runs."""
    if cfg.logger.name == "none":
        return None
    common = dict(
        project=cfg.logger.project,
        entity=cfg.logger.entity,
        tags=list(cfg.logger.tags),
        mode=run_logger.wandb_mode(cfg.logger.mode),
    )
    if not record.varied:
        run_id = run_ids[0] if run_ids else None
        return dict(common, group=group, name=name, run_id=run_id, config=OmegaConf.to_container(cfg, resolve=True))
    return [
        dict(
            common,
            group=group or name,
            name=f"{name}/member_{member.index}",
            run_id=run_ids[member.index] if run_ids and len(run_ids) == len(record.members) else None,
            config={
                **cast(dict, OmegaConf.to_container(population.member_config(cfg, member), resolve=True)),
                "population_member": member.index,
            },
        )
        for member in record.members
    ]
