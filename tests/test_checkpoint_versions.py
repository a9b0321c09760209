"""A run saved by an earlier gan_jax continues with today's: its config is read in
today's layout (the single penalty penalty.name / penalty.weight became penalty.r1.weight),
keys added since take the values that behave as before, and the continued rows are those
today's code gives the whole run."""

from __future__ import annotations

import shutil
from pathlib import Path

from conftest import compose_config, training_rows

from gan_jax import loop

SAVED = Path(__file__).parent / "data" / "run_saved_before_terms"  # README.md there: how it was made
TODAY = [
    "experiment=none",
    "dataset=ring_2d",
    "model.generator.width=16",
    "model.discriminator.width=16",
    "train.batch_size=32",
    "loss=hinge",
    "penalty=r1",
    "penalty.r1.weight=1",
    "logger=none",
    "train.progress_bar=false",
    "train.checkpoint_every=5",
    "train.keep_checkpoints=1",
    "train.log_every=1",
    "eval.every=10",
    "eval.num_samples=100",
    "train.steps_per_call=5",
]


def test_a_run_saved_before_the_step_had_terms_continues_as_todays_whole_run(tmp_path):
    run_dir = tmp_path / "saved"
    shutil.copytree(SAVED, run_dir, ignore=shutil.ignore_patterns("README.md"))
    continued = loop.run(compose_config(TODAY + ["train.steps=20"]), run_dir)
    assert continued["resumed_from_step"] == 10
    assert not list((run_dir / "checkpoints").glob("damaged-*"))  # never set aside for its age
    whole = loop.run(compose_config(TODAY + ["train.steps=20"]), tmp_path / "whole")
    continued_rows, whole_rows = training_rows(run_dir), training_rows(tmp_path / "whole")
    assert len(continued_rows) == len(whole_rows) == 20
    for before, now in zip(continued_rows, whole_rows, strict=True):
        # Rows logged before the change lack the metrics added since (d_r1); the others match bit for bit.
        assert before == {k: now[k] for k in before} and (before == now or before["step"] <= 10)
    assert continued["final"] == whole["final"]
