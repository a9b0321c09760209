"""Image batches for the compiled step, read by a grain pipeline and placed on the devices ahead of time.

The device feed sits beside parallel.py (whose sharding it uses), above the datasets it reads.

One element of the pipeline is one compiled call's (chunk's) batches: every replica's
stream, every step, every D step. grain reads the chunks in order, `workers` processes at
a time when asked (decoding and resizing then leave the training process), and a thread
splits each chunk over the devices and starts the transfer while the previous call is
still running, so the step does not wait for the host. What a chunk holds depends only on
(seeds, first step, size): the worker count changes the speed, never the batches.

Over processes, each reads only the examples of each global batch that its devices hold
(`DataParallel.process_share`) rather than grain's record sharding (`ShardByJaxProcess`),
which would give each process other records and so make the batches depend on the number
of processes.
"""

from __future__ import annotations

import ctypes
import itertools
import os
import queue
import signal
import sys
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import grain
import jax
import numpy as np

from gan_jax import parallel
from gan_jax.data import BatchDataset

PR_SET_PDEATHSIG = 1  # linux/prctl.h


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

    distinct = list(dict.fromkeys(seeds))  # a hyper-parameter population's points share their seeds' batches
    read = _stack(
        [
            _stack(
                [
                    _stack([one(seed, step * d_steps + k) for k in range(d_steps)])
                    for step in range(first_step, first_step + num_steps)
                ]
            )
            for seed in distinct
        ]
    )
    if len(distinct) == len(seeds):
        return read
    order = np.asarray([distinct.index(seed) for seed in seeds])
    return {key: value[order] for key, value in read.items()}


def _stack(batches: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return jax.tree.map(lambda *leaves: np.stack(leaves), *batches)


@dataclass(frozen=True)
class ReadChunk:
    """chunk_batches as a picklable function of (first step, size), for grain's workers."""

    dataset: BatchDataset
    seeds: tuple[int, ...]
    d_steps: int
    batch_size: int
    labels: bool
    share: slice

    def __call__(self, chunk: tuple[int, int]) -> dict[str, np.ndarray]:
        first_step, num_steps = chunk
        seeds = list(self.seeds)
        return chunk_batches(
            self.dataset, seeds, first_step, num_steps, self.d_steps, self.batch_size, self.labels, self.share
        )


def host_chunks(
    read: ReadChunk, first_step: int, chunk_sizes: Iterable[int], workers: int = 0, depth: int = 2
) -> Iterator[dict[str, np.ndarray]]:
    """The chunks' batches on the host, in order, read `depth` chunks ahead by grain: in a
    thread of this process (workers=0) or in `workers` processes."""
    sizes = list(chunk_sizes)
    starts = itertools.accumulate(sizes[:-1], initial=first_step)
    chunks = grain.MapDataset.source(list(zip(starts, sizes, strict=True))).map(read)
    pipeline = chunks.to_iter_dataset(grain.ReadOptions(num_threads=1, prefetch_buffer_size=depth))
    if workers > 0:
        _absl_flags_parsed()
        options = grain.MultiprocessingOptions(num_workers=workers, per_worker_buffer_size=depth)
        pipeline = pipeline.mp_prefetch(options, worker_init_fn=_exit_with_parent)
    return iter(pipeline)


def _exit_with_parent(worker_index: int, worker_count: int) -> None:
    """A worker dies with the training process, even a killed one (kill -9), instead of
    lingering with its memory."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before prctl
        os._exit(1)


def _absl_flags_parsed() -> None:
    """grain's workers read absl flags, which only absl.app parses; outside it they keep their defaults."""
    from absl import flags

    if not flags.FLAGS.is_parsed():
        flags.FLAGS.mark_as_parsed()


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
    workers: int = 0,
) -> Iterator[dict[str, jax.Array]]:
    """One sharded batch (chunk_batches' dict) per compiled call (chunk), `depth` calls ahead
    of the consumer. Each process reads only the examples its devices hold."""
    read = ReadChunk(dataset, tuple(seeds), d_steps, batch_size, labels, placement.process_share(batch_size))
    local = host_chunks(read, first_step, chunk_sizes, workers, depth)
    return prefetch((placement.shard_batches(chunk, batch_size) for chunk in local), depth)


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
