"""gan-eval on damaged checkpoints: the damaged one named with its step and what is wrong, the
latest intact one scored instead, a chosen damaged one refused naming the intact steps, every
other run of a sweep scored; no traceback, and nothing in the run directory moved or deleted."""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT, TINY_DCGAN, compose_config

from gan_jax import loop, score


@pytest.fixture(scope="module")
def trained(fashion_mnist_dir, tmp_path_factory):
    """A 4-step DCGAN run with checkpoints at steps 2 and 4, and the best FID's in best/."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    overrides = TINY_DCGAN + [
        f"dataset.data_dir={fashion_mnist_dir}",
        "train.steps=4",
        "eval.every=2",
        "train.sample_every=2",
        "train.checkpoint_every=2",
        "train.keep_best=eval.fid",
    ]
    loop.run(compose_config(overrides), run_dir)
    return run_dir


def _copy(run_dir, to):
    shutil.copytree(run_dir, to)
    return to


def _truncate(path):
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def _array_files(step_dir):
    """Orbax's OCDBT layout: the arrays' bytes under ocdbt.process_<i>/d/ (the merged index is in d/)."""
    files = sorted((step_dir / "state").glob("ocdbt.process_*/d/*"))
    assert files
    return files


DAMAGES = {  # how to damage a checkpoint's directory, and the reason gan-eval must give
    "truncated metadata": (
        lambda step_dir: _truncate(step_dir / "meta" / "metadata"),
        "meta/metadata cannot be read (not valid JSON: ",
    ),
    "truncated array file": (
        lambda step_dir: [_truncate(f) for f in _array_files(step_dir)],
        "cannot be read (ValueError: OUT_OF_RANGE: ",
    ),
    "missing array file": (
        lambda step_dir: [f.unlink() for f in _array_files(step_dir)],
        "is missing (a file under state/ is gone)",
    ),
}


def _listing(run_dir):
    """Every path but gan-eval's own (eval.json and its lock)."""
    return sorted(str(p.relative_to(run_dir)) for p in run_dir.rglob("*") if score.EVAL_FILE not in p.name)


@pytest.mark.parametrize("damage", DAMAGES)
def test_the_latest_intact_checkpoint_is_scored_when_the_latest_is_damaged(trained, tmp_path, damage, caplog, capfd):
    damaging, reason = DAMAGES[damage]
    run_dir = _copy(trained, tmp_path / "run")
    damaging(run_dir / "checkpoints" / "4")
    before = _listing(run_dir)
    with caplog.at_level(logging.WARNING, logger="gan_jax.eval"):
        assert score.main([str(run_dir)]) == 0
    warning = next(r.getMessage() for r in caplog.records if "using step" in r.getMessage())
    assert warning.startswith(f"checkpoint {run_dir / 'checkpoints' / '4'} cannot be read: ")
    assert reason in warning and warning.endswith("; using step 2, the latest intact checkpoint, instead")
    entries = json.loads((run_dir / score.EVAL_FILE).read_text())
    [entry] = [v for k, v in entries.items() if k.startswith("latest@2/n32/")]
    assert [p["step"] for p in entry["passed_over"]] == [4] and reason in entry["passed_over"][0]["reason"]
    out, err = capfd.readouterr()
    assert "| run seed 0 step 2 |" in out and "step 4 cannot be read |" in out
    assert "Traceback" not in err and "Event loop is closed" not in err
    assert _listing(run_dir) == before  # nothing moved or deleted


def test_a_damaged_chosen_step_stops_naming_the_intact_steps(trained, tmp_path, caplog, capfd):
    run_dir = _copy(trained, tmp_path / "run")
    DAMAGES["truncated array file"][0](run_dir / "checkpoints" / "4")
    assert score.main([str(run_dir), "--checkpoint", "4"]) == 1
    assert (
        f"--checkpoint 4: checkpoint {run_dir / 'checkpoints' / '4'} cannot be read: the data of " in caplog.text
        and "; the intact checkpoints are step 2 (--checkpoint STEP or latest)" in caplog.text
    )
    assert not (run_dir / score.EVAL_FILE).exists()
    assert "Traceback" not in capfd.readouterr().err


def test_a_damaged_best_checkpoint_stops_naming_the_intact_steps(trained, tmp_path, caplog, capfd):
    run_dir = _copy(trained, tmp_path / "run")
    (best_dir,) = (p for p in (run_dir / "best").iterdir() if p.name.isdigit())
    DAMAGES["truncated metadata"][0](best_dir)
    assert score.main([str(run_dir), "--checkpoint", "best"]) == 1
    assert f"--checkpoint best: checkpoint {best_dir} cannot be read: meta/metadata cannot be read" in caplog.text
    assert "; the intact checkpoints are steps 2, 4 (--checkpoint STEP or latest)" in caplog.text
    assert "Traceback" not in capfd.readouterr().err


def test_a_sweep_scores_every_other_run_and_reports_the_damaged_one(trained, tmp_path, capfd):
    sweep = tmp_path / "sweep"
    runs = [_copy(trained, sweep / name) for name in ("0_a", "1_b", "2_c")]
    for step_dir in (runs[1] / "checkpoints").iterdir():
        DAMAGES["missing array file"][0](step_dir)
    assert score.main([str(sweep)]) == 1  # not everything was scored
    out, err = capfd.readouterr()
    assert "| 0_a seed 0 step 4 |" in out and "| 2_c seed 0 step 4 |" in out
    row = next(line for line in out.splitlines() if line.startswith("| 1_b |"))
    assert f"not scored: no checkpoint can be read: checkpoint {runs[1] / 'checkpoints' / '4'} cannot be read" in row
    assert "checkpoints/2 cannot be read: the data of " in row
    assert [(r / score.EVAL_FILE).exists() for r in runs] == [True, False, True]
    assert "Traceback" not in err


@pytest.mark.slow  # the tests above check the same in-process, stderr included
def test_gan_eval_falls_back_without_a_traceback(trained, tmp_path):
    """The issue's case through the console script: a truncated array file in checkpoints/4."""
    run_dir = _copy(trained, tmp_path / "run")
    DAMAGES["truncated array file"][0](run_dir / "checkpoints" / "4")
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    done = subprocess.run(
        [sys.executable, "-m", "gan_jax.score", str(run_dir)], env=env, cwd=ROOT, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert f"checkpoint {run_dir / 'checkpoints' / '4'} cannot be read: the data of " in done.stderr
    assert "using step 2, the latest intact checkpoint, instead" in done.stderr
    assert "Traceback" not in done.stderr and "Event loop is closed" not in done.stderr
    assert "| run seed 0 step 2 |" in done.stdout
