"""Orbax checkpoints: a run continued from a checkpoint equals the uninterrupted run."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import compose_config
from omegaconf import OmegaConf

from gan_jax import checkpoint, loop
from gan_jax.config import ConfigError

BASE = [
    "logger=none",
    "train.progress_bar=false",
    "experiment=none",
    "dataset=ring_2d",
    "train.batch_size=64",
    "model.generator.width=32",
    "model.discriminator.width=32",
    "train.log_every=5",
    "eval.every=20",
    "train.steps_per_call=10",
    "train.checkpoint_every=20",
    "eval.num_samples=100",
]


def _train_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "d_loss" in r]


def test_continued_run_equals_uninterrupted_run_bit_for_bit(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    uninterrupted = loop.run(compose_config(BASE + ["train.steps=60"]), whole)
    loop.run(compose_config(BASE + ["train.steps=40"]), split)
    continued = loop.run(compose_config(BASE + ["train.steps=60"]), split)
    assert continued["resumed_from_step"] == 40 and continued["steps_completed"] == 60
    assert _train_rows(split) == _train_rows(whole)  # every float, exactly
    assert [r["step"] for r in _train_rows(split)] == list(range(5, 61, 5))
    np.testing.assert_array_equal(np.load(split / "samples.npy"), np.load(whole / "samples.npy"))
    assert continued["final"] == uninterrupted["final"]


def test_keeps_the_last_k_checkpoints(tmp_path):
    loop.run(compose_config(BASE + ["train.steps=100", "train.keep_checkpoints=2"]), tmp_path)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [80, 100]


def test_resuming_with_another_config_fails_naming_the_keys(tmp_path):
    loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    with pytest.raises(ConfigError, match=r"optim.lr: 0.0002 -> 0.5"):
        loop.run(compose_config(BASE + ["train.steps=40", "optim.lr=0.5"]), tmp_path)


def test_fewer_steps_than_the_checkpoint_fails(tmp_path):
    loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    with pytest.raises(ConfigError, match=r"train.steps=20: .* holds a checkpoint at step 40"):
        loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)


def test_a_checkpoint_saved_before_a_key_existed_resumes_when_the_key_is_off():
    cfg = compose_config(["experiment=none", "dataset=ring_2d"])
    saved = OmegaConf.to_container(cfg, resolve=True)
    del saved["augment"], saved["dist"]  # as saved before those sections existed
    assert checkpoint.differences(saved, cfg) == []
    on = compose_config(["experiment=none", "dataset=ring_2d", "seed=3"])
    assert checkpoint.differences(saved, on) == ["seed: 0 -> 3"]
