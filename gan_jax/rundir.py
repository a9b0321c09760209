"""The run directory: owned by one process at a time, every file in it written whole.

- `claim`: an exclusive lock on `<run dir>/.lock` for the whole run; a second process
  fails at once, naming the holder.
- `write_atomic`: a temporary file, then a rename: a full disk or a kill leaves the old
  file or the new one, never part of either (summary.json, the recorded config).
- `MetricsFile`: metrics.jsonl, one JSON row per line, each appended whole (a write that
  fails is cut back); on start it is cut to the step the run continues from.
- `record_config`: `.hydra/config.yaml` and `overrides.yaml`, written only once the run is
  accepted, so a rejected resume leaves the directory as it was.
- `Status` and `write_summary` / `read_summary`: summary.json's status values and file
  (its layout is gan_jax/summary.py's).
"""

from __future__ import annotations

import contextlib
import enum
import errno
import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import yaml

from gan_jax.errors import GanJaxError, RunDirectoryInUse

log = logging.getLogger(__name__)

LOCK_FILE = ".lock"
METRICS_FILE = "metrics.jsonl"
SUMMARY_FILE = "summary.json"


class Status(enum.StrEnum):
    """summary.json's `status`: how the run's latest attempt ended."""

    FINISHED = "finished"
    FAILED = "failed"  # raised, was stopped (Ctrl-C, a signal outside training), or could not start
    PREEMPTED = "preempted"  # SIGTERM / SIGUSR1 in training: stopped with a checkpoint at the step reached
    DIVERGED = "diverged"  # a loss or D output turned NaN or infinite
    INVALID_CONFIG = "invalid_config"  # rejected before training (a sweep job records it)


class DamagedRunDirectory(GanJaxError):
    """A file of the run directory cannot be read back; the message names it."""


@contextlib.contextmanager
def claim(run_dir: Path) -> Iterator[None]:
    """Holds `run_dir` for this process; raises RunDirectoryInUse naming the holder if another has it."""
    run_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(run_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 1024, 0).decode(errors="replace").strip() or "another process"
            raise RunDirectoryInUse(
                f"{run_dir} is in use by {holder}; wait for that run to end, or choose another "
                "run directory (hydra.run.dir=...)"
            ) from None
        except OSError as error:  # some cluster file systems are mounted without lock support
            log.warning(
                "%s: cannot be locked on this file system (%s); nothing stops a second "
                "process from writing to it at the same time",
                run_dir,
                error,
            )
        since = time.strftime("%Y-%m-%d %H:%M:%S")
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"gan-train (pid {os.getpid()} on {socket.gethostname()}, since {since})\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the descriptor releases the lock


def write_atomic(path: Path, content: str | Callable[[Any], None]) -> None:
    """Writes `content` (text, or a function writing to a binary file handle) to `path`
    through a temporary file and a rename: readers see the old file or the new, whole."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "w" if isinstance(content, str) else "wb") as handle:
            if isinstance(content, str):
                handle.write(content)
            else:
                content(handle)
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


@contextlib.contextmanager
def file_lock(path: Path) -> Iterator[None]:
    """An exclusive lock held while the block runs (other processes wait): one job of a
    sweep prepares shared data while the others wait for it."""
    with open(path, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def write_summary(run_dir: Path, summary: dict[str, Any]) -> None:
    write_atomic(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")


def read_summary(run_dir: Path) -> dict[str, Any] | None:
    """The run's summary.json, or None when there is none (or it cannot be read)."""
    try:
        return json.loads((run_dir / SUMMARY_FILE).read_text())
    except (OSError, ValueError):
        return None


def record_config(
    run_dir: Path, config_yaml: str, overrides: list[str] | None = None, hydra_yaml: str | None = None
) -> None:
    """`.hydra/config.yaml` (and overrides.yaml, hydra.yaml), as Hydra would write them."""
    directory = run_dir / ".hydra"
    directory.mkdir(exist_ok=True)
    write_atomic(directory / "config.yaml", config_yaml)
    if overrides is not None:
        write_atomic(directory / "overrides.yaml", yaml.safe_dump(list(overrides)))
    if hydra_yaml is not None:
        write_atomic(directory / "hydra.yaml", hydra_yaml)


class MetricsFile:
    """metrics.jsonl: one JSON object per logged step, appended a whole row at a time."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / METRICS_FILE
        self._fd: int | None = None

    def read(self, warn: bool = True) -> list[dict]:
        """The rows; a torn last line (a write cut short) is dropped, with a warning."""
        if not self.path.exists():
            return []
        lines = self.path.read_bytes().split(b"\n")
        rows = []
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except ValueError:
                if number >= len(lines) - 1 and all(not rest.strip() for rest in lines[number:]):
                    if warn:
                        log.warning(
                            "%s: dropping its torn last line (%d bytes), a write cut short", self.path, len(line)
                        )
                    continue
                raise DamagedRunDirectory(
                    f"{self.path}, line {number}, is not a JSON row ({line[:80]!r}); the file was "
                    "changed outside gan-train: remove that line, or start a new run directory"
                ) from None
        return rows

    def restart_at(self, step: int | None, keep: Callable[[dict], bool] | None = None) -> list[dict]:
        """Cuts the file to the rows up to `step` (None: a fresh start keeps none) that `keep`
        accepts, and returns them."""
        rows = self.read()
        kept = [] if step is None else [r for r in rows if r["step"] <= step and (keep is None or keep(r))]
        if step is None and rows:
            log.warning(
                "%s: starting afresh (no checkpoint to continue from): dropping the %d rows an earlier attempt logged",
                self.path,
                len(rows),
            )
        if self.path.exists():  # also when only a torn line goes
            write_atomic(self.path, "".join(json.dumps(r) + "\n" for r in kept))
        return kept

    def append(self, row: dict) -> None:
        line = (json.dumps(row) + "\n").encode()
        if self._fd is None:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        end = os.fstat(self._fd).st_size
        try:
            written = os.write(self._fd, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, f"{self.path}: wrote {written} of a row's {len(line)} bytes")
        except OSError:
            os.ftruncate(self._fd, end)  # never leave part of a row behind
            raise

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
