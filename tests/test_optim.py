"""Learning-rate decay: held until optim.lr_decay_start, then to 0 at train.steps, counted in
training iterations for both players; a decayed run refuses to be lengthened on resume."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import compose_config, training_rows

from gan_jax import loop, optim
from gan_jax.config import ConfigError, validate

TINY = [
    "logger=none",
    "train.progress_bar=false",
    "experiment=none",
    "dataset=ring_2d",
    "train.batch_size=32",
    "model.generator.width=16",
    "model.discriminator.width=16",
    "train.steps_per_call=10",
    "train.log_every=10",
    "eval.every=20",
    "eval.num_samples=100",
    "train.checkpoint_every=20",
]


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_decay_holds_lr_until_start_then_reaches_zero_at_the_last_step(decay):
    cfg = compose_config(["optim.lr=0.01", f"optim.lr_decay={decay}", "optim.lr_decay_start=60"]).optim
    for d_steps in (1, 5):
        lr = optim.schedule(0.01, cfg, steps=100, updates_per_step=d_steps)

        def iteration(i: int, lr=lr, d_steps=d_steps) -> float:
            return float(lr(i * d_steps))  # the schedule counts the optimiser's updates

        assert iteration(0) == iteration(59) == pytest.approx(0.01)
        assert iteration(60) == pytest.approx(0.01)
        assert iteration(80) == pytest.approx(0.005, rel=1e-5)  # halfway: linear and cosine agree
        assert 0 < iteration(99) < iteration(90) < iteration(70)
        assert iteration(100) == pytest.approx(0.0, abs=1e-9)


def test_no_decay_is_a_constant_lr():
    assert optim.schedule(0.01, compose_config([]).optim, steps=100, updates_per_step=1) == 0.01


def test_decay_starting_at_or_after_the_last_step_fails_at_start():
    cfg = compose_config(["train.steps=100", "optim.lr_decay=linear", "optim.lr_decay_start=100"])
    with pytest.raises(ConfigError, match=r"optim.lr_decay_start=100: the decay ends at train.steps=100"):
        validate(cfg, num_devices=1)
    with pytest.raises(ConfigError, match=r"optim.lr_decay='step': must be null or one of linear, cosine"):
        validate(compose_config(["optim.lr_decay=step"]), num_devices=1)


def test_a_decayed_run_trains_and_slows_down_and_cannot_be_lengthened(tmp_path):
    constant = loop.run(compose_config(TINY + ["train.steps=40"]), tmp_path / "constant")
    decayed_cfg = compose_config(TINY + ["train.steps=40", "optim.lr_decay=linear", "optim.lr_decay_start=20"])
    decayed = loop.run(decayed_cfg, tmp_path / "decayed")
    assert constant["status"] == decayed["status"] == "finished"
    same, differ = d_losses(tmp_path / "constant"), d_losses(tmp_path / "decayed")
    assert same[:2] == differ[:2]  # identical before the decay starts
    assert not np.allclose(same[2:], differ[2:])
    with pytest.raises(ConfigError, match=r"train.steps: 40 -> 60 \(optim.lr_decay=linear ends at train.steps\)"):
        longer = ["train.steps=60", "optim.lr_decay=linear", "optim.lr_decay_start=20"]
        loop.run(compose_config(TINY + longer), tmp_path / "decayed")


def d_losses(run_dir) -> list[float]:
    return [row["d_loss"] for row in training_rows(run_dir)]


def _updates(optimiser, grads: list[np.ndarray]) -> list[np.ndarray]:
    params, out = np.zeros(3, np.float32), []
    state = optimiser.init(params)
    for grad in grads:
        update, state = optimiser.update(grad, state, params)
        out.append(np.asarray(update))
    return out


def test_each_player_may_have_its_own_adam_betas():
    import optax

    cfg = compose_config(TINY + ["optim.lr=0.1", "optim.b1=0.0", "optim.b2=0.9", "optim.g_b2=0.5", "optim.d_b1=0.3"])
    validate(cfg, 1)
    g_opt, d_opt = (o.transformation for o in optim.build(cfg.optim, steps=10, d_steps=1))
    grads = [np.asarray([1.0, -2.0, 0.5], np.float32) * (i + 1) for i in range(4)]
    np.testing.assert_allclose(_updates(g_opt, grads), _updates(optax.adam(0.1, b1=0.0, b2=0.5), grads), rtol=1e-6)
    np.testing.assert_allclose(_updates(d_opt, grads), _updates(optax.adam(0.1, b1=0.3, b2=0.9), grads), rtol=1e-6)
    lazy_g = optim.build(cfg.optim, steps=10, d_steps=1, g_interval=4)[0].transformation  # then rescaled: 0.5 ** (4/5)
    expected = _updates(optax.adam(0.1 * 4 / 5, b1=0.0, b2=0.5 ** (4 / 5)), grads)
    np.testing.assert_allclose(_updates(lazy_g, grads), expected, rtol=1e-6)
    with pytest.raises(ConfigError, match=r"optim.g_b2=1.5: must be null or a number in \[0, 1\]"):
        validate(compose_config(TINY + ["optim.g_b2=1.5"]), 1)
