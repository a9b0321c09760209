"""Orbax checkpoints: a run continued from a checkpoint equals the uninterrupted run."""

from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any

import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compose_config
from omegaconf import OmegaConf

from gan_jax import checkpoint, loop
from gan_jax.config import ConfigError

BASE = [
    "logger=none",
    "train.progress_bar=false",
    "experiment=none",
    "dataset=ring_2d",
    "train.batch_size=64",
    "model.generator.width=32",
    "model.discriminator.width=32",
    "train.log_every=5",
    "eval.every=20",
    "train.steps_per_call=10",
    "train.checkpoint_every=20",
    "eval.num_samples=100",
]


def _train_rows(run_dir):
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines()]
    return [r for r in rows if "d_loss" in r]


def test_continued_run_equals_uninterrupted_run_bit_for_bit(tmp_path):
    whole, split = tmp_path / "whole", tmp_path / "split"
    uninterrupted = loop.run(compose_config(BASE + ["train.steps=60"]), whole)
    loop.run(compose_config(BASE + ["train.steps=40"]), split)
    continued = loop.run(compose_config(BASE + ["train.steps=60"]), split)
    assert continued["resumed_from_step"] == 40 and continued["steps_completed"] == 60
    assert _train_rows(split) == _train_rows(whole)  # every float, exactly
    assert [r["step"] for r in _train_rows(split)] == list(range(5, 61, 5))
    np.testing.assert_array_equal(np.load(split / "samples.npy"), np.load(whole / "samples.npy"))
    assert continued["final"] == uninterrupted["final"]


def test_keeps_the_last_k_checkpoints(tmp_path):
    loop.run(compose_config(BASE + ["train.steps=100", "train.keep_checkpoints=2"]), tmp_path)
    assert sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == [80, 100]


def test_resuming_with_another_config_fails_naming_the_keys(tmp_path):
    loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    with pytest.raises(ConfigError, match=r"optim.lr: 0.0002 -> 0.5"):
        loop.run(compose_config(BASE + ["train.steps=40", "optim.lr=0.5"]), tmp_path)


def test_fewer_steps_than_the_checkpoint_fails(tmp_path):
    loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    with pytest.raises(ConfigError, match=r"train.steps=20: .* holds a checkpoint at step 40"):
        loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)


def test_a_checkpoint_saved_before_a_key_existed_resumes_when_the_key_is_off():
    cfg = compose_config(["experiment=none", "dataset=ring_2d"])
    saved = OmegaConf.to_container(cfg, resolve=True)
    del saved["augment"], saved["dist"]  # as saved before those sections existed
    assert checkpoint.differences(saved, cfg) == []
    on = compose_config(["experiment=none", "dataset=ring_2d", "seed=3"])
    assert checkpoint.differences(saved, on) == ["seed: 0 -> 3"]


# Reading checkpoints: an older one lacks a part's state; a damaged one is named and passed over.


@flax.struct.dataclass
class _Before:
    """A state as saved before `terms` existed."""

    step: Any
    params: Any


@flax.struct.dataclass
class _After:
    step: Any
    params: Any
    terms: Any


def _params(scale=1.0):
    """Big enough to be stored in OCDBT's data files rather than inline in its index."""
    return {"dense": {"kernel": scale * jnp.arange(32 * 48.0).reshape(32, 48), "bias": scale * jnp.ones(48)}}


def _saved(tmp_path, state, steps=(2,)):
    checkpoints = checkpoint.Checkpoints(tmp_path, keep=10)
    for at in steps:
        checkpoints.save(at, state, {"config": {"seed": at}})
    return checkpoints


def _assert_same(a, b):
    assert jax.tree.structure(a) == jax.tree.structure(b)
    jax.tree.map(np.testing.assert_array_equal, a, b)


def test_a_leaf_the_checkpoint_lacks_starts_at_its_initial_value_with_a_warning(tmp_path, caplog):
    checkpoints = _saved(tmp_path, _Before(step=jnp.int32(7), params=_params()))
    lecam = {"real_average": jnp.full((), 0.5), "fake_average": jnp.zeros(())}
    like = _After(step=jnp.int32(0), params=_params(0.0), terms={"lecam": lecam, "none_yet": {}})
    with caplog.at_level(logging.WARNING, logger="gan_jax.checkpoint"):
        state, meta = checkpoints.read(2, like)
    _assert_same(state, _After(step=jnp.int32(7), params=_params(), terms={"lecam": lecam, "none_yet": {}}))
    assert meta == {"config": {"seed": 2}}
    assert (
        f"checkpoint {tmp_path / 'checkpoints' / '2'} has no terms/lecam/fake_average, terms/lecam/real_average "
        "(saved before they existed); starting them at their initial values" in caplog.text
    )
    # training's resume uses it too, and does not set the older checkpoint aside
    at, resumed, _ = checkpoints.restore_latest_intact(like)
    assert at == 2 and float(resumed.terms["lecam"]["real_average"]) == 0.5
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["2"]
    checkpoints.close()


