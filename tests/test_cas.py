"""The classification accuracy score (Ravuri & Vinyals 2019): train on generated, test on real."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose_config, metrics_rows
from idx_files import synthetic_images

from gan_jax import loop
from gan_jax.metrics import cas


def _as_model_input(images: np.ndarray) -> np.ndarray:
    return images[..., None].astype(np.float32) / 127.5 - 1.0


def test_cas_ranks_samples_between_noise_and_real_data(monkeypatch):
    """Noise with random classes (an untrained G) < class-true images whose classes 0-4 are
    drawn as the next class (a G that mixes up half its classes) < the real training images."""
    monkeypatch.setattr(cas, "CAS_BATCH_SIZE", 32)  # a shorter training than a run's: these classes are easy
    monkeypatch.setattr(cas, "CAS_MIN_STEPS", 40)
    real_train, train_labels = synthetic_images(256, seed=0)
    real_test, test_labels = synthetic_images(256, seed=1)
    generated, generated_labels = synthetic_images(256, seed=2)
    rng = np.random.default_rng(3)
    partly_learnt = np.where(generated_labels < 5, generated_labels + 1, generated_labels)
    noise = rng.uniform(-1, 1, (256, 28, 28, 1)).astype(np.float32)

    def score(images, labels):
        return cas.classification_accuracy_score(images, labels, _as_model_input(real_test), test_labels, 10)

    untrained = score(noise, rng.integers(0, 10, 256))
    learnt = score(_as_model_input(generated), partly_learnt)
    ceiling = score(_as_model_input(real_train), train_labels)
    assert untrained < 0.3 < learnt < ceiling, (untrained, learnt, ceiling)


@pytest.mark.slow  # a conditional ResNet's compile; the metric itself is the test above
def test_a_conditional_run_logs_cas_its_ceiling_and_gan_test(fashion_mnist_dir, tmp_path, monkeypatch):
    from test_resnet import TINY_RESNET

    overrides = [*TINY_RESNET, f"dataset.data_dir={fashion_mnist_dir}", "eval.metrics=[cas]"]
    monkeypatch.setattr(cas, "CAS_MIN_STEPS", 100)
    outputs = loop.run(compose_config(overrides), tmp_path)
    assert outputs["status"] == "finished"
    evaluation = [r for r in metrics_rows(tmp_path) if "cas" in r][-1]
    assert all(0 <= evaluation[k] <= 1 for k in ("cas", "cas_real", "gan_test"))
    assert evaluation["cas_real"] > 0.5 > evaluation["cas"]  # 40 real images teach the bars; 2 steps of G do not
