"""Image batches for the compiled step, read and placed on the devices ahead of time.

The device feed sits beside parallel.py (whose sharding it uses), above the datasets it reads.

A background thread assembles each compiled call's batches (every replica's stream,
every step, every D step), splits them over the devices and starts the transfer while
the previous call is still running, so the step does not wait for the host.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

import jax
import numpy as np

from gan_jax import parallel
from gan_jax.data import BatchDataset


def chunk_batches(
    dataset: BatchDataset,
    seeds: list[int],
    first_step: int,
    num_steps: int,
    d_steps: int,
    batch_size: int,
    labels: bool = False,
    share: slice = slice(None),
) -> dict[str, np.ndarray]:
    """One compiled call's (chunk's) batches, read on the host: {"images": [replicas,
    num_steps, d_steps, examples, H, W, C]} and, with `labels`, "labels" [replicas,
    num_steps, d_steps, examples]. D step k of step s reads batch s * d_steps + k; `share`
    picks the examples of each batch (default: all batch_size)."""

    def one(seed: int, index: int) -> dict[str, np.ndarray]:
        if not labels:
            return {"images": dataset.batch(seed, index, batch_size, share)}
        images, classes = dataset.labelled_batch(seed, index, batch_size, share)
        return {"images": images, "labels": classes}

    return _stack(
        [
            _stack(
                [
                    _stack([one(seed, step * d_steps + k) for k in range(d_steps)])
                    for step in range(first_step, first_step + num_steps)
                ]
            )
            for seed in seeds
        ]
    )


def _stack(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return jax.tree.map(lambda *leaves: np.stack(leaves), *batches)


def device_batches(
    dataset: BatchDataset,
    seeds: list[int],
    first_step: int,
    chunk_sizes: Iterable[int],
    d_steps: int,
    batch_size: int,
    placement: parallel.DataParallel,
    depth: int = 2,
    labels: bool = False,
) -> Iterator[dict[str, jax.Array]]:
    """One sharded batch (chunk_batches' dict) per compiled call (chunk), `depth` calls ahead
    of the consumer. Each process reads only the examples its devices hold."""
    share = placement.process_share(batch_size)

    def produce() -> Iterator[dict[str, jax.Array]]:
        step = first_step
        for size in chunk_sizes:
            local = chunk_batches(dataset, seeds, step, size, d_steps, batch_size, labels, share)
            yield placement.shard_batches(local, batch_size)
            step += size

    return prefetch(produce(), depth)


_DONE = object()


def prefetch(items: Iterator, depth: int) -> Iterator:
    """Runs `items` in a daemon thread, `depth` ahead; re-raises its errors in the consumer."""
    ready: queue.Queue = queue.Queue(maxsize=depth)

    def fill() -> None:
        try:
            for item in items:
                ready.put(item)
        except BaseException as error:  # noqa: BLE001 - handed to the consumer
            ready.put(error)
            return
        ready.put(_DONE)

    threading.Thread(target=fill, daemon=True, name="gan_jax-prefetch").start()
    while (item := ready.get()) is not _DONE:
        if isinstance(item, BaseException):
            raise item
        yield item
