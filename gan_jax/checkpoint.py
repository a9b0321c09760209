"""Orbax checkpoints of the whole training state, in `<run dir>/checkpoints/<step>/`.

A checkpoint holds both players' parameters, model state (BatchNorm's statistics,
spectral norm's vectors) and optimiser states, G's EMA, the step and the run's key, plus
a JSON item with the resolved config, the W&B run id, the Figure 1 panels drawn so far
and the data position. Random draws and image batches are keyed by step, so the step is
the data position: a resumed run continues bit for bit.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional

import jax
import orbax.checkpoint as ocp
from omegaconf import DictConfig, OmegaConf


class Checkpoints:
    def __init__(self, run_dir: Path, keep: int):
        options = ocp.CheckpointManagerOptions(max_to_keep=keep, create=True,
                                               enable_async_checkpointing=False)
        self.manager = ocp.CheckpointManager((run_dir / "checkpoints").resolve(), options=options)

    def latest_step(self) -> Optional[int]:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        self.manager.save(step, args=ocp.args.Composite(
            state=ocp.args.StandardSave(state), meta=ocp.args.JsonSave(meta)), force=True)

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """Restores into the structure (and shapes) of `like`, e.g. a freshly initialised state."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()))
        return restored.state, restored.meta

    def close(self) -> None:
        self.manager.close()


# Keys that may change when a run directory is continued.
RESUMABLE_CHANGES = ("train.steps", "train.progress_bar", "train.checkpoint_every",
                     "train.keep_checkpoints", "train.sample_every", "dataset.data_dir", "logger")


def differences(saved: dict, cfg: DictConfig) -> list[str]:
    """'key: saved -> now' for every config value that differs, bar RESUMABLE_CHANGES."""
    now = _flatten(OmegaConf.to_container(cfg, resolve=True))
    before = _flatten(saved)
    keys = sorted(set(now) | set(before))
    return [f"{k}: {before.get(k)!r} -> {now.get(k)!r}" for k in keys
            if before.get(k) != now.get(k) and not k.startswith(RESUMABLE_CHANGES)]


def _flatten(tree: dict, prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def truncate_metrics(path: Path, last_step: int) -> list[dict]:
    """Keeps metrics.jsonl's rows up to `last_step` (a resumed run logs the rest again)."""
    if not path.exists():
        return []
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    kept = [r for r in rows if r["step"] <= last_step]
    temporary = path.with_suffix(".jsonl.tmp")
    temporary.write_text("".join(json.dumps(r) + "\n" for r in kept))
    temporary.replace(path)
    return kept
