"""The real training loop end to end on tiny configs, and on the Figure 1 experiment."""

from __future__ import annotations

import json

import numpy as np
import pytest
from conftest import compose_config, metrics_rows, training_rows

from gan_jax import loop


@pytest.mark.parametrize("dataset", ["gaussian_1d", "ring_2d", "grid_2d"])
def test_tiny_run_writes_every_output(tmp_path, tiny, dataset):
    cfg = compose_config(tiny + [f"dataset={dataset}", "train.d_steps=2"])
    summary = loop.run(cfg, tmp_path)
    rows = training_rows(tmp_path)
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    for row in rows:
        assert {"step", "d_loss", "g_loss", "d_real", "d_fake", "d_real_raw", "d_fake_raw"} <= set(row)
        assert 0 < row["d_real"] < 1 and 0 < row["d_fake"] < 1
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved == summary
    assert saved["status"] == "finished" and saved["steps_completed"] == 20 and not saved["diverged"]
    assert saved["final"]["d_loss"] == rows[-1]["d_loss"]
    samples = np.load(tmp_path / "samples.npy")
    assert samples.shape == (200, 1 if dataset == "gaussian_1d" else 2)
    assert (tmp_path / "discriminator_outputs.png").stat().st_size > 10_000
    assert (tmp_path / "samples.png").stat().st_size > 10_000
    assert (tmp_path / "figure1.png").exists() == (dataset == "gaussian_1d")


def test_minimax_loss_trains_too(tmp_path, tiny):
    summary = loop.run(compose_config(tiny + ["loss=minimax", "dataset=ring_2d"]), tmp_path)
    assert summary["status"] == "finished" and np.isfinite(summary["final"]["g_loss"])
    assert summary["final"]["g_loss"] < 0  # log(1 - D(G(z))) is negative


def test_steps_not_a_multiple_of_steps_per_call(tmp_path, tiny):
    summary = loop.run(compose_config(tiny + ["train.steps=23", "train.steps_per_call=10"]), tmp_path)
    assert summary["steps_completed"] == 23
    assert metrics_rows(tmp_path)[-1]["step"] == 23


def test_divergence_stops_with_message_and_keeps_files(tmp_path, tiny):
    cfg = compose_config(tiny + ["optim=sgd", "optim.lr=1e30", "dataset=ring_2d"])
    with pytest.raises(loop.TrainingDiverged, match=r"training diverged at step \d+"):
        loop.run(cfg, tmp_path)
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["status"] == "diverged" and summary["diverged"] is True
    assert summary["diverged_step"] >= 1 and "diverged at step" in summary["error"]
    rows = metrics_rows(tmp_path)
    assert rows[-1]["step"] == summary["diverged_step"]
    assert any(v is None for v in rows[-1].values())  # the NaN, written as JSON null
    assert (tmp_path / "discriminator_outputs.png").exists()


def _assert_generator_matches(summary, mean, std):
    assert summary["status"] == "finished"
    assert abs(summary["d_real_last_tenth"] - 0.5) < 0.05
    assert abs(summary["d_fake_last_tenth"] - 0.5) < 0.05
    assert abs(summary["eval"]["sample_mean"] - mean) < 0.15 * std
    assert abs(summary["eval"]["sample_std"] / std - 1) < 0.15
    assert summary["eval"]["jsd"] < 0.02


def test_goodfellow_fig1_generator_matches_the_data(tmp_path):
    """The default experiment: D at 1/2 *and* p_g = p_data (a dead D also says 1/2)."""
    cfg = compose_config(["logger=none", "train.progress_bar=false"])
    summary = loop.run(cfg, tmp_path)
    _assert_generator_matches(summary, 4.0, 0.5)
    assert (tmp_path / "figure1.png").stat().st_size > 20_000


@pytest.mark.parametrize(
    "mean, std", [pytest.param(-3.0, 2.0, marks=pytest.mark.slow), pytest.param(10.0, 0.1, marks=pytest.mark.slow)]
)
def test_goodfellow_fig1_matches_other_target_gaussians(tmp_path, mean, std):
    cfg = compose_config(["logger=none", "train.progress_bar=false", f"dataset.mean={mean}", f"dataset.std={std}"])
    _assert_generator_matches(loop.run(cfg, tmp_path), mean, std)
