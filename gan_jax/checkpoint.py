"""Orbax checkpoints of the whole training state, in `<run dir>/checkpoints/<step>/`.

A checkpoint holds both players' parameters, model state (BatchNorm's statistics,
spectral norm's vectors) and optimiser states, G's EMA, the step and the run's key, plus
a JSON item with the resolved config, the W&B run id, the Figure 1 panels drawn so far
and the data position. Random draws and image batches are keyed by step, so the step is
the data position: a resumed run continues bit for bit.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, cast

import jax
import orbax.checkpoint as ocp
from omegaconf import DictConfig, OmegaConf

from gan_jax.config import flatten

log = logging.getLogger(__name__)

_GLOB_CHARACTERS = set("[]*?")


class Checkpoints:
    def __init__(self, run_dir: Path, keep: int, subdir: str = "checkpoints"):
        self.directory = (run_dir / subdir).resolve()
        self.directory.mkdir(parents=True, exist_ok=True)
        self._keep = keep
        self._alias_fd: int | None = None
        self.manager = self._open_manager()

    def _open_manager(self) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(max_to_keep=self._keep, create=True, enable_async_checkpointing=False)
        return ocp.CheckpointManager(self._orbax_path(), options=options)

    def _orbax_path(self) -> Path:
        """Orbax reads a path with [ ] * ? as a glob pattern (Hydra's sweep directories have
        brackets for list-valued overrides) and then cannot restore what it saved; on Linux
        the directory is reached through its open descriptor instead, a path without them."""
        if not _GLOB_CHARACTERS & set(str(self.directory)):
            return self.directory
        if self._alias_fd is None:
            if not Path("/proc/self/fd").is_dir():
                from gan_jax.errors import ConfigError

                raise ConfigError(
                    f"{self.directory}: checkpoints cannot be kept under a path with any "
                    "of [ ] * ? on this system; choose another run directory"
                )
            self._alias_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        return Path(f"/proc/self/fd/{self._alias_fd}")

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def save(self, step: int, state: Any, meta: dict) -> None:
        """Every process of a run calls it; host arrays make the checkpoint independent of
        the devices and processes that wrote it."""
        host_state = jax.device_get(state)
        self.manager.save(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta)),
            force=True,
        )

    def restore(self, step: int, like: Any) -> tuple[Any, dict]:
        """Restores into the structure (and shapes) of `like`, e.g. a freshly initialised state."""
        abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        restored = self.manager.restore(
            step,
            args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract), meta=ocp.args.JsonRestore()),
        )
        return restored.state, restored.meta

    def meta(self, step: int) -> dict:
        """The JSON item saved with checkpoint `step` (config, W&B id, ...), without the state."""
        return self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta

    def saved_config(self) -> dict | None:
        """The config recorded with the newest checkpoint whose metadata can be read."""
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                return self.meta(step)["config"]
            except Exception:  # noqa: BLE001 - a damaged checkpoint; restore_latest_intact sets it aside
                continue
        return None

    def restore_latest_intact(self, like: Any) -> tuple[int, Any, dict] | None:
        """(step, state, meta) of the newest checkpoint that restores; a damaged newer one is
        moved to checkpoints/damaged-<step>-<time>/ (kept, not deleted) with a warning."""
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                state, meta = self.restore(step, like)
                return step, state, meta
            except Exception as error:  # noqa: BLE001 - whatever broke, this checkpoint is unusable
                aside = self.directory / f"damaged-{step}-{time.strftime('%Y%m%d-%H%M%S')}"
                log.warning(
                    "checkpoint %s cannot be restored (%s: %s); moved to %s, trying the previous one",
                    self.directory / str(step),
                    type(error).__name__,
                    str(error)[:200],
                    aside,
                )
                if jax.process_index() == 0:  # the run directory's writer
                    (self.directory / str(step)).rename(aside)
                self.manager.close()
                self.manager = self._open_manager()
        return None

    def remove_unfinished(self) -> None:
        """Deletes a save cut short (Orbax's temporary directory): on a full disk it holds the
        space the run's summary needs, and the next start would discard it anyway."""
        for unfinished in self.directory.glob("*.orbax-checkpoint-tmp*"):
            shutil.rmtree(unfinished, ignore_errors=True)

    def close(self) -> None:
        self.manager.close()
        if self._alias_fd is not None:
            os.close(self._alias_fd)
            self._alias_fd = None


class BestCheckpoint:
    """train.keep_best: the state at the evaluation where `key` ("eval.fid") was best so far,
    in <run dir>/best/<step>/ (one kept), beside the latest ones in checkpoints/. Its
    metadata holds the key, value and step, so a resumed run keeps comparing with it."""

    def __init__(self, run_dir: Path, key: str, directions: dict[str, str]):
        self.key = key
        self.lower_is_better = directions[key.removeprefix("eval.")] == "min"
        self.checkpoints = Checkpoints(run_dir, keep=1, subdir="best")
        self.value: float | None = None
        self.step: int | None = None
        latest = self.checkpoints.latest_step()
        if latest is not None:
            try:
                saved = self.checkpoints.meta(latest)["best"]
                self.value, self.step = saved["value"], saved["step"]
            except Exception as error:  # noqa: BLE001 - unreadable: the next evaluation replaces it
                log.warning(
                    "%s cannot be read (%s); the next evaluation replaces it", self.checkpoints.directory, error
                )

    def improves(self, value: float | None) -> bool:
        if value is None or value != value:  # None or NaN never wins
            return False
        if self.value is None:
            return True
        return value < self.value if self.lower_is_better else value > self.value

    def consider(self, step: int, value: float | None, state: Any, meta: dict) -> bool:
        """Saves `state` when `value` beats the best so far; True when it did."""
        if not self.improves(value):
            return False
        best = {"key": self.key, "value": value, "step": step}
        self.checkpoints.save(step, state, {**meta, "best": best})
        self.value, self.step = value, step
        log.info("best %s so far: %.6g at step %d (saved in %s)", self.key, value, step, self.checkpoints.directory)
        return True

    def summary(self) -> dict[str, Any]:
        return {"best": {"key": self.key, "value": self.value, "step": self.step}}

    def close(self) -> None:
        self.checkpoints.close()


# Keys that may change when a run directory is continued.
RESUMABLE_CHANGES = (
    "train.steps",
    "train.progress_bar",
    "train.checkpoint_every",
    "train.keep_checkpoints",
    "train.sample_every",
    "train.keep_best",
    # The numbers do not depend on the devices or processes a run is spread over.
    "train.num_devices",
    "train.parallel",
    "dist",
    "dataset.data_dir",
    "logger",
)


def differences(saved: dict, cfg: DictConfig) -> list[str]:
    """'key: saved -> now' for every config value that differs, bar RESUMABLE_CHANGES and
    keys added to gan_jax since the checkpoint was saved, now at their off value (null, [],
    false: a run saved before `augment.policy` existed resumes with no augmentation)."""
    now = flatten(cast(dict, OmegaConf.to_container(cfg, resolve=True)))
    before = flatten(saved)
    keys = sorted(set(now) | set(before))
    changed = [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}"
        for k in keys
        if before.get(k) != now.get(k) and not _resumable(k) and not (k not in before and _is_off(now[k]))
    ]
    if now.get("optim.lr_decay") is not None and before.get("train.steps") != now.get("train.steps"):
        # The decay ends at train.steps: a longer run would jump back to a higher lr.
        changed.append(
            f"train.steps: {before.get('train.steps')!r} -> {now.get('train.steps')!r} "
            f"(optim.lr_decay={now['optim.lr_decay']} ends at train.steps)"
        )
    return changed


def _is_off(value: Any) -> bool:
    return value is None or value is False or value == []


def _resumable(key: str) -> bool:
    return any(key == prefix or key.startswith(prefix + ".") for prefix in RESUMABLE_CHANGES)
