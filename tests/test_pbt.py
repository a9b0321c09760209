"""Population-based training: an exploit copies a member's whole state, explores its values,
and a run stopped after one resumes to the same rows and lineage."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest
from conftest import compose_config, metrics_rows, with_overrides

from gan_jax import loop, parts, pbt, population, sample, score, step
from gan_jax.checkpoint import Checkpoints
from gan_jax.config import ConfigError, validate

PBT = [
    "logger=none",
    "train.progress_bar=false",
    "experiment=none",
    "dataset=gaussian_1d",  # its JSD ranks the members from the first steps on
    "train.batch_size=64",
    "model.generator.width=16",
    "model.discriminator.width=16",
    "train.log_every=2",
    "eval.every=4",
    "train.steps_per_call=4",
    "train.checkpoint_every=4",
    "train.keep_checkpoints=5",
    "eval.num_samples=200",
    "train.ema_decay=0.9",  # the EMA is copied too
    "penalty=r1",
    "train.population={optim.lr:[1e-4,3e-4,1e-3,3e-3],penalty.r1.weight:[1.0]}",
    "train.pbt.every=4",
    "train.pbt.objective=eval.jsd",
    "train.pbt.fraction=0.5",
]


def _state_at(run_dir, cfg, at):
    gan = parts.build(cfg)
    like = step.init_population(gan, [m.seed for m in population.members(cfg)], population.numeric_values(cfg))
    checkpoints = Checkpoints(run_dir, keep=5, read_only=True)
    try:
        return checkpoints.read(at, like)[0]
    finally:
        checkpoints.close()


def test_an_exploit_copies_the_sources_whole_state_and_explores_its_values(tmp_path):
    cfg = compose_config(PBT + ["train.steps=8"])
    loop.run(compose_config(with_overrides(PBT, "train.steps=4", "train.pbt.every=null")), tmp_path / "before")
    result = loop.run(cfg, tmp_path / "after")
    before, after = _state_at(tmp_path / "before", cfg, 4), _state_at(tmp_path / "after", cfg, 4)
    events = [e for e in result["population"]["pbt"]["lineage"] if e["step"] == 4]
    assert len(events) == 2  # half of 4 members
    copied = {e["member"]: e for e in events}
    for member in range(4):
        source = copied[member]["source"] if member in copied else member
        for part in ("generator", "discriminator", "generator_ema", "terms"):
            for got, want in zip(
                jax.tree.leaves(getattr(after, part)), jax.tree.leaves(getattr(before, part)), strict=True
            ):
                np.testing.assert_array_equal(
                    np.asarray(got)[member], np.asarray(want)[source], err_msg=f"{member} {part}"
                )
        np.testing.assert_array_equal(np.asarray(after.rng)[member], np.asarray(before.rng)[member])  # its own draws
        lr = float(np.asarray(after.hyperparams["optim.lr"])[member])
        if member in copied:
            assert copied[member]["after"]["optim.lr"] == pytest.approx(lr, rel=1e-6)
            source_lr = float(np.asarray(before.hyperparams["optim.lr"])[source])
            explored = {round(source_lr * f, 12) for f in (0.8, 1.2)} | {1e-4, 3e-4, 1e-3, 3e-3}
            assert min(abs(lr - v) / v for v in explored) < 1e-6  # x 0.8, x 1.2, or drawn from the grid
        else:
            assert lr == float(np.asarray(before.hyperparams["optim.lr"])[member])
    # the copies then train on: a copied member's next rows differ from its source's
    rows = [r for r in metrics_rows(tmp_path / "after") if r["step"] == 8 and "d_loss" in r]
    member, event = next(iter(copied.items()))
    by_member = {r["member"]: r for r in rows}
    assert by_member[member]["d_loss"] != by_member[event["source"]]["d_loss"]
    assert (tmp_path / "after" / "population.png").stat().st_size > 0


def test_a_run_stopped_after_an_exploit_resumes_to_the_same_rows_and_lineage(tmp_path):
    cfg = compose_config(PBT + ["train.steps=12"])
    whole = loop.run(cfg, tmp_path / "whole")
    assert {e["step"] for e in whole["population"]["pbt"]["lineage"]} == {4, 8}
    # as if killed between the checkpoints at 4 (after its exploit) and 8
    shutil.copytree(tmp_path / "whole", tmp_path / "cut")
    for at in (8, 12):
        shutil.rmtree(tmp_path / "cut" / "checkpoints" / str(at))
    (tmp_path / "cut" / "summary.json").unlink()
    resumed = loop.run(cfg, tmp_path / "cut")
    assert resumed["resumed_from_step"] == 4
    assert metrics_rows(tmp_path / "cut") == metrics_rows(tmp_path / "whole")
    assert resumed["population"]["pbt"]["lineage"] == whole["population"]["pbt"]["lineage"]
    assert [r["hyperparams"] for r in resumed["replicas"]] == [r["hyperparams"] for r in whole["replicas"]]
    # a run that ended at an exploit step, continued: the round it skipped at its end is made
    loop.run(compose_config(PBT + ["train.steps=8"]), tmp_path / "extended")
    extended = loop.run(cfg, tmp_path / "extended")
    assert extended["population"]["pbt"]["lineage"] == whole["population"]["pbt"]["lineage"]
    assert json.loads((tmp_path / "whole" / "summary.json").read_text())["population"]["pbt"]["objective"] == (
        "eval.jsd"
    )


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["train.population=null"], r"train.pbt.every=4: PBT explores the keys a population varies"),
        (["train.pbt.objective=null"], r"train.pbt.objective=None: give the evaluation key"),
        (["train.pbt.every=6"], r"train.pbt.every=6: .* a multiple of eval.every=4"),
        (["train.pbt.fraction=0.7"], r"train.pbt.fraction=0.7: must be a number in \(0, 0.5\]"),
        (["train.pbt.perturb=[]"], r"train.pbt.perturb=\[\]: must be a non-empty list"),
        (["train.pbt.perturb=[inf]"], r"train.pbt.perturb=\[inf\]: must be a non-empty list of finite numbers"),
        (["train.pbt.every=8"], r"train.pbt.every=8: no round before train.steps=8"),
    ],
)
def test_bad_pbt_settings_fail_at_start(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(PBT + ["train.steps=8"] + overrides), num_devices=1)


def test_an_objective_without_pbt_every_warns_that_no_rounds_run(caplog):
    cfg = compose_config(PBT + ["train.steps=8", "train.pbt.every=null"])
    validate(cfg, num_devices=1)  # accepted: a sweep may run train.pbt.every=null,4 beside one objective
    assert pbt.from_config(cfg, {"jsd": "min"}, lambda key, value: True) is None
    assert any("without train.pbt.every: no PBT rounds run" in r.getMessage() for r in caplog.records)


def test_an_objective_the_run_does_not_produce_fails_at_start(tmp_path):
    with pytest.raises(ConfigError, match=r"train.pbt.objective='eval.fid': not an evaluation key .* eval.jsd"):
        loop.run(compose_config(PBT + ["train.steps=8", "train.pbt.objective=eval.fid"]), tmp_path / "run")
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_a_diverged_member_does_not_stop_the_population_and_pbt_replaces_it(tmp_path, caplog):
    diverging = with_overrides(PBT, "train.population={optim.lr:[1e-4,3e-4,1e-3,1e9]}", "train.steps=8")
    without_pbt = loop.run(compose_config(with_overrides(diverging, "train.pbt.every=null")), tmp_path / "plain")
    assert without_pbt["status"] == "finished"
    assert without_pbt["replicas"][3]["status"] == "diverged" and "eval" not in without_pbt["replicas"][3]
    assert all("status" not in r and "eval" in r for r in without_pbt["replicas"][:3])
    assert np.isnan(np.load(tmp_path / "plain" / "samples.npy")[3]).all()
    assert score.main([str(tmp_path / "plain")]) == 0  # gan-eval leaves the diverged member out, saying so
    (scored,) = json.loads((tmp_path / "plain" / "eval.json").read_text()).values()
    assert scored["replicas"][3] == {
        "member": 3,
        "seed": 0,
        "status": "diverged",
        "diverged_step": without_pbt["replicas"][3]["diverged_step"],
        "note": f"diverged at step {without_pbt['replicas'][3]['diverged_step']}: not scored",
    }
    assert all(np.isfinite(r["jsd"]) for r in scored["replicas"][:3])
    caplog.clear()
    assert sample.main([str(tmp_path / "plain"), "--replica", "3", "--out", str(tmp_path / "s.npz"), "--quiet"]) == 1
    assert "--replica 3: member 3 diverged at step" in caplog.text and "did not: [0, 1, 2]" in caplog.text
    with_pbt = loop.run(compose_config(diverging), tmp_path / "pbt")
    (event,) = [e for e in with_pbt["population"]["pbt"]["lineage"] if e["member"] == 3]
    assert event["step"] == 4 and event["objective"]["member"] is None  # ranked last: nothing to score
    assert "status" not in with_pbt["replicas"][3] and "eval" in with_pbt["replicas"][3]  # a copy, trained on
    assert with_pbt["replicas"][3]["hyperparams"]["optim.lr"] < 1.0


def test_a_diverged_member_is_never_a_source_and_a_copy_is_of_a_better_member(tmp_path):
    # member 0 diverges at once
    ranked = with_overrides(
        PBT, "train.population=[{optim.lr:1e30},{optim.lr:1e-4},{optim.lr:1.1e-4},{optim.lr:1.2e-4}]"
    )
    result = loop.run(compose_config(with_overrides(ranked, "train.steps=12")), tmp_path / "run")
    lineage = result["population"]["pbt"]["lineage"]
    first = [e for e in lineage if e["step"] == 4]
    assert first and all(e["source"] != 0 for e in first)  # while diverged, never a source
    assert any(e["member"] == 0 for e in first)  # replaced by a living member's copy (a source later on)
    for event in lineage:
        member, source = event["objective"]["member"], event["objective"]["source"]
        assert source is not None and (member is None or source < member)  # strictly better (JSD: min)
