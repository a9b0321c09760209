"""Runs one gan-train command as several processes on this machine, joined by jax.distributed.

    python -m gan_jax.launch --processes 2 --devices-per-process 2 -- gan-train dataset=ring_2d

Each process gets `dist.coordinator_address=127.0.0.1:<free port>`, `dist.num_processes`
and its `dist.process_id`, and all share one run directory (a `hydra.run.dir` is chosen
when the command gives none). `--devices-per-process` forces that many CPU devices per
process (XLA_FLAGS), the way multi-host code is tried without a cluster. Output lines are
prefixed with the process number. When one process fails, the others are stopped, and
the launcher exits with the first failure's code (the cause's: not that of a process that only
heard of another's failure, exit 5).
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence

from gan_jax.errors import OTHER_PROCESS_FAILED

STOP_GRACE_SECONDS = 10


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def process_commands(command: Sequence[str], processes: int, port: int) -> list[list[str]]:
    """`command` once per process, with its dist.* overrides and a shared run directory."""
    program, arguments = list(command[:1]), list(command[1:])
    if program == ["gan-train"]:  # the console script, run by this interpreter
        program = [sys.executable, "-m", "gan_jax.train"]
    command = [*program, *arguments]
    shared = [f"dist.coordinator_address=127.0.0.1:{port}", f"dist.num_processes={processes}"]
    sweeping = any(arg in ("-m", "--multirun") for arg in arguments)
    directory_key = "hydra.sweep.dir" if sweeping else "hydra.run.dir"
    if not any(arg.startswith(directory_key + "=") for arg in command):
        kind = "sweeps" if sweeping else "runs"
        shared.append(f"{directory_key}=outputs/{kind}/{time.strftime('%Y-%m-%d_%H-%M-%S')}")
    return [[*command, *shared, f"dist.process_id={index}"] for index in range(processes)]


def _environment(devices_per_process: int | None) -> dict[str, str]:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if devices_per_process is not None:
        flags = [f for f in env.get("XLA_FLAGS", "").split() if "xla_force_host_platform_device_count" not in f]
        env["XLA_FLAGS"] = " ".join([*flags, f"--xla_force_host_platform_device_count={devices_per_process}"])
    return env


def _relay(index: int, stream, lock: threading.Lock) -> None:
    for line in stream:
        with lock:
            sys.stdout.write(f"[process {index}] {line}")
            sys.stdout.flush()


def _settled(children: list[subprocess.Popen]) -> list[int | None]:
    """The children's exit codes once the others have had STOP_GRACE_SECONDS to end on their own
    (a process that failed at start tells the others, which then exit too)."""
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    while time.monotonic() < deadline and any(c.poll() is None for c in children):
        time.sleep(0.1)
    return [c.poll() for c in children]


def _cause(codes: list[int | None]) -> int:
    """The first failure's code that is not a process reporting another's failure; else the first."""
    failed = [code for code in codes if code not in (None, 0)]
    own = [code for code in failed if code != OTHER_PROCESS_FAILED]
    return (own or failed or [0])[0]


def _stop(children: list[subprocess.Popen]) -> None:
    for child in children:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + STOP_GRACE_SECONDS
    for child in children:
        try:
            child.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def launch(command: Sequence[str], processes: int, devices_per_process: int | None = None) -> int:
    """Runs the processes to the end; the first non-zero exit code, else 0."""
    commands = process_commands(command, processes, free_port())
    print("launching:", shlex.join(commands[0][:-1]), "dist.process_id=0..", processes - 1, flush=True)
    env = _environment(devices_per_process)
    lock = threading.Lock()
    children = [
        subprocess.Popen(c, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for c in commands
    ]
    relays = [threading.Thread(target=_relay, args=(i, c.stdout, lock), daemon=True) for i, c in enumerate(children)]
    for relay in relays:
        relay.start()
    failure = 0
    try:
        while None in (codes := [child.poll() for child in children]):  # polls every child
            if any(code not in (None, 0) for code in codes):
                failure = _cause(_settled(children))
                _stop(children)
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        _stop(children)
        failure = 130
    for relay in relays:
        relay.join(timeout=5)
    code = failure or _cause([c.returncode for c in children])
    return code if code >= 0 else 128 - code  # killed by a signal: the shell's convention


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m gan_jax.launch",
        description="Run one gan-train command as several processes on this machine (jax.distributed).",
    )
    parser.add_argument("--processes", type=int, required=True, help="number of processes (>= 1)")
    parser.add_argument(
        "--devices-per-process", type=int, default=None, help="force this many CPU devices in each process"
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- gan-train OVERRIDES...")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if args.processes < 1:
        parser.error(f"--processes={args.processes}: valid values are integers >= 1")
    if args.devices_per_process is not None and args.devices_per_process < 1:
        parser.error(f"--devices-per-process={args.devices_per_process}: valid values are integers >= 1")
    if not command:
        parser.error("give the command after --, e.g. -- gan-train dataset=ring_2d")
    return launch(command, args.processes, args.devices_per_process)


if __name__ == "__main__":
    sys.exit(main())