def test_an_empty_dict_in_the_state_saves_and_restores(tmp_path, caplog):
    saved = _After(step=jnp.int32(3), params=_params(), terms={})
    checkpoints = _saved(tmp_path, saved)
    with caplog.at_level(logging.WARNING, logger="gan_jax.checkpoint"):
        state, _ = checkpoints.read(2, _After(step=jnp.int32(0), params=_params(0.0), terms={}))
    _assert_same(state, saved)
    assert caplog.text == ""  # nothing was missing
    grown = _After(step=jnp.int32(0), params=_params(0.0), terms={"lecam": {"real_average": jnp.ones(())}})
    with caplog.at_level(logging.WARNING, logger="gan_jax.checkpoint"):
        state, _ = checkpoints.read(2, grown)
    assert float(state.terms["lecam"]["real_average"]) == 1.0 and int(state.step) == 3
    assert "has no terms/lecam/real_average (saved before it existed); starting it at its initial value" in caplog.text
    checkpoints.close()


def test_a_shape_that_differs_is_named_with_both_shapes(tmp_path):
    checkpoints = _saved(tmp_path, _Before(step=jnp.int32(7), params=_params()))
    wider = {"dense": {"kernel": jnp.zeros((32, 64)), "bias": jnp.zeros(64)}}
    shapes = (
        r"checkpoints/2 cannot be read: params/dense/bias is \(48,\) in the checkpoint, \(64,\) in this config; "
        r"params/dense/kernel is \(32, 48\) in the checkpoint, \(32, 64\) in this config$"
    )
    with pytest.raises(checkpoint.DamagedCheckpoint, match=shapes) as raised:
        checkpoints.read(2, _Before(step=jnp.int32(0), params=wider))
    assert raised.value.step == 2
    checkpoints.close()


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _each(paths, damaging):
    paths = list(paths)
    assert paths
    for path in paths:
        damaging(path)


def _array_files(step_dir):
    """Orbax's OCDBT layout: the arrays' bytes under ocdbt.process_<i>/d/, the merged index under d/."""
    return (step_dir / "state").glob("ocdbt.process_*/d/*")


DAMAGES = {  # how to damage checkpoints/<step>, and the reason that must be given
    "truncated metadata": (
        lambda step_dir: _truncate(step_dir / "meta" / "metadata"),
        r"meta/metadata cannot be read \(not valid JSON: Expecting value: line 1 column \d+ \(char \d+\)\)",
    ),
    "missing metadata": (lambda step_dir: (step_dir / "meta" / "metadata").unlink(), r"meta/metadata is missing"),
    "truncated array data": (
        lambda step_dir: _each(_array_files(step_dir), _truncate),
        r"the data of (step|params/dense/\w+) cannot be read \(ValueError: OUT_OF_RANGE: .*\)",
    ),
    "missing array files": (
        lambda step_dir: _each(_array_files(step_dir), Path.unlink),
        r"the data of (step|params/dense/\w+) is missing \(a file under state/ is gone\)",
    ),
    "missing index file": (
        lambda step_dir: _each((step_dir / "state" / "d").iterdir(), Path.unlink),
        r"the index of state/ cannot be read \(ValueError: NOT_FOUND: .*\)",
    ),
    "truncated state structure": (
        lambda step_dir: _truncate(step_dir / "state" / "_METADATA"),
        r"state/_METADATA cannot be read \(not valid JSON: .*\)",
    ),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_a_damaged_checkpoint_is_named_and_the_newest_intact_one_found(tmp_path, damage, capfd):
    damaging, reason = DAMAGES[damage]
    state = _Before(step=jnp.int32(7), params=_params())
    _saved(tmp_path, state, steps=(2, 4)).close()
    damaging(tmp_path / "checkpoints" / "4")
    checkpoints = checkpoint.Checkpoints(tmp_path, keep=10, read_only=True)
    restored, damaged = checkpoints.newest_intact(lambda meta: _Before(step=jnp.int32(0), params=_params(0.0)))
    assert restored is not None and restored.step == 2
    _assert_same(restored.state, state)
    assert [d.step for d in damaged] == [4]
    assert re.fullmatch(
        f"checkpoint {re.escape(str(tmp_path))}/checkpoints/4 cannot be read: ({reason}).*", str(damaged[0])
    )
    with pytest.raises(checkpoint.DamagedCheckpoint, match=reason):
        checkpoints.read(4, _Before(step=jnp.int32(0), params=_params(0.0)))
    assert checkpoints.steps() == [2, 4]  # nothing moved or deleted
    checkpoints.close()
    assert "Traceback" not in capfd.readouterr().err


def test_a_leaf_this_state_no_longer_has_is_left_out_with_a_warning(tmp_path, caplog):
    checkpoints = _saved(tmp_path, _After(step=jnp.int32(7), params=_params(), terms={"gone": jnp.ones(2)}))
    with caplog.at_level(logging.WARNING, logger="gan_jax.checkpoint"):
        state, _ = checkpoints.read(2, _Before(step=jnp.int32(0), params=_params(0.0)))
    _assert_same(state, _Before(step=jnp.int32(7), params=_params()))
    assert "checkpoints/2 holds terms/gone, not part of this state; not restored" in caplog.text
    checkpoints.close()
