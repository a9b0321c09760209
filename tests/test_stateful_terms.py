"""A regulariser with state (LeCam's moving averages) in the real loop: logged, stacked per
replica in a population, checkpointed and resumed with the rest of the state."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose_config, training_rows

from gan_jax import loop

BASE = [
    "logger=none",
    "train.progress_bar=false",
    "experiment=none",
    "dataset=ring_2d",
    "train.batch_size=64",
    "model.generator.width=32",
    "model.discriminator.width=32",
    "train.steps=20",
    "train.log_every=1",
    "eval.every=20",
    "train.steps_per_call=5",
    "eval.num_samples=200",
    "loss=hinge",
    "penalty=[r1,lecam]",
    "penalty.r1.weight=1",
    "penalty.lecam.weight=0.3",
]
KEYS = ("d_loss", "g_loss", "d_r1", "d_lecam", "lecam_real_average", "lecam_fake_average")


def _rows(run_dir, seed=0):
    return [r for r in training_rows(run_dir) if r["seed"] == seed]


@pytest.mark.slow  # about 10 s; populations = single runs is test_population.py's in `make test`
def test_a_population_with_lecam_equals_four_single_runs(tmp_path):
    loop.run(compose_config(BASE + ["train.num_seeds=4"]), tmp_path / "population")
    for seed in range(4):
        loop.run(compose_config(BASE + [f"seed={seed}"]), tmp_path / f"single{seed}")
        together, alone = _rows(tmp_path / "population", seed)[:10], _rows(tmp_path / f"single{seed}", seed)[:10]
        for key in KEYS:
            np.testing.assert_allclose(
                [r[key] for r in together], [r[key] for r in alone], atol=1e-4, err_msg=f"seed {seed}, {key}"
            )


def test_a_run_stopped_mid_way_resumes_with_lecams_state(tmp_path):
    """Stopped at step 10 (its checkpoint), continued to 20: the uninterrupted run's rows, the
    moving averages included (they would restart from 0 if they were not checkpointed)."""
    whole = loop.run(compose_config(BASE), tmp_path / "whole")
    rows = _rows(tmp_path / "whole")
    assert all(k in rows[0] for k in KEYS)  # both regularisers and LeCam's averages are logged
    np.testing.assert_allclose([r["d_penalty"] for r in rows], [r["d_r1"] + r["d_lecam"] for r in rows], rtol=1e-5)
    assert 0 < abs(rows[0]["lecam_real_average"]) < abs(rows[-1]["lecam_real_average"])  # from 0, 1% a step
    loop.run(compose_config(BASE + ["train.steps=10", "train.checkpoint_every=10"]), tmp_path / "split")
    split = loop.run(compose_config(BASE + ["train.checkpoint_every=10"]), tmp_path / "split")
    assert split["resumed_from_step"] == 10
    assert _rows(tmp_path / "split") == _rows(tmp_path / "whole")
    assert split["final"] == whole["final"]
