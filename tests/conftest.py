"""Shared helpers: compose configs the way `gan-train` does, and run the CLI."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

from gan_jax.config import register_schemas

ROOT = Path(__file__).resolve().parents[1]
CONF = str(ROOT / "conf")

# A tiny but real run: the whole loop, a few steps, small networks.
TINY = [
    "logger=none", "train.progress_bar=false", "train.steps=20", "train.batch_size=32",
    "train.log_every=5", "train.eval_every=10", "train.steps_per_call=5",
    "train.num_eval_samples=200",
]

register_schemas()


def compose_config(overrides: list[str]):
    with initialize_config_dir(version_base="1.3", config_dir=CONF):
        return compose("config", overrides=overrides)


def gan_train(args: list[str], env_extra: dict | None = None, timeout: int = 300,
              cwd: Path | None = None) -> subprocess.CompletedProcess:
    """Runs `gan-train ARGS` in a fresh process (so XLA_FLAGS and W&B start clean)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(env_extra or {})
    return subprocess.run([sys.executable, "-m", "gan_jax.train", *args], env=env, cwd=cwd or ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiny():
    return list(TINY)
