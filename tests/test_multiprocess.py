"""One run over several processes (jax.distributed on 127.0.0.1, forced CPU devices): the
numbers of one process with as many devices, process 0 alone writing the run directory,
checkpoints that move between process counts, and clear failures instead of hangs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable

import numpy as np
import pytest
from conftest import ROOT, TINY_DCGAN, gan_train, training_rows

from gan_jax import launch, rundir

RING = [
    "dataset=ring_2d",
    "logger=none",
    "train.progress_bar=false",
    "train.batch_size=32",
    "train.log_every=1",
    "train.steps_per_call=5",
    "train.checkpoint_every=5",
    "eval.every=10",
    "eval.num_samples=200",
]
FOUR_DEVICES = {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"}


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}


def launch_processes(args: list[str], processes: int = 2, devices: int = 2, timeout: int = 300):
    """`python -m gan_jax.launch --processes P --devices-per-process D -- gan-train ARGS`."""
    command = [sys.executable, "-m", "gan_jax.launch", f"--processes={processes}", f"--devices-per-process={devices}"]
    return subprocess.run(
        [*command, "--", "gan-train", *args], env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=timeout
    )


def start_two_processes(args_of: Callable[[int], list[str]]) -> list[subprocess.Popen]:
    """gan-train as processes 0 and 1 of one run (2 CPU devices each), process i with args_of(i)."""
    dist = [f"dist.coordinator_address=127.0.0.1:{launch.free_port()}", "dist.num_processes=2"]
    env = _env() | {"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "gan_jax.train", *args_of(i), *dist, f"dist.process_id={i}"],
            env=env,
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]


def assert_same_numbers(rows: list[dict], reference: list[dict], tolerance: float) -> None:
    assert [r["step"] for r in rows] == [r["step"] for r in reference]
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        gap = np.max(np.abs(np.array([r[key] for r in rows]) - np.array([r[key] for r in reference])))
        assert gap <= tolerance, (key, gap)


def test_two_processes_match_one_with_four_devices_and_their_checkpoint_resumes_in_one(tmp_path):
    whole = gan_train([*RING, "train.steps=10", f"hydra.run.dir={tmp_path / 'one'}"], env_extra=FOUR_DEVICES)
    assert whole.returncode == 0, whole.stderr[-3000:]

    split = tmp_path / "two"
    first = launch_processes([*RING, "train.steps=5", f"hydra.run.dir={split}"])
    assert first.returncode == 0, first.stdout[-4000:]
    assert "[process 1]" in first.stdout
    summary = json.loads((split / "summary.json").read_text())
    assert (summary["status"], summary["processes"], summary["devices"]) == ("finished", 2, 4)
    # Process 0 alone wrote the files: one row per step, not one per process.
    assert [r["step"] for r in training_rows(split)] == [1, 2, 3, 4, 5]
    assert sorted(int(p.name) for p in (split / "checkpoints").iterdir() if p.name.isdigit()) == [5]

    resumed = gan_train([*RING, "train.steps=10", f"hydra.run.dir={split}"], env_extra=FOUR_DEVICES)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((split / "summary.json").read_text())["resumed_from_step"] == 5
    assert_same_numbers(training_rows(split), training_rows(tmp_path / "one"), tolerance=1e-4)


def test_processes_given_different_configs_stop_at_start_naming_the_keys(tmp_path):
    shared = [*RING, "train.steps=5", f"hydra.run.dir={tmp_path / 'run'}"]
    children = start_two_processes(lambda i: [*shared, f"seed={i}"])
    outputs = [child.communicate(timeout=300)[0] for child in children]
    for child, output in zip(children, outputs, strict=True):
        assert child.returncode == 2, output[-3000:]
        assert "different configs" in output and "seed: process 0 has 0, process 1 1" in output
    assert not (tmp_path / "run" / "summary.json").exists()


def test_a_coordinator_that_never_answers_fails_within_the_timeout_naming_it(tmp_path):
    address = f"127.0.0.1:{launch.free_port()}"  # nothing listens there
    started = time.monotonic()
    result = gan_train(
        [
            *RING,
            f"hydra.run.dir={tmp_path / 'run'}",
            f"dist.coordinator_address={address}",
            "dist.num_processes=2",
            "dist.process_id=1",
            "dist.timeout_s=3",
        ],
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 2, output[-3000:]
    assert f"dist.coordinator_address={address}: no coordinator answered within dist.timeout_s=3 s" in output
    assert time.monotonic() - started < 60
    assert not (tmp_path / "run" / "summary.json").exists()


@pytest.mark.slow  # the rule is validate's (tests/test_config.py); here only the global count differs
def test_a_global_batch_that_the_devices_of_all_processes_do_not_divide_stops_every_process(tmp_path):
    result = launch_processes([*RING, "train.batch_size=30", "train.steps=5", f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode == 2, result.stdout[-3000:]
    for process in (0, 1):
        assert f"[process {process}]" in result.stdout
    assert "train.batch_size=30: must be divisible by the number of devices (4)" in result.stdout
    assert not (tmp_path / "run" / "summary.json").exists()


def test_when_process_0_cannot_claim_the_run_directory_every_process_stops(tmp_path):
    run_dir = tmp_path / "run"
    with rundir.claim(run_dir):  # another run holds it
        result = launch_processes([*RING, "train.steps=5", f"hydra.run.dir={run_dir}"])
    assert result.returncode == 4, result.stdout[-3000:]
    assert "[process 1]" in result.stdout and "process 0 of this run could not start" in result.stdout
    assert not (run_dir / "summary.json").exists()


def test_when_one_process_fails_the_launcher_stops_the_others_and_exits_with_its_code():
    # Process 1 exits with 3 at once; process 0 would sleep for a minute.
    script = "import sys, time; sys.exit(3) if sys.argv[-1] == 'dist.process_id=1' else time.sleep(60)"
    started = time.monotonic()
    assert launch.launch([sys.executable, "-c", script], processes=2) == 3
    assert time.monotonic() - started < 30


def test_pmap_in_a_run_over_two_processes_stops_every_process_at_start(tmp_path):
    result = launch_processes([*RING, "train.parallel=pmap", "train.steps=5", f"hydra.run.dir={tmp_path / 'run'}"])
    assert result.returncode == 2, result.stdout[-3000:]
    assert "train.parallel=pmap: a run over 2 processes is compiled with shard_map" in result.stdout


def test_the_launcher_gives_every_process_the_same_run_directory_and_its_own_id():
    commands = launch.process_commands(["gan-train", "dataset=ring_2d"], processes=3, port=1234)
    assert [c[-1] for c in commands] == ["dist.process_id=0", "dist.process_id=1", "dist.process_id=2"]
    assert all(c[:3] == [sys.executable, "-m", "gan_jax.train"] for c in commands)
    assert all("dist.coordinator_address=127.0.0.1:1234" in c and "dist.num_processes=3" in c for c in commands)
    run_dirs = {arg for c in commands for arg in c if arg.startswith("hydra.run.dir=")}
    assert len(run_dirs) == 1
    sweep = launch.process_commands(["gan-train", "-m", "seed=0,1"], processes=2, port=1234)
    assert any(arg.startswith("hydra.sweep.dir=") for arg in sweep[0])
    assert not any(arg.startswith("hydra.run.dir=") for arg in sweep[0])


@pytest.mark.slow
def test_the_dcgan_on_two_processes_matches_one_process_with_four_devices(fashion_mnist_dir, tmp_path):
    dcgan = [*TINY_DCGAN, f"dataset.data_dir={fashion_mnist_dir}", "train.checkpoint_every=6"]
    whole = gan_train([*dcgan, f"hydra.run.dir={tmp_path / 'one'}"], env_extra=FOUR_DEVICES, timeout=900)
    assert whole.returncode == 0, whole.stderr[-3000:]
    split = launch_processes([*dcgan, f"hydra.run.dir={tmp_path / 'two'}"], timeout=900)
    assert split.returncode == 0, split.stdout[-4000:]
    assert_same_numbers(training_rows(tmp_path / "two"), training_rows(tmp_path / "one"), tolerance=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGUSR1, signal.SIGTERM])
def test_a_signal_to_one_process_stops_every_process_at_the_same_step_with_a_checkpoint(tmp_path, signum):
    """Process 1 (which writes nothing) is signalled; both stop after the same call, process 0
    saves the checkpoint there, both exit 75, and one process resumes from it."""
    run_dir = tmp_path / "run"
    shared = [*RING, "train.steps=100000", "train.checkpoint_every=100000", f"hydra.run.dir={run_dir}"]
    children = start_two_processes(lambda i: shared)
    deadline = time.monotonic() + 240
    metrics = run_dir / "metrics.jsonl"
    while time.monotonic() < deadline and not (metrics.exists() and '"step": 20,' in metrics.read_text()):
        time.sleep(0.1)
    children[1].send_signal(signum)
    outputs = [child.communicate(timeout=120)[0] for child in children]
    for child, output in zip(children, outputs, strict=True):
        assert child.returncode == 75, output[-3000:]
    summary = json.loads((run_dir / "summary.json").read_text())
    reached = summary["steps_completed"]
    assert summary["status"] == "preempted" and f"{signal.Signals(signum).name} at step {reached}" in summary["error"]
    assert (run_dir / "checkpoints" / str(reached)).is_dir() and reached % 5 == 0
    resumed = gan_train([*RING, f"train.steps={reached + 5}", f"hydra.run.dir={run_dir}"], env_extra=FOUR_DEVICES)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert json.loads((run_dir / "summary.json").read_text())["resumed_from_step"] == reached
