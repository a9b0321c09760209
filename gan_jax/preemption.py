"""Preemption: SIGTERM or SIGUSR1 (SLURM's `--signal` warning) during training stops the run at
the step it has reached, with a checkpoint there, summary.json's status `preempted` and exit
code 75 (EX_TEMPFAIL, "try again"); the same command then resumes from that step.

    preemption.install()                 # gan-train: the handlers, once per process
    with preemption.deferred():          # the training loop: a signal is only noted ...
        ...
        if preemption.agreed(chunk):     # ... and acted on between compiled calls
            save; raise Preempted

Outside `deferred()` (starting up, compiling before the loop, the last evaluation) a signal
stops the process at once, as an exception that unwinds (summary.json is written, status
`failed`). In a run over several processes every process stops at the same call: JAX's
preemption sync point for SIGTERM (its coordination service takes SIGTERM over there), and
the processes' notes of SIGUSR1 gathered at each call.
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Iterator

from gan_jax.errors import GanJaxError

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_noted: int | None = None  # the signal received while deferring
_deferring = False


class Preempted(GanJaxError):
    """The run was asked to stop and saved a checkpoint at the step it reached."""

    exit_code = 75  # EX_TEMPFAIL: a scheduler's requeue reruns the same command, which resumes


def _handle(signum: int, frame: object) -> None:
    global _noted
    if not _deferring:
        raise SystemExit(128 + signum)
    _noted = signum


def install() -> None:
    for signum in SIGNALS:
        signal.signal(signum, _handle)


@contextlib.contextmanager
def deferred() -> Iterator[None]:
    """Within it, the signals are noted for `agreed` to act on, not raised."""
    global _deferring, _noted
    _deferring, _noted = True, None
    try:
        yield
    finally:
        _deferring = False


def noted() -> str | None:
    """The name of the signal noted in this process, or None."""
    return None if _noted is None else signal.Signals(_noted).name


def agreed(call_index: int) -> str | None:
    """Whether to stop after this compiled call (call_index: 0, 1, 2, ... from the loop's
    start): the signal's name when this process, or in a multi-process run any process, was
    signalled; every process gets the same answer at the same call."""
    import jax

    if jax.process_count() == 1:
        return noted()
    import numpy as np
    from jax.experimental import multihost_utils

    if multihost_utils.reached_preemption_sync_point(call_index):
        return "SIGTERM"
    signals = multihost_utils.process_allgather(np.int32(_noted or 0))
    first = int(np.max(signals))
    return signal.Signals(first).name if first else None
