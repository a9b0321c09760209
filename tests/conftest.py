"""Shared helpers: compose configs the way `gan-train` does, run the CLI, read metrics.jsonl."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

# JAX reads these when it is imported (gan_jax imports it): set them first.
# Runs in one test session compile the same programs again and again: share them
# through JAX's persistent cache (subprocesses inherit the variables).
_CACHE = Path(tempfile.gettempdir()) / f"gan_jax_test_jax_cache_{os.getuid()}"
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_CACHE))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "0")
# Reference features and converted weights: a session's own cache, not the user's.
os.environ["GAN_JAX_CACHE_DIR"] = tempfile.mkdtemp(prefix="gan_jax_test_cache_")
os.environ.pop("GAN_JAX_INCEPTION_WEIGHTS", None)  # eval.features=auto must not find a user's weights

from gan_jax import rundir  # noqa: E402  (after the JAX variables)
from gan_jax.config import compose, register_schemas  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]

# A tiny but real run: the whole loop, a few steps, small networks.
TINY = [
    "logger=none",
    "train.progress_bar=false",
    "train.steps=20",
    "train.batch_size=32",
    "train.log_every=5",
    "eval.every=10",
    "train.steps_per_call=5",
    "eval.num_samples=200",
]

register_schemas()


def compose_config(overrides: list[str]):
    return compose(overrides)


def with_overrides(base: list[str], *overrides: str) -> list[str]:
    """`base` with each override's key set to its value (replacing base's entry for that key)."""
    keys = {o.split("=", 1)[0] for o in overrides}
    return [o for o in base if o.split("=", 1)[0] not in keys] + list(overrides)


def metrics_rows(run_dir: Path) -> list[dict]:
    """metrics.jsonl's rows, in order. Every line must be a whole JSON row: unlike the loop's
    reader (rundir.MetricsFile), a torn line fails the test instead of being dropped."""
    return [json.loads(line) for line in (run_dir / rundir.METRICS_FILE).read_text().splitlines()]


def training_rows(run_dir: Path) -> list[dict]:
    """The rows of the training steps (those with d_loss), without the evaluation rows."""
    return [row for row in metrics_rows(run_dir) if "d_loss" in row]


def gan_train(
    args: list[str], env_extra: dict | None = None, timeout: int = 300, cwd: Path | None = None
) -> subprocess.CompletedProcess:
    """Runs `gan-train ARGS` in a fresh process (so XLA_FLAGS and W&B start clean)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(env_extra or {})
    return subprocess.run(
        [sys.executable, "-m", "gan_jax.train", *args],
        env=env,
        cwd=cwd or ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


# experiment=fashion_mnist_dcgan, shrunk: 8-channel networks, a few steps.
TINY_DCGAN = [
    "experiment=fashion_mnist_dcgan",
    "logger=none",
    "train.progress_bar=false",
    "model.generator.width=8",
    "model.discriminator.width=8",
    "model.latent_dim=16",
    "train.batch_size=16",
    "train.steps=6",
    "train.log_every=1",
    "eval.every=3",
    "train.sample_every=3",
    "train.checkpoint_every=3",
    "eval.num_samples=32",
    "train.ema_start=2",
]


@pytest.fixture(scope="session")
def fashion_mnist_dir(tmp_path_factory) -> Path:
    """A TFDS data directory with a small fashion_mnist (512 train, 128 test examples)
    prepared, through the real preparation path, from IDX files the tests write."""
    from idx_files import write_fashion_mnist_like

    from gan_jax.data import images

    source = write_fashion_mnist_like(tmp_path_factory.mktemp("idx"))
    data_dir = tmp_path_factory.mktemp("tfds")
    images.prepare_fashion_mnist_from_debian(data_dir, source, counts=None)
    return data_dir


@pytest.fixture(scope="session")
def real_fashion_mnist_dir(tmp_path_factory) -> Path:
    """The whole Fashion-MNIST, prepared from Debian's dataset-fashion-mnist (CI installs it)."""
    from gan_jax.data import images

    if not images.debian_fashion_mnist_present():
        pytest.skip("needs Debian's Fashion-MNIST: apt-get install dataset-fashion-mnist")
    data_dir = tmp_path_factory.mktemp("tfds_real")
    images.prepare_fashion_mnist_from_debian(data_dir)
    return data_dir


@pytest.fixture
def tiny():
    return list(TINY)
