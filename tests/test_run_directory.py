"""A run directory never lies: faults injected, then its rows, summary and config checked.

Each test breaks a run the way a user or a machine would (a kill before the first
checkpoint, a full disk, a torn row, a damaged checkpoint, a second process, a rejected
resume) and then reads the directory back.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys

import pytest
from conftest import ROOT, compose_config, gan_train, metrics_rows, training_rows

from gan_jax import loop, preemption, rundir
from gan_jax.config import ConfigError
from gan_jax.errors import RunDirectoryInUse
from gan_jax.run_logger import RunLogger

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
CLI = [o for o in BASE if o != "logger=none"] + ["logger=none"]


def _summary(run_dir):
    return json.loads((run_dir / "summary.json").read_text())


def _snapshot(run_dir):
    """Every file's bytes, but the lock's holder line and Hydra's log of each attempt."""
    return {
        p.relative_to(run_dir): p.read_bytes()
        for p in sorted(run_dir.rglob("*"))
        if p.is_file() and p.name not in (rundir.LOCK_FILE, "train.log")
    }


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    """The reference: 40 steps in one go."""
    run_dir = tmp_path_factory.mktemp("whole")
    loop.run(compose_config(BASE + ["train.steps=40"]), run_dir)
    return run_dir


def _at_row(monkeypatch, row_number, action):
    """metrics.jsonl's `row_number`-th append (1-based, this process) first calls `action()`."""
    calls = {"n": 0}
    original = RunLogger.log

    def log(self, step, seed, values):
        calls["n"] += 1
        if calls["n"] == row_number:
            action()
        return original(self, step, seed, values)

    monkeypatch.setattr(RunLogger, "log", log)


def _fail_at_row(monkeypatch, row_number, error):
    """metrics.jsonl's `row_number`-th append raises `error`."""

    def fail():
        raise error

    _at_row(monkeypatch, row_number, fail)


def test_a_run_killed_before_its_first_checkpoint_starts_afresh_without_duplicate_rows(
    tmp_path, monkeypatch, uninterrupted, caplog
):
    _fail_at_row(monkeypatch, 3, KeyboardInterrupt())  # Ctrl-C at step 15, before the checkpoint at 20
    with pytest.raises(KeyboardInterrupt):
        loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    assert [r["step"] for r in metrics_rows(tmp_path)] == [5, 10]
    assert _summary(tmp_path)["status"] == "failed"
    monkeypatch.undo()
    loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    assert "starting afresh" in caplog.text and "dropping the 2 rows" in caplog.text
    assert training_rows(tmp_path) == training_rows(uninterrupted)


@pytest.fixture
def preemption_handlers():
    """gan-train's SIGTERM / SIGUSR1 handlers in this process, for one test."""
    previous = {signum: signal.getsignal(signum) for signum in preemption.SIGNALS}
    preemption.install()
    yield
    for signum, handler in previous.items():
        signal.signal(signum, handler)


def test_sigusr1_in_training_checkpoints_the_step_reached_and_the_rerun_continues_there(
    tmp_path, monkeypatch, preemption_handlers, uninterrupted
):
    # SLURM's --signal=USR1@90 warning at step 15: the call under way (steps 11-20) ends, then the run stops.
    no_periodic_checkpoint = BASE + ["train.steps=40", "train.checkpoint_every=1000"]
    _at_row(monkeypatch, 3, lambda: os.kill(os.getpid(), signal.SIGUSR1))
    with pytest.raises(preemption.Preempted, match="SIGUSR1 at step 20: stopped with a checkpoint there"):
        loop.run(compose_config(no_periodic_checkpoint), tmp_path)
    summary = _summary(tmp_path)
    assert summary["status"] == "preempted" and summary["steps_completed"] == 20
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit()) == ["20"]
    monkeypatch.undo()
    assert loop.run(compose_config(no_periodic_checkpoint), tmp_path)["resumed_from_step"] == 20
    assert training_rows(tmp_path) == training_rows(uninterrupted)
    assert preemption.Preempted.exit_code == 75


