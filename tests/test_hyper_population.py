"""Hyper-parameter populations: each member of one compiled program is the single run
with its settings and seed; bad populations fail at start."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from conftest import TINY_DCGAN, compose_config, training_rows, with_overrides
from test_population import BASE

from gan_jax import loop, population, report
from gan_jax.config import ConfigError, validate

TOY = with_overrides(BASE, "train.steps=10", "eval.every=10", "penalty=r1")
GRID = "train.population={optim.lr:[1e-4,1e-3],penalty.r1.weight:[0.1,10]}"
COMPARED = ("d_loss", "g_loss", "d_real", "d_fake", "d_r1")


def _member_rows(run_dir, member):
    return [r for r in training_rows(run_dir) if r.get("member") == member]


def _assert_same_rows(together, alone, keys, label):
    assert len(together) == len(alone) == 10, label
    for key in keys:
        np.testing.assert_allclose(
            [r[key] for r in together], [r[key] for r in alone], rtol=1e-4, atol=1e-4, err_msg=f"{label}: {key}"
        )


def test_each_member_of_an_lr_by_penalty_weight_grid_equals_its_single_run(tmp_path):
    together = loop.run(compose_config(TOY + [GRID, "train.num_seeds=2", "seed=3"]), tmp_path / "population")
    assert [(r["member"], r["seed"]) for r in together["replicas"]] == [(m, 3 + m % 2) for m in range(8)]
    assert together["population"]["keys"] == ["optim.lr", "penalty.r1.weight"]
    assert together["population"]["points"][2] == {"optim.lr": 1e-3, "penalty.r1.weight": 0.1}
    assert np.load(tmp_path / "population" / "samples.npy").shape == (8, 200, 2)
    assert (tmp_path / "population" / "population.png").stat().st_size > 0
    # member m is point m // 2 with seed 3 + m % 2: members 1 (1e-4, 0.1, seed 4), 6 (1e-3, 10, seed 3)
    for member, overrides in ((1, ["optim.lr=1e-4", "penalty.r1.weight=0.1", "seed=4"]),
                              (6, ["optim.lr=1e-3", "penalty.r1.weight=10", "seed=3"])):  # fmt: skip
        single = loop.run(compose_config(TOY + overrides), tmp_path / f"single{member}")
        rows = _member_rows(tmp_path / "population", member)
        assert rows[0]["population/optim.lr"] == pytest.approx(float(overrides[0].split("=")[1]), rel=1e-6)
        _assert_same_rows(rows, training_rows(tmp_path / f"single{member}"), COMPARED, f"member {member}")
        replica = together["replicas"][member]
        assert replica["eval"]["modes_captured"] == single["eval"]["modes_captured"]
        assert replica["eval"]["high_quality"] == pytest.approx(single["eval"]["high_quality"], abs=1e-3)
    first, last = _member_rows(tmp_path / "population", 0), _member_rows(tmp_path / "population", 7)
    assert first[-1]["d_loss"] != last[-1]["d_loss"]


def test_each_member_of_a_loss_population_on_images_equals_its_single_run(fashion_mnist_dir, tmp_path):
    images = TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "train.steps=10", "eval.every=10"]
    images += ["train.sample_every=10", "train.checkpoint_every=10", "train.steps_per_call=10"]
    losses = ["non_saturating", "hinge", "wgan"]
    together = loop.run(
        compose_config(images + [f"train.population={{loss.name:[{','.join(losses)}]}}"]), tmp_path / "population"
    )
    assert [r["hyperparams"]["loss.name"] for r in together["replicas"]] == losses
    for member, name in enumerate(losses):
        loop.run(compose_config(images + [f"loss={name}"]), tmp_path / name)
        rows = _member_rows(tmp_path / "population", member)
        assert {r["population/loss.name"] for r in rows} == {name}
        _assert_same_rows(rows, training_rows(tmp_path / name), ("d_loss", "g_loss", "d_real", "d_fake"), name)


def test_random_draws_are_seeded_and_log_uniform_where_asked():
    cfg = compose_config(
        TOY + ["train.population={random:200,optim.lr:{low:1e-5,high:1e-1,log:true},loss.name:[hinge,wgan]}"]
    )
    drawn = population.points(cfg)
    assert drawn == population.points(cfg) and len(drawn) == 200
    lrs = np.log10([p["optim.lr"] for p in drawn])
    assert lrs.min() >= -5 and lrs.max() <= -1
    assert 0.3 < np.mean(lrs < -3) < 0.7  # log-uniform: half the draws below the geometric middle
    assert {p["loss.name"] for p in drawn} == {"hinge", "wgan"}
    assert population.numeric_values(cfg)["loss.name"].tolist() == [
        ("hinge", "wgan").index(p["loss.name"]) for p in drawn
    ]


def test_a_list_of_points_crossed_with_seeds():
    cfg = compose_config(TOY + ["train.population=[{optim.lr:1e-4},{optim.lr:2e-4,optim.b1:0.0}]", "train.num_seeds=2"])
    members = population.members(cfg)
    assert [(m.index, m.seed, m.values) for m in members][2] == (2, 0, {"optim.lr": 2e-4, "optim.b1": 0.0})
    single = population.member_config(cfg, members[0])
    assert single.optim.b1 == cfg.optim.b1 and single.train.population is None  # a key a point leaves out: the run's
    validate(cfg, num_devices=1)


@pytest.mark.parametrize(
    "override, message",
    [
        (
            "train.population={model.generator.width:[16,32]}",
            r"model.generator.width: it changes the compiled program; "
            r"sweep it instead: gan-train -m model.generator.width=A,B",
        ),
        ("train.population={train.batch_size:[16,32]}", r"train.batch_size: it changes the compiled program"),
        ("train.population={optim.lrr:[1e-4]}", r"optim.lrr: it changes the compiled program|optim.lrr: not a key"),
        (
            "train.population={optim.lr:[1e-4,-1.0]}",
            r"member 1 \(seed 0, optim.lr=-1\): optim.lr=-1.0: must be a number > 0",
        ),
        ("train.population={optim.b2:[0.9,1.5]}", r"optim.b2=1.5: must be a number in \[0.0, 1.0\)"),
        ("train.population={loss.name:[hinge,square]}", r"loss.name='square': valid values are"),
        ("train.population={optim.lr:3e-4}", r"optim.lr=0.0003: a grid axis is a non-empty list"),
        ("train.population={random:0,optim.lr:{low:1e-5,high:1e-3}}", r"random=0: must be the number of points"),
        (
            "train.population={random:4,optim.lr:{low:1e-3,high:1e-5}}",
            r"low=0.001, high=1e-05: must be finite numbers with low < high",
        ),
        ("train.population={random:4,optim.lr:{low:0,high:1e-3,log:true}}", r"log-uniform needs low > 0"),
        ("train.population={optim.g_lr:[1e-4,2e-4]}", r"optim.g_lr is null here"),
        ("train.population={random:4,optim.lr:{low:1e-5,high:inf}}", r"must be finite numbers with low < high"),
        ("train.population={random:4,optim.lr:{low:1e-5,high:1e-3,log:maybe}}", r"optim.lr.log='maybe': must be true"),
        ("train.population={random:3}", r"draws over no keys"),
        ("train.population={random:4,loss.name:{low:0,high:1}}", r"loss.name=.*: a loss is drawn from a list"),
        ("train.population={loss.name:[null,hinge]}", r"loss.name=None: a loss's name"),
        ("train.population={optim.lr:['1e-4','1e-3']}", r"optim.lr='1e-4': must be a finite number"),
        ("train.population={optim.lr:[1e-50,1e-3]}", r"optim.lr=1e-50: is 0 in float32"),
        ("train.population={penalty.dragan.weight:[1,10]}", r"penalty=dragan is not chosen"),
        (
            "train.population={penalty.weight:[1,10]}",
            r"penalty.weight: a penalty's weight is .*, here penalty.r1.weight",
        ),
        (
            "train.population=[{optim.lr:1e-4},{optim.lr:0.0001,optim.b1:0.5}]",
            r"points 0 and 1 are the same setting \(optim.lr=0.0001, optim.b1=0.5\); .* use train.num_seeds",
        ),
        ("train.population={optim.lr:[1e-4,3e-4,1e-4]}", r"points 0 and 2 are the same setting"),
    ],
)
def test_a_bad_population_fails_at_start_naming_the_key(override, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(TOY + [override]), num_devices=1)


def test_summary_and_rows_name_each_member(tmp_path):
    run_dir = tmp_path / "run"
    cfg = compose_config(TOY + ["train.population={loss.name:[hinge,lsgan]}", "train.steps=2", "eval.every=2"])
    loop.run(cfg, run_dir)
    written = json.loads((run_dir / "summary.json").read_text())
    assert [m["start"] for m in written["population"]["members"]] == [{"loss.name": "hinge"}, {"loss.name": "lsgan"}]
    assert {(r["member"], r["population/loss.name"]) for r in training_rows(run_dir)} == {(0, "hinge"), (1, "lsgan")}
    report.refresh_run_report(run_dir)
    page = (run_dir / "report.html").read_text()
    assert "a population of 2 (members 0, 1)" in page
    assert "d_loss, member 1" in page  # a curve per member
    assert ">lsgan<" in page  # the final numbers name each member's loss


def test_gan_compare_tables_a_population_as_the_sweep_of_its_members(tmp_path):
    from gan_jax import compare

    plain = with_overrides(TOY, "penalty=none")
    loop.run(
        compose_config(plain + ["train.population={optim.lr:[1e-4,1e-3]}", "train.num_seeds=2"]),
        tmp_path / "population",
    )
    for job, (lr, seed) in enumerate((lr, seed) for lr in ("1e-4", "1e-3") for seed in (0, 1)):
        loop.run(compose_config(plain + [f"optim.lr={lr}", f"seed={seed}"]), tmp_path / "sweep" / f"{job}")
    together, swept = compare.load_runs(tmp_path / "population"), compare.load_runs(tmp_path / "sweep")
    assert compare.varying_keys(together) == compare.varying_keys(swept) == ["optim.lr"]
    groups_together = compare.group_runs(together, ["optim.lr"])
    groups_swept = compare.group_runs(swept, ["optim.lr"])
    assert list(groups_together) == list(groups_swept) == ["optim.lr=0.0001", "optim.lr=0.001"]
    metrics = sorted({m for r in swept for m in r["metrics"]})
    assert {"modes_captured", "high_quality", "d_real_last_tenth"} <= set(metrics)
    for label in groups_swept:
        for metric in metrics:
            a = compare.group_statistics(groups_together[label], metric)
            b = compare.group_statistics(groups_swept[label], metric)
            assert (a["runs"], a["diverged"], a["failed"]) == (b["runs"], b["diverged"], b["failed"]) == (2, 0, 0)
            for statistic in ("mean", "std", "median", "best"):
                if b[statistic] is None:
                    assert a[statistic] is None
                else:
                    assert a[statistic] == pytest.approx(b[statistic], rel=1e-3, abs=1e-3), (label, metric, statistic)
    report = compare.compare(tmp_path / "population")
    assert "# population: 4 runs in 2 groups (by optim.lr)" in report
    assert (tmp_path / "population" / "compare_modes_captured.png").stat().st_size > 0


def test_each_member_is_a_w_and_b_run_of_its_own_in_the_populations_group(tmp_path, monkeypatch):
    from wandb_records import read_finished_run

    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config(
        [o for o in TOY if o != "logger=none"]
        + ["logger=wandb", "train.population={optim.lr:[1e-4,1e-3]}", "train.steps=2", "eval.every=2"]
    )
    result = loop.run(cfg, tmp_path / "run")
    ids = result["wandb"]["ids"]
    assert len(ids) == 2 and result["wandb"]["id"] == ids[0]
    for member, run_id in enumerate(ids):
        (run_file,) = (tmp_path / "run" / "wandb").glob(f"offline-run-*-{run_id}/run-{run_id}.wandb")
        record = read_finished_run(run_file)
        assert record["exited"], f"{run_file} has no exit record after 60 s"
        assert record["run"].run_group == "run" and record["run"].display_name == f"run/member_{member}"
        assert record["config"]["optim"]["lr"] == (1e-4, 1e-3)[member]
        assert record["config"]["population_member"] == member
        logged = [h for h in record["history"] if "d_loss" in h]
        rows = [r for r in training_rows(tmp_path / "run") if r["member"] == member]
        assert [h["d_loss"] for h in logged] == pytest.approx([r["d_loss"] for r in rows])


def test_a_population_that_will_not_fit_stops_before_training_saying_what_fits(tmp_path):
    grid = [GRID, "train.num_seeds=4", "train.memory_limit_gb=0.004"]  # 16 members; about 4 MiB
    with pytest.raises(
        ConfigError, match=r"16 members need about .* MiB .* the largest population that fits is about \d+ members? "
    ):
        loop.run(compose_config(TOY + grid), tmp_path / "run")
    written = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert written["status"] == "invalid_config" and written["steps_completed"] == 0
    assert not (tmp_path / "run" / "metrics.jsonl").exists() or not (tmp_path / "run" / "metrics.jsonl").read_text()
    fits = int(re.search(r"fits is about (\d+) member", written["error"]).group(1))
    assert 1 <= fits < 16


@pytest.mark.slow  # make test's budget: the traced EMA and ADA readers are the schedules' (test_schedules.py)
def test_an_ada_target_by_ema_decay_population_on_images_equals_its_single_runs(fashion_mnist_dir, tmp_path):
    images = TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}", "augment=ada", "augment.interval=1"]
    images += ["augment.ada_kimg=0.032", "train.ema_decay=0.9"]  # p moves by 16 / 32 = 0.5 an iteration
    grid = "train.population={augment.target:[0.3,0.9],train.ema_decay:[0.5,0.9]}"
    loop.run(compose_config(images + [grid]), tmp_path / "population")
    loop.run(compose_config(images + ["augment.target=0.3", "train.ema_decay=0.5"]), tmp_path / "single")
    rows, alone = _member_rows(tmp_path / "population", 0), training_rows(tmp_path / "single")
    assert len(rows) == len(alone) == 6
    for key in ("d_loss", "g_loss", "ada_p", "ada_rt"):
        np.testing.assert_allclose([r[key] for r in rows], [r[key] for r in alone], rtol=1e-4, atol=1e-4, err_msg=key)
    assert rows[-1]["ada_p"] > 0  # r_t passed 0.3 (member 2's target, 0.9, it did not)
    assert _member_rows(tmp_path / "population", 2)[-1]["ada_p"] == 0
    samples = np.load(tmp_path / "population" / "samples.npy")  # from each member's EMA of G
    np.testing.assert_allclose(samples[0], np.load(tmp_path / "single" / "samples.npy"), atol=1e-3)
    assert not np.allclose(samples[0], samples[1], atol=1e-3)  # member 1: decay 0.9


def test_a_key_both_varied_and_scheduled_logs_the_members_value_beside_the_curves(tmp_path):
    cfg = compose_config(
        TOY + ["train.population={optim.lr:[1e-4,1e-3]}", "+schedule.final.optim.lr=1e-5", "schedule.kimg=0.32"]
    )
    result = loop.run(cfg, tmp_path / "run")
    last = [r for r in training_rows(tmp_path / "run") if r["step"] == 10]
    assert [r["population/optim.lr"] for r in last] == [1e-4, 1e-3]  # each member's own, as it started
    assert all(
        r["schedule/optim.lr"] == pytest.approx(1e-5, rel=1e-4) for r in last
    )  # the curve's end, after 320 images
    assert [r["hyperparams"]["optim.lr"] for r in result["replicas"]] == [1e-4, 1e-3]
