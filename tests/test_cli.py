"""`gan-train` as a user runs it: W&B offline files, and a Hydra multirun."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import ROOT, TINY, gan_train, metrics_rows, training_rows
from wandb_records import read_run

CLI_TINY = [o for o in TINY if not o.startswith("logger=")]


def gan_compare(args: list[str]):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "gan_jax.compare", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def _wandb_run_file(run_dir: Path) -> Path:
    files = list(run_dir.glob("wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 1, files
    return files[0]


def test_offline_wandb_run_holds_config_and_metrics(tmp_path):
    """No API key: W&B runs offline, its files inside the run directory."""
    result = gan_train(CLI_TINY + ["dataset=ring_2d", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    run = read_run(_wandb_run_file(tmp_path))
    assert run["config"]["dataset"] == {"name": "ring_2d", "num_modes": 8, "radius": 1.0, "std": 0.01}
    assert run["config"]["train"]["steps"] == 20
    logged = [h for h in run["history"] if "d_real" in h]
    assert [h["_step"] for h in logged] == [5, 10, 15, 20]
    jsonl = metrics_rows(tmp_path)
    assert logged[-1]["d_fake"] == next(r for r in jsonl if r["step"] == 20 and "d_fake" in r)["d_fake"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["wandb"]["mode"] == "offline" and summary["wandb"]["id"] == run["run"].run_id
    assert "W&B (offline) files" in result.stdout + result.stderr


def test_logger_none_writes_no_wandb_files(tmp_path):
    result = gan_train(CLI_TINY + ["logger=none", f"hydra.run.dir={tmp_path}"])
    assert result.returncode == 0, result.stderr[-3000:]
    assert not (tmp_path / "wandb").exists()
    assert (tmp_path / "summary.json").exists()


@pytest.mark.slow  # make test's budget; the diverging-job sweep test and gan-report's tests run real multiruns
def test_multirun_gives_one_directory_and_one_wandb_run_per_job(tmp_path):
    result = gan_train(
        [
            "-m",
            "loss=minimax,non_saturating",
            "seed=0,1",
            *CLI_TINY,
            "dataset=ring_2d",
            f"hydra.sweep.dir={tmp_path}",
        ],
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    job_dirs = sorted(p.parent for p in tmp_path.glob("*/summary.json"))
    assert len(job_dirs) == 4
    runs = [read_run(_wandb_run_file(d)) for d in job_dirs]
    assert len({r["run"].run_id for r in runs}) == 4
    assert {r["run"].run_group for r in runs} == {tmp_path.name}
    combos = {(r["config"]["loss"]["name"], r["config"]["seed"]) for r in runs}
    assert combos == {("minimax", 0), ("minimax", 1), ("non_saturating", 0), ("non_saturating", 1)}
    finals = [json.loads((d / "summary.json").read_text())["final"]["d_loss"] for d in job_dirs]
    assert len(set(finals)) == 4

    compared = gan_compare([str(tmp_path), "--metrics", "modes_captured", "high_quality"])
    assert compared.returncode == 0, compared.stderr
    assert "4 runs in 2 groups (by loss.name)" in compared.stdout
    assert "| loss.name=minimax | 2 | 0 | 0 |" in compared.stdout
    assert "| loss.name=non_saturating | 2 | 0 | 0 |" in compared.stdout
    assert (tmp_path / "comparison.md").read_text() == compared.stdout.rstrip("\n") + "\n"
    assert (tmp_path / "compare_modes_captured.png").stat().st_size > 5_000


def test_sweep_goes_on_past_a_diverging_job_and_says_how_many_failed(tmp_path):
    result = gan_train(
        [
            "-m",
            "optim=sgd",
            "optim.lr=0.001,1e30",
            *CLI_TINY,
            "logger=none",
            "dataset=ring_2d",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    assert result.returncode == 1
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/summary.json"))]
    assert [s["status"] for s in summaries] == ["finished", "diverged"]
    assert summaries[1]["diverged"] and summaries[1]["diverged_step"] >= 1
    assert "1 of 2 jobs failed (diverged: 1, finished: 1)" in result.stdout + result.stderr
    compared = gan_compare([str(tmp_path), "--metrics", "modes_captured"])
    assert "| optim.lr=0.001 | 1 | 0 | 0 |" in compared.stdout
    assert "| optim.lr=1e+30 | 1 | 1 | 0 | - | - | - |" in compared.stdout
    assert gan_compare([str(tmp_path), "--by", "optim.lrr"]).returncode != 0


@pytest.mark.slow  # make test's budget; the submitit requeue test signals a job and checks its resume the same way
def test_sigterm_then_rerun_resumes_and_matches_an_uninterrupted_run(tmp_path):
    """Preempted (SIGTERM) with no periodic checkpoint: the run saves one at the step it reached,
    exits 75 with status `preempted`, and the same command continues from that step."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from conftest import ROOT

    killed, whole = tmp_path / "killed", tmp_path / "whole"
    common = [
        "train.progress_bar=false",
        "train.log_every=100",
        "eval.every=100000",
        "train.checkpoint_every=100000",
    ]
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "gan_jax.train", "train.steps=100000", *common, f"hydra.run.dir={killed}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    metrics = killed / "metrics.jsonl"
    while time.time() < deadline and not (metrics.exists() and '"step": 300,' in metrics.read_text()):
        time.sleep(0.2)
    process.send_signal(signal.SIGTERM)
    output = process.communicate(timeout=60)[0].decode()
    assert process.returncode == 75, output[-3000:]
    summary = json.loads((killed / "summary.json").read_text())
    reached = summary["steps_completed"]
    assert summary["status"] == "preempted" and f"SIGTERM at step {reached}: stopped" in summary["error"]
    assert reached >= 300 and (killed / "checkpoints" / str(reached)).is_dir()
    run = read_run(_wandb_run_file(killed))
    assert any("d_real" in h for h in run["history"])

    steps = f"train.steps={reached + 400}"
    resumed = gan_train([steps, *common, f"hydra.run.dir={killed}"])
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"from its checkpoint at step {reached}" in resumed.stdout + resumed.stderr
    uninterrupted = gan_train([steps, *common, "logger=none", f"hydra.run.dir={whole}"])
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]

    assert training_rows(killed) == training_rows(whole)
    resumed_runs = [read_run(f) for f in killed.glob("wandb/offline-run-*/run-*.wandb")]
    assert len(resumed_runs) == 2 and len({r["run"].run_id for r in resumed_runs}) == 1


