"""Loss values against hand-computed closed forms."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import losses


def _sigmoid(a):
    return 1 / (1 + math.exp(-a))


REAL = jnp.array([[2.0], [-1.0], [0.5]])
FAKE = jnp.array([[-3.0], [0.0], [1.5]])


R = [2.0, -1.0, 0.5]
F = [-3.0, 0.0, 1.5]


def test_registry_names_and_error():
    assert losses.names() == ("minimax", "non_saturating", "wgan", "hinge", "lsgan", "relativistic", "rpgan")
    with pytest.raises(KeyError, match="valid losses: minimax, non_saturating, wgan"):
        losses.get("wgan_typo")


def _value(name, player):
    return float(getattr(losses.get(name), player)(REAL, FAKE))


def test_wgan():
    assert _value("wgan", "discriminator") == pytest.approx(np.mean(F) - np.mean(R), rel=1e-6)
    assert _value("wgan", "generator") == pytest.approx(-np.mean(F), rel=1e-6)


def test_hinge():
    expected = np.mean([max(0, 1 - r) for r in R]) + np.mean([max(0, 1 + f) for f in F])
    assert _value("hinge", "discriminator") == pytest.approx(expected, rel=1e-6)
    assert _value("hinge", "generator") == pytest.approx(-np.mean(F), rel=1e-6)


def test_lsgan():
    expected = 0.5 * np.mean([(r - 1) ** 2 for r in R]) + 0.5 * np.mean([f**2 for f in F])
    assert _value("lsgan", "discriminator") == pytest.approx(expected, rel=1e-6)
    assert _value("lsgan", "generator") == pytest.approx(0.5 * np.mean([(f - 1) ** 2 for f in F]), rel=1e-6)


def test_relativistic_average():
    mr, mf = np.mean(R), np.mean(F)
    d = np.mean([-math.log(_sigmoid(r - mf)) for r in R]) + np.mean([-math.log(1 - _sigmoid(f - mr)) for f in F])
    g = np.mean([-math.log(_sigmoid(f - mr)) for f in F]) + np.mean([-math.log(1 - _sigmoid(r - mf)) for r in R])
    assert _value("relativistic", "discriminator") == pytest.approx(d, rel=1e-6)
    assert _value("relativistic", "generator") == pytest.approx(g, rel=1e-6)


def test_relativistic_pairing_pairs_example_i_with_example_i():
    """R3GAN's loss (their Trainer.py): softplus(-(D(x_i) - D(G(z_i)))), not the average variant."""
    d = np.mean([-math.log(_sigmoid(r - f)) for r, f in zip(R, F, strict=True)])
    g = np.mean([-math.log(_sigmoid(f - r)) for r, f in zip(R, F, strict=True)])
    assert _value("rpgan", "discriminator") == pytest.approx(d, rel=1e-6)
    assert _value("rpgan", "generator") == pytest.approx(g, rel=1e-6)
    shuffled = losses.get("rpgan").discriminator(REAL, FAKE[::-1])
    assert float(shuffled) != pytest.approx(d, rel=1e-3)  # the pairing, not the batch means, decides it


def test_top_k_with_the_pairing_loss_is_refused_at_start():
    """Top-k hands G's loss k of the generated outputs: nothing to pair with the real ones."""
    from conftest import compose_config

    from gan_jax.config import ConfigError, validate

    with pytest.raises(ConfigError, match="penalty=topk with loss=rpgan: topk passes the loss only some"):
        validate(compose_config(["experiment=none", "dataset=ring_2d", "loss=rpgan", "penalty=[topk]"]), 1)


@pytest.mark.parametrize("name", ["minimax", "non_saturating"])
def test_discriminator_loss_is_binary_cross_entropy(name):
    expected = np.mean([-math.log(_sigmoid(r)) for r in (2.0, -1.0, 0.5)]) + np.mean(
        [-math.log(1 - _sigmoid(f)) for f in (-3.0, 0.0, 1.5)]
    )
    assert float(losses.get(name).discriminator(REAL, FAKE)) == pytest.approx(expected, rel=1e-6)


def test_minimax_generator_is_log_one_minus_d():
    expected = np.mean([math.log(1 - _sigmoid(f)) for f in (-3.0, 0.0, 1.5)])
    assert float(losses.get("minimax").generator(REAL, FAKE)) == pytest.approx(expected, rel=1e-6)


def test_non_saturating_generator_is_minus_log_d():
    expected = np.mean([-math.log(_sigmoid(f)) for f in (-3.0, 0.0, 1.5)])
    assert float(losses.get("non_saturating").generator(REAL, FAKE)) == pytest.approx(expected, rel=1e-6)


def test_equilibrium_values():
    """D = 1/2 everywhere: D's loss is log 4, the NS generator's log 2 (Goodfellow et al.)."""
    zeros = jnp.zeros((8, 1))
    assert float(losses.get("minimax").discriminator(zeros, zeros)) == pytest.approx(math.log(4), rel=1e-6)
    assert float(losses.get("non_saturating").generator(zeros, zeros)) == pytest.approx(math.log(2), rel=1e-6)
    assert float(losses.get("minimax").generator(zeros, zeros)) == pytest.approx(-math.log(2), rel=1e-6)


def test_minimax_saturates_where_non_saturating_does_not():
    """Early on D(G(z)) ~ 0: minimax's gradient vanishes, non-saturating's does not."""
    confident_fake = jnp.full((3, 1), -10.0)
    grad = lambda name: jax.grad(lambda f: losses.get(name).generator(REAL, f))(confident_fake)  # noqa: E731
    assert float(jnp.abs(grad("minimax")).sum()) < 1e-4
    assert float(jnp.abs(grad("non_saturating")).sum()) > 0.9


def test_losses_are_finite_for_extreme_logits():
    extreme = jnp.array([[1e4], [-1e4]])
    for name in losses.names():
        loss = losses.get(name)
        assert np.isfinite(float(loss.discriminator(extreme, -extreme)))
        assert np.isfinite(float(loss.generator(extreme, extreme)))
