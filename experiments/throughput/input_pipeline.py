"""The input pipeline (grain, gan_jax/feed.py) on JPEG folders, at 0, 1, 2 and 4 worker processes,
against what the training step consumes.

Makes two folders of random-texture JPEGs (64x64 and 256x256 sources, prepared by
`dataset=folder` at their own resolution), then reads `--chunks` compiled calls' batches
(batch 64, one step per call, one D step) through `feed.host_chunks`, as training does
without the device transfer, and prints images/s per worker count (median of `--rounds`,
the worker processes' start-up excluded: the first chunk is read before the clock starts).
The step's demand: DCGAN's training step on 64x64 RGB images (`experiment=fashion_mnist_dcgan`
composed for the folder), images/s of real data it takes. The batches are checked equal
at every worker count.

    python experiments/throughput/input_pipeline.py [--images 2000] [--chunks 100] [--rounds 3] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

from gan_jax import feed
from gan_jax.config import compose
from gan_jax.data import build as build_dataset

BATCH = 64


def write_folder(directory: Path, count: int, size: int) -> Path:
    """`count` JPEGs (quality 90) of smooth random colour fields, `size` x `size`."""
    rng = np.random.default_rng(size)
    directory.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        coarse = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        image = Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC)
        image.save(directory / f"{index:05d}.jpg", quality=90)
    return directory


def folder_config(path: Path, resolution: int, cache: Path, extra: tuple[str, ...] = ()):
    return compose(
        [
            "experiment=fashion_mnist_dcgan",
            "dataset=folder",
            f"dataset.path={path}",
            f"dataset.resolution={resolution}",
            f"dataset.cache_dir={cache}",
            f"train.batch_size={BATCH}",
            "logger=none",
            *extra,
        ]
    )


def pipeline_rate(dataset, workers: int, chunks: int) -> tuple[float, np.ndarray]:
    """Images/s of `chunks` one-step chunks after the first; and the last chunk (to compare)."""
    read = feed.ReadChunk(dataset, (0,), 1, BATCH, False, slice(None))
    stream = feed.host_chunks(read, 0, [1] * (chunks + 1), workers=workers, depth=4)
    next(stream)  # the workers' start-up and the first read
    start = time.perf_counter()
    read_chunks = list(stream)  # chunks x 64 images of at most 256x256x3: a few hundred MB at most
    return chunks * BATCH / (time.perf_counter() - start), read_chunks[-1]["images"]


def step_demand(cfg, steps: int = 5) -> float:
    """Images/s of real data DCGAN's compiled step takes on these images (one D step per step)."""
    import jax

    from gan_jax import parallel, step
    from gan_jax.parts import build as build_parts

    parts = build_parts(cfg)
    placement = parallel.DataParallel(tuple(jax.local_devices()[:1]))
    train_steps = parallel.compile_train_steps(parts, BATCH, placement)
    state = placement.replicate(step.init_population(parts, [0]))
    batch = feed.chunk_batches(parts.data, [0], 0, 1, 1, BATCH)
    real = placement.shard_batches(batch, BATCH)
    state, metrics = train_steps(state, 1, real)  # compile
    jax.block_until_ready(metrics)
    start = time.perf_counter()
    for _ in range(steps):
        state, metrics = train_steps(state, 1, real)
    jax.block_until_ready(metrics)
    return steps * BATCH / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--chunks", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", default="0,1,2,4")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    worker_counts = [int(w) for w in args.workers.split(",")]
    results: dict[str, dict] = {}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for size in (64, 256):
            folder = write_folder(root / f"jpeg{size}", args.images, size)
            start = time.perf_counter()
            dataset = build_dataset(folder_config(folder, size, root / "cache").dataset)
            prepared = args.images / (time.perf_counter() - start)
            rates: dict[int, list[float]] = {w: [] for w in worker_counts}
            last: dict[int, np.ndarray] = {}
            for _ in range(args.rounds):
                for workers in worker_counts:
                    rate, last[workers] = pipeline_rate(dataset, workers, args.chunks)
                    rates[workers].append(rate)
            same = all(np.array_equal(last[worker_counts[0]], last[w]) for w in worker_counts)
            results[f"{size}x{size}"] = {
                "prepare_images_per_s": prepared,
                "pipeline_images_per_s": {str(w): statistics.median(r) for w, r in rates.items()},
                "range": {str(w): [min(r), max(r)] for w, r in rates.items()},
                "same_batches_at_every_worker_count": same,
            }
        demand = step_demand(folder_config(root / "jpeg64", 64, root / "cache"))
    print(f"DCGAN's step on 64x64 RGB takes {demand:.0f} real images/s (batch {BATCH}, one D step)")
    print("| source | prepared (img/s) | " + " | ".join(f"{w} workers" for w in worker_counts) + " | same batches |")
    print("|---|---:|" + "---:|" * len(worker_counts) + "---|")
    for name, result in results.items():
        cells = [f"{result['pipeline_images_per_s'][str(w)]:.0f}" for w in worker_counts]
        print(
            f"| {name} JPEG | {result['prepare_images_per_s']:.0f} | "
            + " | ".join(cells)
            + f" | {result['same_batches_at_every_worker_count']} |"
        )
    if args.json:
        args.json.write_text(json.dumps({"step_images_per_s": demand, **results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
