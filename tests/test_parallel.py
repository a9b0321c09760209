"""The sharded step (jit + shard_map) and pmap compile the same per-device function: same numbers."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import ROOT, compose_config

from gan_jax.config import ConfigError, validate

OVERRIDES = [
    "experiment=none",
    "dataset=ring_2d",
    "model.generator.width=32",
    "model.discriminator.width=32",
    "train.batch_size=64",
    "logger=none",
    "train.progress_bar=false",
    "train.steps=10",
    "train.log_every=1",
    "train.steps_per_call=5",
    "eval.every=10",
    "eval.num_samples=100",
    "train.num_devices=2",
    "train.ema_decay=0.9",  # G's EMA starts as G's parameters: two leaves, one value
]

# On 2 forced CPU devices: pmap for 10 steps; shard_map for 5, then resumed from its
# checkpoint for 5 more; and whether each mode's compiled call consumed (donated) its state.
_SCRIPT = """
import json, sys
sys.path.insert(0, {tests!r})
from pathlib import Path
from conftest import compose_config, training_rows
import jax
from gan_jax import loop, parallel, parallel_modes, step
assert jax.local_device_count() == 2
base, out_dir = {overrides!r}, Path({out_dir!r})

loop.run(compose_config(base + ["train.parallel=pmap"]), out_dir / "pmap")
loop.run(compose_config(base + ["train.steps=5"]), out_dir / "shard_map")
resumed = loop.run(compose_config(base), out_dir / "shard_map")

donated = {{}}
cfg = compose_config(base)
parts = loop.build_parts(cfg)
for mode in parallel_modes.MODES:
    placement = parallel.DataParallel(tuple(jax.local_devices()), mode)
    state = placement.replicate(step.init_population(parts, [0]))
    new_state, _ = parallel.compile_train_steps(parts, 64, placement)(state, 1)
    donated[mode] = all(leaf.is_deleted() for leaf in jax.tree.leaves(state) if isinstance(leaf, jax.Array))
    assert int(placement.unreplicate(new_state).step[0]) == 1
print(json.dumps({{"pmap": training_rows(out_dir / "pmap"), "shard_map": training_rows(out_dir / "shard_map"),
                  "resumed_from": resumed["resumed_from_step"], "donated": donated}}))
"""


def test_shard_map_and_pmap_agree_on_two_devices_and_shard_map_resumes(tmp_path):
    script = _SCRIPT.format(tests=str(ROOT / "tests"), overrides=OVERRIDES, out_dir=str(tmp_path))
    env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["resumed_from"] == 5
    assert out["donated"] == {"shard_map": True, "pmap": True}
    pmap, sharded = out["pmap"], out["shard_map"]
    assert [r["step"] for r in pmap] == [r["step"] for r in sharded] == list(range(1, 11))
    for key in ("d_loss", "g_loss", "d_real", "d_fake", "d_grad_norm", "g_grad_norm"):
        gap = np.max(np.abs(np.array([r[key] for r in sharded]) - np.array([r[key] for r in pmap])))
        assert gap <= 1e-6, (key, gap)


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.parallel=jit", "train.parallel='jit': valid values are shard_map, pmap"),
        ("train.precision=float16", "train.precision='float16': valid values are float32, bfloat16"),
    ],
)
def test_bad_parallel_or_precision_fails_naming_the_choices(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config([override]), num_devices=1)