def test_a_signal_outside_training_unwinds_at_once_and_inside_it_is_noted(preemption_handlers):
    with pytest.raises(SystemExit) as stopped:
        os.kill(os.getpid(), signal.SIGTERM)
        signal.sigtimedwait([], 5)  # the handler runs at the next bytecode
    assert stopped.value.code == 128 + signal.SIGTERM
    with preemption.deferred():
        os.kill(os.getpid(), signal.SIGUSR1)
        assert preemption.noted() == "SIGUSR1" and preemption.agreed(0) == "SIGUSR1"
    with preemption.deferred():
        assert preemption.agreed(1) is None  # each training loop starts with nothing noted


def test_a_diverged_run_rerun_with_a_smaller_lr_keeps_no_nan_row(tmp_path):
    diverging = ["optim=sgd", "optim.lr=1e30", "train.log_every=1"]
    with pytest.raises(loop.TrainingDiverged):
        loop.run(compose_config(BASE + diverging + ["train.steps=20"]), tmp_path)
    assert any(None in r.values() for r in metrics_rows(tmp_path))
    assert _summary(tmp_path)["status"] == "diverged"
    loop.run(compose_config(BASE + ["optim=sgd", "optim.lr=0.001", "train.steps=20"]), tmp_path)
    rows = training_rows(tmp_path)
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    assert all(None not in r.values() for r in rows) and _summary(tmp_path)["status"] == "finished"


def test_a_second_process_fails_at_once_naming_the_holder_and_changes_nothing(tmp_path, uninterrupted):
    import shutil

    run_dir = tmp_path / "run"
    shutil.copytree(uninterrupted, run_dir)
    before = _snapshot(run_dir)
    with rundir.claim(run_dir):
        result = gan_train(CLI + ["train.steps=60", f"hydra.run.dir={run_dir}"])
        in_use = pytest.raises(RunDirectoryInUse, match=f"in use by gan-train \\(pid {os.getpid()} on")
        with in_use, rundir.claim(run_dir):
            pass
    assert result.returncode == RunDirectoryInUse.exit_code, result.stderr[-2000:]
    assert f"is in use by gan-train (pid {os.getpid()}" in result.stdout + result.stderr
    assert _snapshot(run_dir) == before


def test_a_rejected_resume_leaves_the_directory_and_its_recorded_config_as_they_were(tmp_path):
    first = gan_train(CLI + ["train.steps=20", f"hydra.run.dir={tmp_path}"])
    assert first.returncode == 0, first.stderr[-2000:]
    assert "train.steps=20" in (tmp_path / ".hydra" / "overrides.yaml").read_text()
    before = _snapshot(tmp_path)
    rejected = gan_train(CLI + ["train.steps=40", "optim.lr=0.5", f"hydra.run.dir={tmp_path}"])
    assert rejected.returncode == 2
    assert "optim.lr: 0.0002 -> 0.5" in rejected.stdout + rejected.stderr
    assert _snapshot(tmp_path) == before


