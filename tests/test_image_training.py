"""The real loop on Fashion-MNIST with a tiny DCGAN: outputs, exact resume, devices, EMA."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from functools import partial

import jax
import numpy as np
import pytest
from conftest import ROOT, TINY_DCGAN, compose_config, gan_train, metrics_rows

from gan_jax import loop, step


def test_gan_train_dcgan_writes_grids_checkpoints_and_summary(fashion_mnist_dir, tmp_path):
    result = gan_train(TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["steps_completed"] == 6
    assert np.isfinite(summary["final"]["d_loss"]) and 0 < summary["d_real_last_tenth"] < 1
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == [
        "step_00000003.png",
        "step_00000006.png",
    ]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["3", "6"]
    assert np.load(tmp_path / "samples.npy").shape == (32, 28, 28, 1)
    from PIL import Image

    grid = Image.open(tmp_path / "samples" / "step_00000006.png")
    assert grid.size == (8 * 29 + 1, 8 * 29 + 1)  # 64 images of 28x28, 8 wide, 1-pixel borders


def test_continued_dcgan_run_equals_uninterrupted_run_bit_for_bit(fashion_mnist_dir, tmp_path):
    base = TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "train.d_steps=2"]
    loop.run(compose_config(base), tmp_path / "whole")
    loop.run(compose_config(base + ["train.steps=3"]), tmp_path / "split")
    continued = loop.run(compose_config(base), tmp_path / "split")
    assert continued["resumed_from_step"] == 3
    whole, split = metrics_rows(tmp_path / "whole"), metrics_rows(tmp_path / "split")
    assert [r for r in split if "d_loss" in r] == [r for r in whole if "d_loss" in r]
    np.testing.assert_array_equal(
        np.load(tmp_path / "split" / "samples.npy"), np.load(tmp_path / "whole" / "samples.npy")
    )


@pytest.mark.slow  # `make test`'s budget on 2 cores; `make test-all` runs it
def test_batch_norm_across_two_devices_matches_one_device(fashion_mnist_dir, tmp_path):
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
from conftest import TINY_DCGAN, compose_config, training_rows
from gan_jax import loop
out = {{}}
for n in (1, 2):
    run_dir = Path({str(tmp_path)!r}) / str(n)
    loop.run(compose_config(TINY_DCGAN + ["dataset.data_dir={fashion_mnist_dir}", f"train.num_devices={{n}}"]), run_dir)
    out[n] = [r["d_loss"] for r in training_rows(run_dir)]
print(json.dumps(out))
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = {int(k): np.array(v) for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}
    assert len(losses[1]) == 6
    assert np.max(np.abs(losses[2] - losses[1])) < 1e-4, losses


def test_missing_mnist_fails_within_a_minute_naming_it(tmp_path):
    start = time.perf_counter()
    result = gan_train(
        [
            "experiment=none",
            "dataset=mnist",
            "model=dcgan",
            "logger=none",
            f"dataset.data_dir={tmp_path / 'empty'}",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        timeout=120,
    )
    assert time.perf_counter() - start < 60
    assert result.returncode == 2
    output = result.stdout + result.stderr
    assert "dataset mnist is not prepared" in output and "tfds build mnist" in output


def test_ema_averages_the_generator_after_its_start_step():
    cfg = compose_config(
        [
            "experiment=none",
            "dataset=ring_2d",
            "model.generator.width=8",
            "model.discriminator.width=8",
            "train.ema_decay=0.5",
            "train.ema_start=1",
        ]
    )
    parts = loop.build_parts(cfg)
    one_step = jax.jit(partial(step.train_step, parts, 16, None))
    state = step.init_state(parts, 0)
    history = []
    for _ in range(3):
        state, _ = one_step(state)
        history.append(state.generator.params)
    # Step 1 (step counter 0 < start) copies G; later steps average with decay 0.5.
    expected = jax.tree.map(lambda a, b, c: 0.5 * (0.5 * a + 0.5 * b) + 0.5 * c, *history)
    jax.tree.map(lambda e, got: np.testing.assert_allclose(got, e, rtol=1e-6), expected, state.generator_ema)
    assert step.sampling_generator(state).params is state.generator_ema
