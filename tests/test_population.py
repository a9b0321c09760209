"""Seed populations: N independent GANs in one compiled program."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose_config, training_rows

from gan_jax import loop
from gan_jax.config import ConfigError, validate

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
    "train.steps_per_call=10",
    "eval.num_samples=200",
]


def _rows(run_dir, seed):
    return [r for r in training_rows(run_dir) if r["seed"] == seed]


def test_each_replica_equals_the_single_run_with_its_seed(tmp_path):
    population = loop.run(compose_config(BASE + ["seed=5", "train.num_seeds=3"]), tmp_path / "population")
    assert population["seeds"] == [5, 6, 7]
    assert [r["seed"] for r in population["replicas"]] == [5, 6, 7]
    samples = np.load(tmp_path / "population" / "samples.npy")
    assert samples.shape == (3, 200, 2)
    for index, seed in enumerate((5, 6, 7)):
        single = loop.run(compose_config(BASE + [f"seed={seed}"]), tmp_path / f"single{seed}")
        together, alone = _rows(tmp_path / "population", seed), _rows(tmp_path / f"single{seed}", seed)
        assert len(together) == len(alone) == 20
        for key in ("d_loss", "g_loss", "d_real", "d_fake"):
            np.testing.assert_allclose(
                [r[key] for r in together[:10]],
                [r[key] for r in alone[:10]],
                atol=1e-4,
                err_msg=f"seed {seed}, {key}",
            )
        replica = population["replicas"][index]
        assert replica["eval"]["modes_captured"] == single["eval"]["modes_captured"]
        np.testing.assert_allclose(samples[index], np.load(tmp_path / f"single{seed}" / "samples.npy"), atol=1e-3)
    assert not np.allclose(samples[0], samples[1])


@pytest.mark.slow  # make test's budget; populations and resume are each tested
def test_population_resumes_from_its_checkpoint(tmp_path):
    whole = loop.run(compose_config(BASE + ["train.num_seeds=2"]), tmp_path / "whole")
    loop.run(
        compose_config(BASE + ["train.num_seeds=2", "train.steps=10", "train.checkpoint_every=10"]),
        tmp_path / "split",
    )
    split = loop.run(compose_config(BASE + ["train.num_seeds=2", "train.checkpoint_every=10"]), tmp_path / "split")
    assert split["resumed_from_step"] == 10
    for seed in (0, 1):
        assert _rows(tmp_path / "split", seed) == _rows(tmp_path / "whole", seed)
    assert [r["final"] for r in split["replicas"]] == [r["final"] for r in whole["replicas"]]


def test_num_seeds_below_one_fails_at_start():
    with pytest.raises(ConfigError, match="train.num_seeds=0: must be an integer >= 1"):
        validate(compose_config(["train.num_seeds=0"]), num_devices=1)
