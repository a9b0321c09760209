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

In a submitit job (hydra/launcher=submitit_slurm or submitit_local), submitit's own signal
(SIGUSR2, sent before the time limit or at preemption) is taken too: the run saves at the
step it reached, then submitit's handler requeues the same job, which resumes there.
Outside training that signal goes to submitit's handler at once.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from collections.abc import Callable, Iterator
from typing import Any

from gan_jax.errors import GanJaxError

log = logging.getLogger(__name__)

SIGNALS = (signal.SIGTERM, signal.SIGUSR1)
_noted: int | None = None  # the signal received while deferring
_deferring = False
# In a submitit job: its signal and its handler (which requeues the job and exits).
_submitit_signal: int | None = None
_submitit_handler: Callable[[int, Any], Any] | None = None


class Preempted(GanJaxError):
    """The run was asked to stop and saved a checkpoint at the step it reached."""

    exit_code = 75  # EX_TEMPFAIL: a scheduler's requeue reruns the same command, which resumes

    def __init__(self, message: str, signal_name: str | None = None):
        super().__init__(message)
        self.signal_name = signal_name


def _handle(signum: int, frame: object) -> None:
    global _noted
    if not _deferring:
        if signum == _submitit_signal and _submitit_handler is not None:
            _submitit_handler(signum, frame)  # requeues and exits; the rerun starts from the latest checkpoint
        raise SystemExit(128 + signum)
    _noted = signum


def install() -> None:
    """The handlers, once per process, after submitit's (whose requeue they hand over to)."""
    global _submitit_signal, _submitit_handler
    signals = list(SIGNALS)
    submitit_signal = getattr(signal, "SIG" + os.environ.get("SUBMITIT_PREEMPT_SIGNAL", "USR2"), None)
    if submitit_signal is not None and submitit_signal not in signals:
        handler = signal.getsignal(submitit_signal)
        if callable(handler) and type(getattr(handler, "__self__", None)).__module__.startswith("submitit."):
            _submitit_signal, _submitit_handler = submitit_signal, handler
            signals.append(submitit_signal)
    for signum in signals:
        signal.signal(signum, _handle)


def requeue(preempted: Preempted) -> None:
    """A run stopped by submitit's signal: submitit's handler requeues the job (it exits; the
    requeued job resumes from the checkpoint just saved). Otherwise nothing happens."""
    handler, signum = _submitit_handler, _submitit_signal
    if handler is None or signum is None or preempted.signal_name != signal.Signals(signum).name:
        return
    log.warning("%s; submitit requeues the job", preempted)
    handler(signum, None)


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