@pytest.mark.slow  # `make test`'s budget on 2 cores; `make test-all` runs it
def test_optuna_sweep_maximises_an_objective_from_the_summaries(tmp_path):
    import yaml

    result = gan_train(
        [
            "-m",
            "hydra/sweeper=optuna",
            "hydra.sweeper.n_trials=2",
            "hydra.sweeper.direction=maximize",
            "optim.lr=interval(1e-4,1e-2)",
            "objective=eval.high_quality",
            *CLI_TINY,
            "logger=none",
            "dataset=ring_2d",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    values = [json.loads(p.read_text())["eval"]["high_quality"] for p in tmp_path.glob("*/summary.json")]
    assert len(values) == 2
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())
    assert best["best_value"] == max(values)
    assert 1e-4 <= best["best_params"]["optim.lr"] <= 1e-2


@pytest.mark.slow  # two fresh processes with their start-up; the basic launcher is in make test
def test_submitit_local_launcher_runs_jobs_in_fresh_processes(tmp_path):
    result = gan_train(
        [
            "-m",
            "hydra/launcher=submitit_local",
            "loss=minimax,hinge",
            *CLI_TINY,
            "logger=none",
            "dataset=ring_2d",
            f"hydra.sweep.dir={tmp_path}",
        ]
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summaries = [json.loads(p.read_text()) for p in sorted(tmp_path.glob("*/summary.json"))]
    assert [s["status"] for s in summaries] == ["finished", "finished"]
    assert "all 2 jobs finished" in result.stdout + result.stderr


def test_submitit_requeues_a_job_stopped_by_its_signal_and_the_job_resumes(tmp_path):
    """hydra/launcher=submitit_local: submitit's signal (SIGUSR2) in training saves a checkpoint
    at the step reached and hands over to submitit, which requeues the same job; it resumes
    there and its rows equal an uninterrupted run's."""
    import os
    import signal
    import subprocess
    import sys
    import time

    common = ["train.progress_bar=false", "train.log_every=50", "eval.every=100000", "train.checkpoint_every=100000"]
    sweep_dir, whole = tmp_path / "sweep", tmp_path / "whole"
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    command = ["-m", "hydra/launcher=submitit_local", "logger=none", "train.steps=3000", *common]
    sweep = subprocess.Popen(
        [sys.executable, "-m", "gan_jax.train", *command, f"hydra.sweep.dir={sweep_dir}"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    deadline = time.time() + 120
    while time.time() < deadline and not any('"step": 300,' in p.read_text() for p in sweep_dir.glob("0*/metrics.*")):
        time.sleep(0.1)
    run_dir = next(sweep_dir.glob("0*/"))
    task = subprocess.run(["pgrep", "-f", f"submitit.core._submit {sweep_dir}"], capture_output=True, text=True)
    assert task.stdout.split(), "the job's task process was not found"
    os.kill(int(task.stdout.split()[0]), signal.SIGUSR2)
    output = sweep.communicate(timeout=240)[0].decode()
    assert sweep.returncode == 0, output[-3000:]

    job_log = "".join(p.read_text() for p in sweep_dir.glob(".submitit/*/*_log.*"))
    assert "SIGUSR2 at step" in job_log and "submitit requeues the job" in job_log, job_log[-3000:]
    resumed_at = int(job_log.split("SIGUSR2 at step ")[1].split(":")[0])
    assert 300 <= resumed_at < 3000 and f"from its checkpoint at step {resumed_at}" in job_log
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    uninterrupted = gan_train(["logger=none", "train.steps=3000", *common, f"hydra.run.dir={whole}"])
    assert uninterrupted.returncode == 0, uninterrupted.stderr[-3000:]
    assert training_rows(run_dir) == training_rows(whole)
