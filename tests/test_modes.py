"""Mode metrics (VEEGAN / PacGAN protocol) on known sample sets and on a real run."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import compose_config
from scipy.spatial import cKDTree

from gan_jax import loop
from gan_jax.data import toy
from gan_jax.metrics.modes import mode_metrics

RING = toy.ring_2d(8, 1.0, 0.01)


def test_samples_at_every_mode_capture_all_with_no_kl():
    samples = np.repeat(RING.modes, 10, axis=0) + 0.005
    assert mode_metrics(samples, RING.modes, RING.std) == {
        "modes_captured": 8,
        "high_quality": 1.0,
        "reverse_kl": pytest.approx(0.0, abs=1e-12),
    }


def test_collapse_onto_one_mode():
    samples = np.repeat(RING.modes[:1], 50, axis=0)
    metrics = mode_metrics(samples, RING.modes, RING.std)
    assert metrics["modes_captured"] == 1
    assert metrics["reverse_kl"] == pytest.approx(math.log(8))


def test_samples_between_modes_are_not_high_quality():
    samples = np.zeros((20, 2))  # the ring's centre: 1.0 = 100 std from every mode
    assert mode_metrics(samples, RING.modes, RING.std) == {
        "modes_captured": 0,
        "high_quality": 0.0,
        "reverse_kl": None,
    }


def test_threshold_is_three_stds():
    inside = RING.modes[:1] + np.array([[0.0299, 0.0]])
    outside = RING.modes[:1] + np.array([[0.0301, 0.0]])
    assert mode_metrics(inside, RING.modes, RING.std)["high_quality"] == 1.0
    assert mode_metrics(outside, RING.modes, RING.std)["high_quality"] == 0.0


@pytest.mark.parametrize("dataset", ["ring_2d", "grid_2d"])
def test_summary_agrees_with_an_independent_computation_from_samples(tmp_path, tiny, dataset):
    summary = loop.run(compose_config(tiny + [f"dataset={dataset}", "eval.num_samples=2500"]), tmp_path)
    samples = np.load(tmp_path / "samples.npy")
    data = toy.ring_2d(8, 1.0, 0.01) if dataset == "ring_2d" else toy.grid_2d(5, 2.0, 0.05)
    distance, nearest = cKDTree(data.modes).query(samples)
    good = distance < 3 * data.std
    counts = np.bincount(nearest[good], minlength=len(data.modes))
    assert summary["eval"]["modes_captured"] == int((counts > 0).sum())
    assert summary["eval"]["high_quality"] == pytest.approx(good.mean())
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["eval"]["modes_captured"] == summary["eval"]["modes_captured"]