def test_a_full_disk_leaves_whole_rows_and_the_last_whole_summary(tmp_path, monkeypatch, uninterrupted):
    loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    finished = (tmp_path / "summary.json").read_bytes()
    real_write = os.write
    state = {"rows": 0}

    def full_disk_write(fd, data):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("metrics.jsonl"):
            state["rows"] += 1
            if state["rows"] == 2:  # the disk fills up halfway through the second row
                real_write(fd, data[: len(data) // 2])
                raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(fd, data)

    real_fsync = os.fsync

    def full_disk_fsync(fd):
        if "summary.json" in os.readlink(f"/proc/self/fd/{fd}"):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(rundir.os, "write", full_disk_write)
    monkeypatch.setattr(rundir.os, "fsync", full_disk_fsync)
    with pytest.raises(OSError, match="No space left"):
        loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    rows = metrics_rows(tmp_path)  # every line parses: no torn row
    assert [r["step"] for r in rows if "d_loss" in r] == [5, 10, 15, 20, 25]
    assert (tmp_path / "summary.json").read_bytes() == finished  # not a 0-byte file
    assert not [p for p in tmp_path.rglob("*.tmp")]
    monkeypatch.undo()  # space freed: the same command continues from the checkpoint at 20
    loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    assert training_rows(tmp_path) == training_rows(uninterrupted)
    assert _summary(tmp_path)["status"] == "finished"


def test_a_torn_last_row_is_dropped_with_a_warning_naming_the_file(tmp_path, caplog, uninterrupted):
    loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    with open(tmp_path / "metrics.jsonl", "a") as handle:
        handle.write('{"step": 25, "seed": 0, "d_lo')  # a kill in the middle of a write
    loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    assert f"{tmp_path / 'metrics.jsonl'}: dropping its torn last line" in caplog.text
    assert training_rows(tmp_path) == training_rows(uninterrupted)


def test_a_damaged_row_stops_the_resume_naming_the_file_and_line(tmp_path):
    loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines(keepends=True)
    lines[1] = "not json\n"
    (tmp_path / "metrics.jsonl").write_text("".join(lines))
    before = _snapshot(tmp_path)
    with pytest.raises(rundir.DamagedRunDirectory, match=r"metrics.jsonl, line 2, is not a JSON row"):
        loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    assert _snapshot(tmp_path) == before


def test_a_damaged_latest_checkpoint_falls_back_to_the_previous_one(tmp_path, caplog, uninterrupted):
    loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    for data in (tmp_path / "checkpoints" / "40" / "state").rglob("*"):
        if data.is_file() and data.parent.name == "d":
            data.write_bytes(b"\0" * 8)  # the array data, overwritten
    summary = loop.run(compose_config(BASE + ["train.steps=40"]), tmp_path)
    assert "cannot be restored" in caplog.text and "trying the previous one" in caplog.text
    assert summary["resumed_from_step"] == 20
    assert training_rows(tmp_path) == training_rows(uninterrupted)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert "20" in names and "40" in names and any(n.startswith("damaged-40-") for n in names)


@pytest.mark.slow  # make test's budget
def test_checkpoints_work_in_a_directory_with_brackets(tmp_path, uninterrupted):
    run_dir = tmp_path / "0_optim.betas=[0.5,0.9]"
    loop.run(compose_config(BASE + ["train.steps=20"]), run_dir)
    summary = loop.run(compose_config(BASE + ["train.steps=40"]), run_dir)
    assert summary["resumed_from_step"] == 20
    assert training_rows(run_dir) == training_rows(uninterrupted)


def test_rerunning_a_finished_directory_keeps_its_training_time(tmp_path):
    first = loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    again = loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    assert again["train_seconds"] == pytest.approx(first["train_seconds"], abs=0.05)
    assert again["final"] == first["final"] and [r["step"] for r in training_rows(tmp_path)] == [5, 10, 15, 20]


def test_a_changed_steps_per_call_is_not_resumable(tmp_path):
    loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    with pytest.raises(ConfigError, match=r"train.steps_per_call: 10 -> 5"):
        loop.run(compose_config(BASE + ["train.steps=40", "train.steps_per_call=5"]), tmp_path)


def test_a_huge_step_count_starts_at_once(tmp_path, monkeypatch):
    stops = loop.Stops(total=10**12, eval_every=500, sample_every=1000, save_every=1000)
    chunks = loop.chunk_sizes(stops, 50, start=10**11 - 20)
    assert [next(chunks) for _ in range(3)] == [20, 50, 50]
    _fail_at_row(monkeypatch, 4, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        loop.run(compose_config(BASE + ["train.steps=1000000000000"]), tmp_path)
    assert _summary(tmp_path)["steps_completed"] == 20
    assert _summary(tmp_path)["steps_requested"] == 10**12


def test_a_sweep_job_that_fails_before_training_records_it_and_fails_the_sweep(tmp_path):
    stale = tmp_path / "7_seed=3"  # an earlier sweep's job in the same directory
    stale.mkdir()
    rundir.write_summary(stale, {"status": "finished", "started_at": 1.0})
    os.utime(stale, (1.0, 1.0))
    result = gan_train(["-m", "seed=0,100000000000000000000000", *CLI, "train.steps=10", f"hydra.sweep.dir={tmp_path}"])
    assert result.returncode == 1, result.stderr[-2000:]
    output = result.stdout + result.stderr
    assert "1 of 2 jobs failed (finished: 1, invalid_config: 1)" in output
    failed = _summary(next(tmp_path.glob("1_*")))
    assert failed["status"] == "invalid_config" and "seed=100000000000000000000000" in failed["error"]


def test_an_optuna_sweep_without_an_objective_fails_at_start(tmp_path):
    result = gan_train(["-m", "hydra/sweeper=optuna", "hydra.sweeper.n_trials=2", *CLI, f"hydra.sweep.dir={tmp_path}"])
    assert result.returncode == 2
    assert "objective is null: set objective to a summary.json key" in result.stdout + result.stderr
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # no job ran


@pytest.mark.slow  # `make test`'s budget on 2 cores; `make test-all` runs it
def test_wandb_online_without_a_key_on_a_terminal_logs_offline_and_never_waits(tmp_path):
    import pty
    import threading

    primary, secondary = pty.openpty()  # stdin, stdout and stderr are a terminal: wandb would prompt
    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(HOME=str(tmp_path / "home"), NETRC=str(tmp_path / "no_netrc"))
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gan_jax.train",
            *[o for o in CLI if o != "logger=none"],
            "logger=wandb",
            "logger.mode=online",
            "train.steps=10",
            f"hydra.run.dir={tmp_path / 'run'}",
        ],
        cwd=ROOT,
        env=env,
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks: list[bytes] = []

    def read_terminal():
        try:
            while chunk := os.read(primary, 65536):
                chunks.append(chunk)
        except OSError:  # the terminal closed with the process
            pass

    reader = threading.Thread(target=read_terminal, daemon=True)
    reader.start()
    try:
        process.wait(timeout=240)
    finally:
        process.kill()
    reader.join(timeout=10)
    output = b"".join(chunks)
    assert process.returncode == 0, output[-2000:]
    assert b"no API key is set" in output and b"logging offline instead" in output
    assert _summary(tmp_path / "run")["wandb"]["mode"] == "offline"


@pytest.mark.slow
def test_wandb_with_a_bogus_key_records_the_mode_it_really_logged_in(tmp_path):
    result = gan_train(
        [
            *[o for o in CLI if o != "logger=none"],
            "logger=wandb",
            "train.steps=10",
            f"hydra.run.dir={tmp_path}",
        ],
        env_extra={"WANDB_API_KEY": "x" * 40},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert _summary(tmp_path)["wandb"]["mode"] == "offline"


def test_job_statuses_count_only_the_jobs_this_sweep_launched(tmp_path):
    from gan_jax.sweep import NO_SUMMARY, job_statuses, record_job

    for number, (name, started) in enumerate((("old", 10.0), ("new", 200.0), ("new_failed", 300.0))):
        record_job(tmp_path, number, tmp_path / name, started)
        (tmp_path / name).mkdir()
        status = "failed" if "failed" in name else "finished"
        rundir.write_summary(tmp_path / name, {"status": status, "started_at": started})
    record_job(tmp_path, 3, tmp_path / "killed", 400.0)  # launched, then killed: no summary
    record_job(tmp_path, 4, tmp_path / "busy", 500.0, status="failed", error="in use")
    (tmp_path / "stale").mkdir()  # an earlier sweep's job, not launched by this one
    rundir.write_summary(tmp_path / "stale", {"status": "finished", "started_at": 1.0})
    assert job_statuses(tmp_path, since=100.0) == {"finished": 1, "failed": 2, NO_SUMMARY: 1}
    assert job_statuses(tmp_path) == {"finished": 3, "failed": 1}


@pytest.mark.slow  # make test's budget
def test_a_sweep_rerun_into_a_used_directory_keeps_the_runs_and_counts_every_job(tmp_path):
    """Job 0 holds a finished run that a changed config would overwrite; job 1's directory
    is in use by another process. Both fail, both are counted, nothing is overwritten."""
    sweep = ["-m", *CLI, "train.steps=10", f"hydra.sweep.dir={tmp_path}", "hydra.sweep.subdir=job${hydra.job.num}"]
    first = gan_train([*sweep, "seed=0"])
    assert first.returncode == 0, first.stderr[-2000:]
    finished = (tmp_path / "job0" / "summary.json").read_bytes()
    (tmp_path / "job1").mkdir()
    with rundir.claim(tmp_path / "job1"):
        again = gan_train([*sweep, "seed=0,1", "optim.lr=0.001"])
    assert again.returncode == 1, again.stderr[-2000:]
    assert "2 of 2 jobs failed (failed: 1, invalid_config: 1)" in again.stdout + again.stderr
    assert (tmp_path / "job0" / "summary.json").read_bytes() == finished
    assert not (tmp_path / "job1" / "summary.json").exists()


@pytest.mark.slow  # `make test`'s budget on 2 cores; `make test-all` runs it
def test_extending_a_finished_run_logs_what_the_longer_run_would_have(tmp_path, uninterrupted):
    odd = ["train.log_every=6", "eval.every=9"]  # neither divides 20, where the short run ends
    loop.run(compose_config(BASE + odd + ["train.steps=20"]), tmp_path / "extended")
    loop.run(compose_config(BASE + odd + ["train.steps=40"]), tmp_path / "extended")
    loop.run(compose_config(BASE + odd + ["train.steps=40"]), tmp_path / "whole")
    assert metrics_rows(tmp_path / "extended") == metrics_rows(tmp_path / "whole")


def test_a_save_cut_short_by_a_full_disk_leaves_room_for_the_summary(tmp_path, monkeypatch):
    from gan_jax.checkpoint import Checkpoints

    def full_disk_save(self, step, state, meta):
        (self.directory / f"{step}.orbax-checkpoint-tmp" / "state").mkdir(parents=True)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Checkpoints, "save", full_disk_save)
    with pytest.raises(OSError, match="No space left"):
        loop.run(compose_config(BASE + ["train.steps=20"]), tmp_path)
    assert not list((tmp_path / "checkpoints").iterdir())
    assert _summary(tmp_path)["status"] == "failed" and "No space left" in _summary(tmp_path)["error"]


def test_orbaxs_full_disk_error_is_a_full_disk_naming_the_latest_checkpoint(tmp_path, monkeypatch, uninterrupted):
    import orbax.checkpoint as ocp

    real_save = ocp.CheckpointManager.save

    def save_on_a_full_disk(self, step, *args, **kwargs):
        if step > 10:  # as TensorStore reports it (seen on a full tmpfs): a ValueError, not an OSError
            raise ValueError(
                f'RESOURCE_EXHAUSTED: Error writing "rng/0.0" in OCDBT database at local file "{step}.orbax-'
                'checkpoint-tmp/state": Failed to write 901567 bytes to file 17: No space left on device '
                "[os_error_code='28']"
            )
        return real_save(self, step, *args, **kwargs)

    monkeypatch.setattr(ocp.CheckpointManager, "save", save_on_a_full_disk)
    with pytest.raises(
        OSError, match=r"checkpoint 20 not written, \d+ KiB free; the latest checkpoint is step 10"
    ) as error:
        loop.run(compose_config(BASE + ["train.steps=40", "train.checkpoint_every=10"]), tmp_path)
    assert error.value.errno == errno.ENOSPC  # what gan-train's handler turns into "the disk is full"
    assert _summary(tmp_path)["status"] == "failed" and "checkpoint 20 not written" in _summary(tmp_path)["error"]
    monkeypatch.undo()  # space freed: the same command continues from step 10
    loop.run(compose_config(BASE + ["train.steps=40", "train.checkpoint_every=10"]), tmp_path)
    assert training_rows(tmp_path) == training_rows(uninterrupted)


def test_gan_train_ends_a_full_disk_with_its_message_and_exit_code_1(tmp_path, caplog):
    from gan_jax import train

    full = OSError(errno.ENOSPC, "checkpoint 20 not written, 12 KiB free; there is no earlier checkpoint")
    with pytest.raises(SystemExit) as ended:
        train._exit_with(full, tmp_path)
    assert ended.value.code == 1
    (message,) = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
    assert f"{tmp_path}: the disk is full" in message and "there is no earlier checkpoint" in message
    assert "or starts afresh if there is none" in message


@pytest.mark.slow  # a whole gan-train process for one summary field
def test_wandb_disabled_is_reported_as_disabled(tmp_path):
    result = gan_train(
        [*[o for o in CLI if o != "logger=none"], "logger=wandb", "train.steps=10", f"hydra.run.dir={tmp_path}"],
        env_extra={"WANDB_MODE": "disabled"},
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert _summary(tmp_path)["wandb"]["mode"] == "disabled" and _summary(tmp_path)["wandb"]["dir"] is None


def test_a_file_system_without_locks_warns_and_runs(tmp_path, monkeypatch, caplog):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(rundir.fcntl, "flock", no_locks)
    with rundir.claim(tmp_path):
        assert (tmp_path / rundir.LOCK_FILE).exists()
    assert "cannot be locked on this file system" in caplog.text
