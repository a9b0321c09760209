"""Whole StyleGAN2 + ADA runs (tiny, on the test Fashion-MNIST at 16x16): a population of
seeds against single runs, and a run killed with SIGKILL and resumed, ADA's p and the
path-length mean included. Each run compiles the whole recipe (D, lazy R1, G, lazy path
length, ADA, EMA): slow, out of `make test`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from conftest import ROOT, compose_config, training_rows
from test_stylegan2 import TINY_STYLEGAN2

from gan_jax import loop

pytestmark = pytest.mark.slow

# Every phase on its own interval, p moving by 8 * 4 / 32 = 1 per window: it changes in the first steps.
RECIPE = TINY_STYLEGAN2 + [
    "logger=none",
    "train.progress_bar=false",
    "augment=ada",
    "augment.ada_kimg=0.032",
    "penalty.r1.interval=4",
    "train.steps=12",
    "train.log_every=1",
    "train.sample_every=12",
    "train.checkpoint_every=4",
    "eval.every=12",
    "eval.num_samples=16",
]
STATE_KEYS = ("d_loss", "g_loss", "d_real", "d_fake", "d_r1", "g_path_length", "ada_p", "ada_rt")


def _rows(run_dir, seed):
    return [r for r in training_rows(run_dir) if r["seed"] == seed]


def test_a_population_of_4_seeds_equals_4_single_runs(tmp_path, fashion_mnist_dir):
    data = [f"dataset.data_dir={fashion_mnist_dir}"]
    loop.run(compose_config(RECIPE + data + ["train.num_seeds=4", "train.steps=8"]), tmp_path / "population")
    for seed in range(4):
        loop.run(compose_config(RECIPE + data + [f"seed={seed}", "train.steps=8"]), tmp_path / f"single{seed}")
        together, alone = _rows(tmp_path / "population", seed), _rows(tmp_path / f"single{seed}", seed)
        assert [r["step"] for r in together] == [r["step"] for r in alone] == list(range(1, 9))
        for key in (*STATE_KEYS, "path_length_pl_mean"):
            np.testing.assert_allclose(
                [r[key] for r in together], [r[key] for r in alone], rtol=1e-4, atol=1e-6, err_msg=f"{seed} {key}"
            )
    assert len({_rows(tmp_path / "population", s)[-1]["d_loss"] for s in range(4)}) == 4  # 4 different GANs


def _gan_train(args: list[str]) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    return subprocess.Popen(
        [sys.executable, "-m", "gan_jax.train", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )


def _last_step(run_dir) -> int:
    """The last whole row's step, read while another process writes the file."""
    try:
        lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    except FileNotFoundError:
        return 0
    steps = [json.loads(line)["step"] for line in lines[:-1] if '"d_loss"' in line]
    return max(steps, default=0)


def test_sigkill_then_resume_gives_the_uninterrupted_runs_rows(tmp_path, fashion_mnist_dir):
    args = RECIPE + [f"dataset.data_dir={fashion_mnist_dir}"]
    loop.run(compose_config(args), tmp_path / "whole")
    run_dir = tmp_path / "killed"
    process = _gan_train(args + [f"hydra.run.dir={run_dir}"])
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and process.poll() is None and _last_step(run_dir) < 6:
        time.sleep(0.05)  # until past the checkpoint at 4, well before the end
    assert process.poll() is None, process.stderr.read()[-2000:] if process.stderr else ""
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert max(r["step"] for r in training_rows(run_dir)) < 12
    resumed = _gan_train(args + [f"hydra.run.dir={run_dir}"])
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()[-2000:] if resumed.stderr else ""
    whole, killed = training_rows(tmp_path / "whole"), training_rows(run_dir)
    assert [r["step"] for r in killed] == list(range(1, 13))
    assert killed == whole  # every key, ada_p and path_length_pl_mean among them, bit for bit
    assert any(r["ada_p"] > 0 for r in whole) and all(r["path_length_pl_mean"] > 0 for r in whole[4:])
