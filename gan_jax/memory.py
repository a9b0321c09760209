"""Whether a population's compiled step fits the device's memory, checked before its first call.

The step for the first chunk is compiled ahead of time and XLA's memory analysis read: the
bytes of its arguments, outputs and temporaries, less those the donated state aliases. Its
members share nothing but the program, so the bytes per member are that total over the
members (an upper bound for the largest population: the program's own constants do not
grow with it). The limit is `train.memory_limit_gb`, or the device's own (`bytes_limit`);
the CPU reports none, so there the check runs only when a limit is given.
"""

from __future__ import annotations

import logging
from typing import Any

from gan_jax.errors import ConfigError

log = logging.getLogger(__name__)

GIB = 2**30


def limit_bytes(limit_gb: float | None, device: Any) -> int | None:
    if limit_gb is not None:
        return int(limit_gb * GIB)
    try:
        stats = device.memory_stats()
    except Exception:  # noqa: BLE001 - a backend without memory statistics: no limit known
        stats = None
    return int(stats["bytes_limit"]) if stats and "bytes_limit" in stats else None


def needed_bytes(executable: Any) -> int | None:
    """A compiled program's peak device memory by XLA's analysis (None: no analysis here)."""
    analysis = executable.memory_analysis()
    if analysis is None:
        return None
    return int(
        analysis.argument_size_in_bytes
        + analysis.output_size_in_bytes
        + analysis.temp_size_in_bytes
        - analysis.alias_size_in_bytes
    )


def check(executable: Any, limit: int, members: int, source: str) -> None:
    """Raises ConfigError, before training, when the step needs more than `limit` bytes;
    the message gives the largest population that fits."""
    needed = needed_bytes(executable)
    if needed is None:
        log.warning("no memory analysis for this backend; the population's size is not checked")
        return
    log.info("the step needs %s of %s (%s) for %d members", _size(needed), _size(limit), source, members)
    if needed <= limit:
        return
    per_member = needed / members
    fits = int(limit // per_member)
    advice = (
        f"the largest population that fits is about {fits} member{'s' if fits > 1 else ''}"
        " (train.population's points x train.num_seeds)"
        if fits >= 1
        else "not even one member fits: lower train.batch_size or the model's widths"
    )
    raise ConfigError(
        f"train.population: the population's {members} members need about {_size(needed)} of device memory "
        f"({_size(per_member)} each, by XLA's memory analysis of the compiled step), more than the "
        f"{_size(limit)} of {source}; {advice}, or split it into a sweep (-m)"
    )


def _size(count: float) -> str:
    if count >= GIB / 10:
        return f"{count / GIB:.2f} GiB"
    return f"{count / 2**20:.1f} MiB" if count >= 2**20 / 10 else f"{count / 2**10:.1f} KiB"
