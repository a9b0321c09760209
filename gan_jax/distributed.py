"""One run over several processes (hosts), on jax.distributed.

Every process runs the same loop on the same config and compiles the same sharded step
over the global device mesh (parallel.py); each reads only its share of every image
batch (feed.py). Process 0 owns the run directory: it alone holds the lock and writes
metrics.jsonl, summary.json, the figures and the W&B run. Orbax checkpoints are saved
and restored by all processes together, as host arrays, so a checkpoint written by N
processes resumes in M.

A run spans processes when `dist.coordinator_address` is set (with `dist.num_processes`
and `dist.process_id`; `python -m gan_jax.launch` sets them for processes on one
machine) or when it is a SLURM step of several tasks, whose variables JAX reads.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import cast

import jax
import numpy as np
from jax.experimental import multihost_utils
from omegaconf import DictConfig, OmegaConf

from gan_jax import rundir
from gan_jax.errors import OTHER_PROCESS_FAILED, ConfigError, GanJaxError

log = logging.getLogger(__name__)

# Keys that differ between the processes of one run by design.
PER_PROCESS_KEYS = ("dist.process_id",)

_barrier_timeout_s = 300  # dist.timeout_s of the run this process joined
_barriers_passed = 0


class ProcessFailed(GanJaxError):
    """Another process of the run could not start; the message gives its reason."""

    exit_code = OTHER_PROCESS_FAILED


def initialize(dist: DictConfig) -> None:
    """Joins the run's processes, if it has more than one; a no-op otherwise and when joined."""
    explicit = dist.coordinator_address is not None
    slurm_tasks = int(os.environ.get("SLURM_STEP_NUM_TASKS", os.environ.get("SLURM_NTASKS", "1")))
    if not explicit and slurm_tasks <= 1:
        return
    if jax.distributed.is_initialized():
        return  # a sweep's later jobs in the same processes
    global _barrier_timeout_s
    _barrier_timeout_s = dist.timeout_s
    if explicit:
        _check_explicit(dist)
        if dist.process_id != 0:  # process 0 serves the coordinator; the others must reach it
            _wait_for_coordinator(dist.coordinator_address, dist.timeout_s)
        log.info(
            "process %d of %d: joining the coordinator at %s (waiting up to %d s for every process)",
            dist.process_id,
            dist.num_processes,
            dist.coordinator_address,
            dist.timeout_s,
        )
        jax.distributed.initialize(
            dist.coordinator_address,
            num_processes=dist.num_processes,
            process_id=dist.process_id,
            initialization_timeout=dist.timeout_s,
        )
    else:
        log.info("SLURM step of %d tasks: joining through SLURM's variables", slurm_tasks)
        jax.distributed.initialize(initialization_timeout=dist.timeout_s)
    if not is_primary():
        _stop_writing_log_files()


def _check_explicit(dist: DictConfig) -> None:
    if dist.num_processes is None or dist.process_id is None:
        raise ConfigError(
            f"dist.coordinator_address={dist.coordinator_address!r}: also set dist.num_processes "
            "(the number of processes) and dist.process_id (0 .. num_processes - 1) on each process"
        )
    if not 0 <= dist.process_id < dist.num_processes:
        raise ConfigError(
            f"dist.process_id={dist.process_id}: valid values are 0 .. {dist.num_processes - 1} "
            f"(dist.num_processes={dist.num_processes})"
        )


def _wait_for_coordinator(address: str, timeout_s: int) -> None:
    """Fails with the address after `timeout_s` if nothing listens there (JAX would abort)."""
    host, _, port = address.rpartition(":")
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, int(port)), timeout=1.0):
                return
        except OSError as error:
            if time.monotonic() >= deadline:
                raise ConfigError(
                    f"dist.coordinator_address={address}: no coordinator answered within "
                    f"dist.timeout_s={timeout_s} s ({error}); start process 0 (it serves the "
                    "coordinator) and check the address and port"
                ) from None
            time.sleep(0.2)


def _stop_writing_log_files() -> None:
    """Hydra's job log file belongs to process 0; the others log to the console only."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, logging.FileHandler)]:
        root.removeHandler(handler)
        handler.close()


def process_count() -> int:
    return jax.process_count()


def is_primary() -> bool:
    """The process that writes the run directory."""
    return jax.process_index() == 0


def barrier(name: str) -> None:
    """Waits, up to dist.timeout_s, until every process gets here. Through the coordination
    service, not a device collective: CPU collectives give a process that arrives late,
    still compiling say, only 30 s to set up the first one."""
    global _barriers_passed
    if process_count() == 1:
        return
    import orbax.checkpoint as ocp

    _barriers_passed += 1
    ocp.multihost.get_barrier_sync_fn()(key=f"gan_jax/{name}/{_barriers_passed}", timeout_ms=_barrier_timeout_s * 1000)


def _gather_bytes(payload: bytes) -> list[bytes]:
    """Every process's `payload`, in process order."""
    sizes = multihost_utils.process_allgather(np.int32(len(payload)))
    padded = np.zeros(max(int(sizes.max()), 1), np.uint8)
    padded[: len(payload)] = np.frombuffer(payload, np.uint8)
    rows = multihost_utils.process_allgather(padded)
    return [bytes(row[:size]) for row, size in zip(rows, sizes, strict=True)]


def check_same_config(cfg: DictConfig, run_dir: Path) -> None:
    """Raises ConfigError on every process when the processes were given different configs."""
    if process_count() == 1:
        return
    from gan_jax.config import flatten

    mine = flatten(cast(dict, OmegaConf.to_container(cfg, resolve=True))) | {"hydra.run.dir": str(run_dir.resolve())}
    for key in PER_PROCESS_KEYS:
        mine.pop(key, None)
    configs = [json.loads(b) for b in _gather_bytes(json.dumps(mine, sort_keys=True, default=str).encode())]
    differing = []
    for index, other in enumerate(configs[1:], start=1):
        keys = sorted(k for k in set(other) | set(configs[0]) if other.get(k) != configs[0].get(k))
        differing += [f"{k}: process 0 has {configs[0].get(k)!r}, process {index} {other.get(k)!r}" for k in keys]
    if differing:
        raise ConfigError(
            "the processes of this run were given different configs (give every process the same "
            "overrides, and the same hydra.run.dir):\n  " + "\n  ".join(differing)
        )


@contextlib.contextmanager
def claim_run_directory(run_dir: Path) -> Iterator[None]:
    """rundir.claim on process 0; every process learns whether it succeeded before going on."""
    if process_count() == 1:
        with rundir.claim(run_dir):
            yield
        return
    with contextlib.ExitStack() as stack:
        failure: Exception | None = None
        if is_primary():
            try:
                stack.enter_context(rundir.claim(run_dir))
            except Exception as error:  # noqa: BLE001 - every process must hear of it
                failure = error
        check_all_started(failure)
        yield


def check_all_started(failure: Exception | None) -> None:
    """A collective: raises `failure` where it happened and ProcessFailed on the other processes."""
    if process_count() == 1:
        if failure is not None:
            raise failure
        return
    messages = [m.decode() for m in _gather_bytes(b"" if failure is None else str(failure).encode())]
    if failure is not None:
        raise failure
    for index, message in enumerate(messages):
        if message:
            raise ProcessFailed(f"process {index} of this run could not start: {message}")
