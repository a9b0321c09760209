"""The step's phases: lazy regularisation, gradient accumulation, StyleGAN's EMA."""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import compose_config

from gan_jax import ema, optim, penalties, step
from gan_jax import parts as parts_lib
from gan_jax.step import Stream

TOY = ["experiment=none", "dataset=ring_2d", "model.generator.width=16", "model.discriminator.width=16"]
TOY += ["train.batch_size=32"]


def _run(overrides: list[str], steps: int):
    cfg = compose_config(TOY + overrides)
    parts = parts_lib.build(cfg)
    train_step = jax.jit(partial(step.train_step, parts, cfg.train.batch_size, None))
    state, states, rows = step.init_state(parts, 0), [], []
    for _ in range(steps):
        states.append(state)
        state, metrics = train_step(state)
        rows.append({k: float(v) for k, v in metrics.items()})
    return cfg, parts, states + [state], rows


def test_lazy_r1_runs_on_iterations_0_16_32_scaled_by_16():
    """penalty.r1.interval=16 with SGD: on iterations 0, 16, 32 D takes a second update of
    -lr * 16/17 * 16 * grad R1 (D's lr rescaled by N/(N+1), the value by N); never between."""
    lr = 0.01
    cfg, parts, states, rows = _run(
        ["optim=sgd", f"optim.lr={lr}", "penalty=r1", "penalty.r1.weight=1", "penalty.r1.interval=16"], 34
    )
    ran = [s for s in range(34) if rows[s]["d_r1"] != (rows[s - 1]["d_r1"] if s else 0.0)]
    assert ran == [0, 16, 32]
    assert rows[5]["d_penalty"] == 0.0  # not in the main update

    # Iteration 16 by hand: the main update, then the lazy one from where it left D.
    at, after = states[16], states[17]
    batch = cfg.train.batch_size
    main_only = parts.__class__(**{**parts.__dict__, "terms": parts.terms[:2]})  # the adversarial terms
    # The lazy player's optimiser is rescaled for every update, the main ones too.
    main_only = main_only.__class__(**{**main_only.__dict__, "d_optimiser": optax.sgd(lr * 16 / 17)})
    d_main = step.train_step(main_only, batch, None, at)[0].discriminator
    real = step.sample_batch(parts.data.sample_one, step.stream_key(at.rng, at.step, Stream.D_REAL, 0), 0, batch)
    d = parts.models.discriminator
    r1 = penalties.build("r1", 1.0, parts.data.scale)
    grad = jax.grad(lambda p: r1(lambda x: d.apply({"params": p}, x), real, real, None))(d_main.params)
    expected = jax.tree.map(lambda p, g: p - lr * 16 / 17 * 16 * g, d_main.params, grad)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=2e-5, atol=1e-7), after.discriminator.params, expected
    )


def test_a_lazy_player_gets_adam_rescaled():
    cfg = compose_config(TOY + ["penalty=r1", "penalty.r1.interval=16", "optim.b1=0.5", "optim.b2=0.99"])
    rescaled, ratio = optim.lazy_rescaled(cfg.optim, 16)
    assert ratio == pytest.approx(16 / 17)
    assert rescaled.b1 == pytest.approx(0.5 ** (16 / 17)) and rescaled.b2 == pytest.approx(0.99 ** (16 / 17))
    assert cfg.optim.b1 == 0.5  # the config itself is untouched
    parts = parts_lib.build(cfg)
    state = step.init_state(parts, 0)
    new, _ = jax.jit(partial(step.train_step, parts, 32, None))(state)
    assert int(new.discriminator.opt_state[0].count) == 2  # main + lazy at iteration 0
    assert int(new.generator.opt_state[0].count) == 1


def test_gradient_accumulation_gives_the_one_batch_update():
    """No batch norm, a mean loss and a per-example penalty: M micro-batches, the same step."""
    extra = ["loss=hinge", "penalty=r1", "penalty.r1.weight=1", "train.d_steps=2"]
    _, _, whole, whole_rows = _run(extra, 3)
    _, _, micro, micro_rows = _run(extra + ["train.grad_accum=4"], 3)
    for a, b in zip(whole_rows, micro_rows, strict=True):
        for key in a:
            np.testing.assert_allclose(b[key], a[key], rtol=1e-4, atol=1e-5, err_msg=key)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6), whole[-1].generator, micro[-1].generator
    )


def test_gradient_accumulation_lowers_the_compiled_steps_peak_memory():
    """XLA's memory analysis of the compiled step (an MLP on a large batch, where the
    activations dominate): its temporaries shrink with the micro-batch."""
    temp = {}
    for accum in (1, 4):
        large = ["model.discriminator.width=256", "train.batch_size=4096", f"train.grad_accum={accum}"]
        cfg = compose_config(TOY + large)
        parts = parts_lib.build(cfg)
        state = step.init_state(parts, 0)
        compiled = jax.jit(partial(step.train_step, parts, 4096, None)).lower(state).compile()
        temp[accum] = compiled.memory_analysis().temp_size_in_bytes
    assert temp[4] < 0.5 * temp[1], temp


def test_stylegan_ema_half_life_and_ramp_up():
    """beta = 0.5 ** (batch / min(kimg * 1000, images seen * rampup)), 0 before any image."""
    average = ema.EMA(None, half_life_kimg=10.0, rampup=0.05, batch_size=64)
    assert float(average.beta(jnp.int32(0))) == 0.0
    step_count = 100  # 6,400 images seen: ramped half-life 320 images
    assert float(average.beta(jnp.int32(step_count))) == pytest.approx(0.5 ** (64 / 320), rel=1e-6)
    late = 10**6  # ramp-up past the half-life: 10,000 images
    assert float(average.beta(jnp.int32(late))) == pytest.approx(0.5 ** (64 / 10_000), rel=1e-6)
    fixed = ema.EMA(0.999, start=5)
    assert float(fixed.beta(jnp.int32(4))) == 0.0 and float(fixed.beta(jnp.int32(5))) == pytest.approx(0.999)


def test_stylegan_ema_trains_and_is_refused_beside_a_decay():
    from gan_jax.config import ConfigError, validate

    _, parts, states, _ = _run(["train.ema_kimg=0.5", "train.ema_rampup=0.05"], 2)
    assert parts.ema is not None and parts.ema.half_life_kimg == 0.5
    jax.tree.map(np.testing.assert_array_equal, states[1].generator_ema, states[1].generator.params)  # beta 0 at 0
    with pytest.raises(ConfigError, match="train.ema_kimg=0.5 with train.ema_decay=0.9"):
        validate(compose_config(TOY + ["train.ema_kimg=0.5", "train.ema_decay=0.9"]), 1)


def test_bad_intervals_and_micro_batches_fail_at_start_naming_the_key():
    from gan_jax.config import ConfigError, validate

    cases = {
        "penalty.r1.interval=0: must be an integer >= 1": ["penalty=r1", "penalty.r1.interval=0"],
        "train.grad_accum=5: each device's batch (32 = train.batch_size 32 / 1 devices) must split into 5": [
            "train.grad_accum=5"
        ],
    }
    for message, overrides in cases.items():
        with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
            validate(compose_config(TOY + overrides), 1)


def test_a_players_lazy_regularisers_share_one_interval():
    from gan_jax.config import ConfigError

    cfg = compose_config(TOY + ["penalty=[r1,r2]", "penalty.r1.interval=4", "penalty.r2.interval=8"])
    with pytest.raises(ConfigError, match="the discriminator's lazy regularisers must share one interval"):
        parts_lib.build(cfg)
