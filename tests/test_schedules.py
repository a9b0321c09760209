"""Hyper-parameter schedules (gan_jax/schedules.py): R3GAN's cosine curve, read back from
metrics.jsonl; the optimiser, the regulariser, the EMA and ADA each using the value of the
step; a run stopped mid-schedule resuming exactly; bad schedules refused at start."""

from __future__ import annotations

import math

import jax
import numpy as np
import pytest
from conftest import TINY, compose_config, training_rows

from gan_jax import loop, parts, schedules
from gan_jax.config import ConfigError, validate
from gan_jax.terms import DView

BATCH = 32
TOY = ["experiment=none", "dataset=ring_2d", "penalty=r1", "penalty.r1.weight=1.0", "train.ema_decay=0.9"] + TINY
# Images per step 32, span 0.32 kimg = 10 steps: a run of 20 passes the end of the curve.
SCHEDULED = [
    "schedule.kimg=0.32",
    "+schedule.final.optim.lr=5e-5",
    "+schedule.final.optim.b2=0.99",
    "+schedule.final.penalty.r1.weight=0.1",
    "+schedule.final.train.ema_decay=0.999",
]
KEYS = ("optim.lr", "optim.b2", "penalty.r1.weight", "train.ema_decay")


def r3gan_cosine(cur_nimg, base_value, total_nimg, final_value):
    """Their training_loop.cosine_decay_with_warmup without warm-up or hold, restated."""
    decay = 0.5 * (1 + np.cos(np.pi * cur_nimg / float(total_nimg)))
    value = base_value + (1 - decay) * (final_value - base_value)
    return float(np.where(cur_nimg > total_nimg, final_value, value))


@pytest.mark.parametrize("images", [0, 512, 5e6, 1e7, 1.9e7, 2e7, 3e7])
def test_the_cosine_curve_is_r3gans(images):
    """Their --preset CIFAR10 lr: 2e-4 -> 5e-5 over 2e7 images."""
    curve = schedules.Curve("optim.lr", 2e-4, 5e-5, 2e7, "cosine")
    assert float(curve.at_images(images)) == pytest.approx(r3gan_cosine(images, 2e-4, 2e7, 5e-5), rel=1e-5)


def test_the_linear_curve_and_the_step_as_images():
    curves = schedules.Schedules((schedules.Curve("augment.p", 0.0, 0.5, 100.0, "linear"),), batch_size=10)
    assert [float(curves.value("augment.p", jax.numpy.asarray(s))) for s in (0, 5, 10, 20)] == [0.0, 0.25, 0.5, 0.5]


def _expected(key: str, step: int) -> float:
    base = {"optim.lr": 2e-4, "optim.b2": 0.999, "penalty.r1.weight": 1.0, "train.ema_decay": 0.9}[key]
    final = {"optim.lr": 5e-5, "optim.b2": 0.99, "penalty.r1.weight": 0.1, "train.ema_decay": 0.999}[key]
    return r3gan_cosine(step * BATCH, base, 320, final)


def test_the_rows_carry_each_scheduled_value_and_a_stopped_run_resumes_on_the_curve(tmp_path):
    """Each row's schedule/<key> is the curve at the steps completed before it; stopped at step
    10 (half way) and continued, the rows equal the uninterrupted run's, bit for bit."""
    whole = loop.run(compose_config(TOY + SCHEDULED), tmp_path / "whole")
    rows = training_rows(tmp_path / "whole")
    for row in rows:
        for key in KEYS:
            assert row[f"schedule/{key}"] == pytest.approx(_expected(key, row["step"] - 1), rel=1e-5), (key, row)
    assert rows[-1]["schedule/optim.lr"] == pytest.approx(5e-5)  # past the span: the final value
    split_args = TOY + SCHEDULED + ["train.checkpoint_every=10"]
    loop.run(compose_config(split_args + ["train.steps=10"]), tmp_path / "split")
    split = loop.run(compose_config(split_args), tmp_path / "split")
    assert split["resumed_from_step"] == 10
    assert training_rows(tmp_path / "split") == rows
    assert split["final"] == whole["final"]


def test_a_schedule_that_stays_at_its_base_changes_nothing(tmp_path):
    """final = base: the optimiser with its lr and beta2 in its state (inject_hyperparams), the
    re-weighted R1, the EMA's scheduled decay give the plain run's numbers, to the rounding
    of settings that are float32 values rather than constants compiled in (1 - 0.999 differs
    by 1e-5 relative), which ten GAN steps grow to 4e-4."""
    plain = loop.run(compose_config(TOY + ["train.steps=10"]), tmp_path / "plain")
    same = [
        "schedule.kimg=0.32",
        "+schedule.final.optim.lr=2e-4",
        "+schedule.final.optim.b2=0.999",
        "+schedule.final.penalty.r1.weight=1.0",
        "+schedule.final.train.ema_decay=0.9",
    ]
    flat = loop.run(compose_config(TOY + same + ["train.steps=10"]), tmp_path / "flat")
    strip = lambda rows: [{k: v for k, v in r.items() if not k.startswith("schedule/")} for r in rows]  # noqa: E731
    np.testing.assert_allclose(
        [list(r.values()) for r in strip(training_rows(tmp_path / "flat"))],
        [list(r.values()) for r in strip(training_rows(tmp_path / "plain"))],
        rtol=2e-3,
        atol=1e-5,
    )
    assert {k for k in flat["final"] if not k.startswith("schedule/")} == set(plain["final"])


