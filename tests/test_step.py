"""The per-device step is one pure function: jit, vmap, scan and pmap agree."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import ROOT, compose_config

from gan_jax import loop, step

OVERRIDES = [
    "experiment=none",
    "dataset=ring_2d",
    "model.generator.width=32",
    "model.discriminator.width=32",
    "train.batch_size=64",
]


def _parts(extra=()):
    cfg = compose_config(OVERRIDES + list(extra))
    return cfg, loop.build_parts(cfg)


def test_scan_of_steps_equals_repeated_steps():
    cfg, parts = _parts()
    state = step.init_state(parts, 0)
    one = jax.jit(partial(step.train_step, parts, 64, None))
    looped, rows = state, []
    for _ in range(3):
        looped, metrics = one(looped)
        rows.append(float(metrics["d_loss"]))
    scanned, stacked = jax.jit(partial(step.train_steps, parts, 64, None), static_argnums=1)(state, 3)
    np.testing.assert_allclose(stacked["d_loss"], rows, rtol=1e-6)
    assert int(scanned.step) == 3
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        scanned.generator.params,
        looped.generator.params,
    )


def test_vmap_over_seeds_equals_separate_runs():
    cfg, parts = _parts()
    states = [step.init_state(parts, s) for s in (0, 1)]
    stacked = jax.tree.map(lambda a, b: jnp.stack([a, b]), *states)
    run = partial(step.train_steps, parts, 64, None, num_steps=2)
    _, batched = jax.jit(jax.vmap(run))(stacked)
    for i, s in enumerate(states):
        _, single = jax.jit(run)(s)
        np.testing.assert_allclose(batched["d_loss"][i], single["d_loss"], rtol=1e-5)
    assert not np.allclose(batched["d_loss"][0], batched["d_loss"][1])


def test_d_steps_updates_discriminator_k_times_per_generator_update():
    _, parts = _parts(["train.d_steps=3"])
    state = step.init_state(parts, 0)
    new, _ = jax.jit(partial(step.train_step, parts, 64, None))(state)
    # Adam's count records how many updates each player received.
    assert int(new.discriminator.opt_state[0].count) == 3
    assert int(new.generator.opt_state[0].count) == 1


@pytest.mark.slow  # 1 vs 2 devices stays in make test (test_parallel.py, test_image_training.py)
def test_pmap_over_four_cpu_devices_matches_one_device(tmp_path):
    """ring_2d, same seed: d_loss step by step on 1, 2 and 4 forced CPU devices."""
    script = f"""
import json, sys
sys.path.insert(0, {str(ROOT / "tests")!r})
from pathlib import Path
from conftest import compose_config
from gan_jax import loop
import jax
assert jax.local_device_count() == 4
out = {{}}
for n in (1, 2, 4):
    cfg = compose_config({OVERRIDES!r} + ["logger=none", "train.progress_bar=false",
        "train.steps=20", "train.log_every=1", "train.steps_per_call=5", "eval.every=20",
        "eval.num_samples=100", f"train.num_devices={{n}}"])
    loop.run(cfg, Path({str(tmp_path)!r}) / str(n))
    rows = [json.loads(l) for l in open(Path({str(tmp_path)!r}) / str(n) / "metrics.jsonl")]
    out[n] = [r["d_loss"] for r in rows if "d_loss" in r]
print(json.dumps(out))
"""
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    losses = {int(k): np.array(v) for k, v in json.loads(result.stdout.strip().splitlines()[-1]).items()}
    assert len(losses[1]) == 20
    for n in (2, 4):
        assert np.max(np.abs(losses[n][:10] - losses[1][:10])) < 1e-4, (n, losses[n][:10], losses[1][:10])
