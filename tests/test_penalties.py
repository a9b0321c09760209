"""Penalties against cases with a known answer: a linear D(x) = w.x + b has grad_x D = w."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gan_jax import penalties

W = jnp.array([3.0, -4.0])  # ||w|| = 5
REAL = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
FAKE = jax.random.normal(jax.random.PRNGKey(1), (16, 2)) + 3.0
KEYS = jax.vmap(jax.random.fold_in, (None, 0))(jax.random.PRNGKey(2), jnp.arange(16))


def linear_d(w, b=0.7):
    return lambda x: (x @ w + b)[:, None]


@pytest.mark.parametrize("name", ["r1", "r2"])
def test_zero_centred_penalty_of_linear_d_is_half_gamma_w_squared(name):
    penalty = penalties.build(name, 10.0, (1.0, 1.0))
    assert float(penalty(linear_d(W), REAL, FAKE, KEYS)) == pytest.approx(10.0 / 2 * 25.0, rel=1e-5)


@pytest.mark.parametrize("name", ["wgan_gp", "dragan"])
def test_unit_norm_penalty_of_linear_d_is_lambda_norm_minus_one_squared(name):
    penalty = penalties.build(name, 10.0, (1.0, 1.0))
    assert float(penalty(linear_d(W), REAL, FAKE, KEYS)) == pytest.approx(10.0 * (5.0 - 1.0) ** 2, rel=1e-5)
    unit = W / 5.0
    assert float(penalty(linear_d(unit), REAL, FAKE, KEYS)) == pytest.approx(0.0, abs=1e-4)


def test_r1_reads_real_data_and_r2_generated_data():
    """D(x) = ||x||^2 / 2 has grad x: R1 sees E||x_real||^2, R2 E||x_fake||^2."""
    d_fn = lambda x: 0.5 * jnp.sum(x**2, axis=1, keepdims=True)  # noqa: E731
    r1 = penalties.build("r1", 2.0, (1.0, 1.0))(d_fn, REAL, FAKE, KEYS)
    r2 = penalties.build("r2", 2.0, (1.0, 1.0))(d_fn, REAL, FAKE, KEYS)
    np.testing.assert_allclose(r1, np.mean(np.sum(np.asarray(REAL) ** 2, 1)), rtol=1e-5)
    np.testing.assert_allclose(r2, np.mean(np.sum(np.asarray(FAKE) ** 2, 1)), rtol=1e-5)


def test_wgan_gp_evaluates_between_real_and_fake(monkeypatch):
    """The gradient is taken at x_hat = e x + (1 - e) G(z), one e ~ U(0, 1) per example."""
    captured = {}
    input_gradients = penalties._input_gradients

    def recording(d_fn, x):
        captured["x"] = x
        return input_gradients(d_fn, x)

    monkeypatch.setattr(penalties, "_input_gradients", recording)
    penalties.build("wgan_gp", 1.0, (1.0, 1.0))(linear_d(W), REAL, FAKE, KEYS)
    x_hat = np.asarray(captured["x"])
    t = (x_hat - np.asarray(FAKE)) / (np.asarray(REAL) - np.asarray(FAKE))  # the mixing weights
    assert np.allclose(t[:, 0], t[:, 1], atol=1e-4) and np.all((t >= -1e-5) & (t <= 1 + 1e-5))
    assert np.std(t[:, 0]) > 0.1  # one weight per example


@pytest.mark.parametrize("name", ["wgan_gp", "r1", "r2", "dragan"])
def test_penalty_gradients_are_finite(name):
    penalty = penalties.build(name, 10.0, (1.0, 1.0))

    def mlp(params, x):
        return jnp.tanh(x @ params["w1"]) @ params["w2"]

    params = {
        "w1": jax.random.normal(jax.random.PRNGKey(3), (2, 8)),
        "w2": jax.random.normal(jax.random.PRNGKey(4), (8, 1)),
    }
    grads = jax.grad(lambda p: penalty(lambda x: mlp(p, x), REAL, FAKE, KEYS))(params)
    assert all(np.all(np.isfinite(g)) and np.any(g != 0) for g in jax.tree.leaves(grads))


def test_the_gradient_penalties_are_registered_first():
    assert penalties.names()[:4] == ("wgan_gp", "r1", "r2", "dragan")


def _d_view(real_out, fake_out, **fields):
    from gan_jax.terms import DView

    defaults = dict(
        real_classes=None,
        fake_classes=None,
        real=None,
        fake=None,
        real_plain=None,
        fake_plain=None,
        real_labels=None,
        fake_labels=None,
        d=None,
        augment=None,
        keys=None,
        step=jnp.zeros((), jnp.int32),
        mean_over_devices=lambda x: x,
    )
    return DView(real_out=jnp.asarray(real_out), fake_out=jnp.asarray(fake_out), **(defaults | fields))


def test_lecam_against_a_hand_computation():
    """a_R <- 0.99 a_R + 0.01 mean D(x) first, then 0.3 (E[(D(x) - a_F)^2] + E[(D(G(z)) - a_R)^2])."""
    from gan_jax.regularisers.lecam import lecam_term

    term = lecam_term("lecam", weight=0.3, decay=0.99)
    state = {"real_average": jnp.float32(2.0), "fake_average": jnp.float32(-1.0)}
    real_out, fake_out = [[1.0], [3.0]], [[-2.0], [0.0]]  # means 2 and -1
    result = term.fn(_d_view(real_out, fake_out), state)
    a_r, a_f = 0.99 * 2.0 + 0.01 * 2.0, 0.99 * -1.0 + 0.01 * -1.0
    expected = 0.3 * (np.mean((np.array([1.0, 3.0]) - a_f) ** 2) + np.mean((np.array([-2.0, 0.0]) - a_r) ** 2))
    assert float(result.value) == pytest.approx(expected, rel=1e-6)
    # From the initial state (0, 0): the averages move 1% of the way to the batch means.
    start = term.init()
    moved = term.fn(_d_view(real_out, fake_out), start)
    assert float(moved.state["real_average"]) == pytest.approx(0.02, rel=1e-6)
    assert float(moved.state["fake_average"]) == pytest.approx(-0.01, rel=1e-6)
    assert set(moved.metrics) == {"lecam_real_average", "lecam_fake_average"}


def test_lecam_pulls_d_towards_the_other_sides_average():
    """Its gradient with respect to D's outputs: 2 * 0.3 * (D(x) - a_F) / n for real outputs."""
    from gan_jax.regularisers.lecam import lecam_term

    term = lecam_term("lecam", weight=0.3, decay=0.99)
    state = {"real_average": jnp.float32(0.5), "fake_average": jnp.float32(-0.5)}
    fake_out = jnp.array([[0.0], [0.0]])
    grad = jax.grad(lambda r: term.fn(_d_view(r, fake_out), state).value)(jnp.array([[1.0], [2.0]]))
    a_f = 0.99 * -0.5 + 0.01 * 0.0
    np.testing.assert_allclose(np.asarray(grad)[:, 0], 2 * 0.3 * (np.array([1.0, 2.0]) - a_f) / 2, rtol=1e-6)