def test_each_part_uses_the_value_of_the_step():
    """D's Adam state holds the scheduled lr and beta2 of its last update, R1's logged value is
    the weight of the step times the same gradient norm, and the EMA decays with its own."""
    cfg = compose_config(TOY + SCHEDULED)
    validate(cfg, 1)
    gan = parts.build(cfg)
    assert gan.d_hyperparams is not None and gan.g_hyperparams is not None
    at_4 = gan.schedules.values(jax.numpy.asarray(4))
    values = gan.d_hyperparams(at_4)
    assert float(values["learning_rate"]) == pytest.approx(_expected("optim.lr", 4), rel=1e-5)
    assert float(values["b2"]) == pytest.approx(_expected("optim.b2", 4), rel=1e-5)
    assert float(gan.ema.beta(jax.numpy.asarray(4), at_4)) == pytest.approx(_expected("train.ema_decay", 4), rel=1e-5)
    r1 = next(t for t in gan.terms if t.name == "r1")
    real = jax.random.normal(jax.random.key(1), (8, 2))

    def r1_at(at: int) -> float:
        view = DView(
            real_out=None, fake_out=None, real_classes=None, fake_classes=None, real=real, fake=real,
            real_plain=real, fake_plain=real, real_labels=None, fake_labels=None,
            d=lambda x, labels: (x**2).sum(-1, keepdims=True), augment=None,
            keys=jax.random.split(jax.random.key(0), 8), step=jax.numpy.asarray(at), mean_over_devices=lambda v: v,
            settings=gan.schedules.values(jax.numpy.asarray(at)),
        )  # fmt: skip
        return float(r1.fn(view, None).value)

    # weight / 2 * E||2x||^2 with the weight of the step
    unweighted = float(0.5 * ((2 * real) ** 2).sum(-1).mean())
    assert r1_at(0) == pytest.approx(unweighted, rel=1e-5)
    assert r1_at(4) == pytest.approx(_expected("penalty.r1.weight", 4) * unweighted, rel=1e-5)


def test_a_lazy_players_scheduled_settings_are_rescaled():
    """With lazy R1 every 4 updates, D's lr is lr * 4/5 and beta2 beta2 ** (4/5), at every step."""
    cfg = compose_config(TOY + SCHEDULED + ["penalty.r1.interval=4"])
    validate(cfg, 1)
    gan = parts.build(cfg)
    values = gan.d_hyperparams(gan.schedules.values(jax.numpy.asarray(4)))
    assert float(values["learning_rate"]) == pytest.approx(_expected("optim.lr", 4) * 0.8, rel=1e-5)
    assert float(values["b2"]) == pytest.approx(_expected("optim.b2", 4) ** 0.8, rel=1e-5)


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["+schedule.final.optim.lr=1e-5"], "schedule.final sets optim.lr: give the span they follow, schedule.kimg"),
        (["schedule.kimg=1", "+schedule.final.optim.lr=0"], r"schedule.final.optim.lr=0: must be a number > 0"),
        (["schedule.kimg=1", "+schedule.final.optim.b2=1.5"], r"optim.b2=1.5: must be a number in \[0.0, 1.0\)"),
        (["schedule.kimg=1", "+schedule.final.model.width=3"], "schedule.final.model.width: not a key that can"),
        (["schedule.kimg=1", "+schedule.final.penalty.lecam.weight=3"], "valid keys here are optim.lr"),
        (["schedule.kimg=1", "+schedule.final.optim.g_lr=1e-4"], "optim.g_lr is null, so the schedule has no value"),
        (["schedule.kimg=1", "+schedule.final.train.ema_kimg=5"], "train.ema_kimg is null"),
        (["schedule.kimg=1", "+schedule.final.optim.lr=1e-5", "optim.lr_decay=linear"], "both shape the lr"),
        (["schedule.kimg=1", "+schedule.final.optim.lr=fast"], "must be a finite number"),
        (["schedule.kimg=1", "+schedule.final.optim.lr=inf"], "schedule.final.optim.lr=inf: must be a finite number"),
        (["schedule.kimg=1", "+schedule.final.train.ema_decay=1.5"], r"must be a number in \[0, 1\), as train"),
        (["schedule.kimg=-1"], "schedule.kimg=-1.0: must be null or a number > 0"),
        (["schedule.shape=step"], "schedule.shape='step': valid values are cosine, linear"),
    ],
)
def test_a_bad_schedule_fails_at_start_naming_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(TOY + overrides), 1)


def test_adas_fixed_p_follows_its_schedule():
    """augment=ada with a fixed p: the pipeline applies the p of the step (R3GAN: 0 -> 0.55)."""
    from gan_jax import augment

    cfg = compose_config(
        ["augment=ada", "augment.p=0", "train.batch_size=10", "schedule.kimg=1", "+schedule.final.augment.p=0.5"]
    )
    curves = schedules.from_config(cfg)
    pipeline = augment.from_config(cfg.augment, {"batch_size": 10, "schedules": curves})
    images = jax.numpy.zeros((4, 8, 8, 1)) + jax.numpy.linspace(-1, 1, 8)[None, :, None, None]
    keys = jax.random.split(jax.random.key(0), 4)
    at_start = pipeline.apply(images, keys, {}, curves.values(jax.numpy.asarray(0)))
    np.testing.assert_array_equal(np.asarray(at_start), np.asarray(images))  # p = 0: untouched
    later = pipeline.apply(images, keys, {}, curves.values(jax.numpy.asarray(100)))  # 1,000 images: p = 0.5
    assert not np.allclose(np.asarray(later), np.asarray(images))
    assert math.isclose(float(curves.value("augment.p", jax.numpy.asarray(50))), 0.25, rel_tol=1e-5)
