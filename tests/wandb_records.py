"""Reads the records of a W&B run file (`run-<id>.wandb`), to check what a run logged.

The file is a LevelDB-style log: a 7-byte header (":W&B", magic, version), then 32 KiB
blocks of chunks, each with a 7-byte header (crc32c, little-endian length, type),
holding serialised `wandb_internal_pb2.Record` messages.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

from wandb.proto import wandb_internal_pb2

BLOCK = 32 * 1024
HEADER = 7
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def _payloads(data: bytes):
    if len(data) < HEADER:  # W&B's service has not yet written the file's header
        return
    assert data[:4] == b":W&B", "not a W&B run file"
    pos, pending = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # block trailer: padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        if (kind == 0 and length == 0) or pos + HEADER + length > len(data):  # the end, or a chunk still being written
            break
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == FULL:
            yield chunk
        elif kind == FIRST:
            pending = chunk
        elif kind == MIDDLE:
            pending += chunk
        elif kind == LAST:
            yield pending + chunk


def read_finished_run(path: Path, timeout_s: float = 60.0) -> dict:
    """`read_run` once the file holds the run's exit record. In the process that logged it, W&B's
    service may still be writing the file after `run.finish()` returns (seen under load)."""
    deadline = time.monotonic() + timeout_s
    while True:
        record = read_run(path)
        if record["exited"] or time.monotonic() > deadline:
            return record
        time.sleep(0.2)


def read_run(path: Path) -> dict:
    """{'run': Record.run, 'config': {key: value}, 'history': [{key: value}], 'exited': bool}"""
    out = {"run": None, "config": {}, "history": [], "exited": False}
    for payload in _payloads(Path(path).read_bytes()):
        record = wandb_internal_pb2.Record()
        record.ParseFromString(payload)
        kind = record.WhichOneof("record_type")
        if kind == "run":
            out["run"] = record.run
            out["config"].update({i.key: json.loads(i.value_json) for i in record.run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "exit":
            out["exited"] = True
        elif kind == "history":
            out["history"].append(
                {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in record.history.item}
            )
    return out
