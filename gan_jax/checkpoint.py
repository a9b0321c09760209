"""Orbax checkpoints of the whole training state, in `<run dir>/checkpoints/<step>/`.

A checkpoint holds both players' parameters, model state (BatchNorm's statistics,
spectral norm's vectors) and optimiser states, G's EMA, the step and the run's key, plus
a JSON item with the resolved config, the W&B run id, the Figure 1 panels drawn so far
and the data position. Random draws and image batches are keyed by step, so the step is
the data position: a resumed run continues bit for bit.

Every reader (training's resume, gan-eval, the tools after them) goes through
`Checkpoints.read`: a checkpoint that cannot be read whole raises `DamagedCheckpoint`
naming its step and what is wrong, and `Checkpoints.newest_intact` finds the newest one
that reads. Only training sets a damaged checkpoint aside (`restore_latest_intact`).
A leaf of the state that a checkpoint lacks (a part's state added since it was saved)
starts at its initial value with a warning: an older checkpoint is not damaged.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import jax
import orbax.checkpoint as ocp
import tensorstore as ts
from omegaconf import DictConfig, OmegaConf

from gan_jax.config import ADDED_KEY_DEFAULTS, flatten, upgrade_saved
from gan_jax.errors import GanJaxError

log = logging.getLogger(__name__)

_GLOB_CHARACTERS = set("[]*?")
_LISTED_PATHS = 8  # at most this many leaf paths in one message, then a count
_READS_AT_ONCE = 64  # of a checkpoint's stored values, when checking them


class DamagedCheckpoint(GanJaxError):
    """A checkpoint that cannot be read whole: `step` says which, `reason` what is wrong with it."""

    def __init__(self, directory: Path, step: int, reason: str):
        super().__init__(f"checkpoint {directory / str(step)} cannot be read: {reason}")
        self.directory, self.step, self.reason = directory, step, reason


@dataclasses.dataclass(frozen=True)
class Restored:
    """A checkpoint read whole: its step, the state (in the structure asked for) and its JSON item."""

    step: int
    state: Any
    meta: dict


LeafPath = tuple[str, ...]


class Checkpoints:
    def __init__(self, run_dir: Path, keep: int, subdir: str = "checkpoints", read_only: bool = False):
        """`read_only` (the evaluation tools): nothing is created, moved or deleted."""
        self.directory = (run_dir / subdir).resolve()
        if not read_only:
            self.directory.mkdir(parents=True, exist_ok=True)
        self._keep = keep
        self._read_only = read_only
        self._alias_fd: int | None = None
        self.manager = self._open_manager()

    def _open_manager(self) -> ocp.CheckpointManager:
        options = ocp.CheckpointManagerOptions(
            max_to_keep=self._keep,
            create=not self._read_only,
            read_only=self._read_only,
            enable_async_checkpointing=False,
        )
        # Handlers named up front, so the state's saved structure can be read before restoring it.
        handlers = {"state": ocp.StandardCheckpointHandler(), "meta": ocp.JsonCheckpointHandler()}
        return ocp.CheckpointManager(self._orbax_path(), options=options, item_handlers=handlers)

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
        try:
            self.manager.save(
                step,
                args=ocp.args.Composite(state=ocp.args.StandardSave(host_state), meta=ocp.args.JsonSave(meta)),
                force=True,
            )
        except Exception as error:
            if _is_disk_full(error):  # TensorStore says so in a ValueError; the run's handler expects an OSError
                kept = [s for s in self.steps() if s != step]
                latest = f"the latest checkpoint is step {kept[-1]}" if kept else "there is no earlier checkpoint"
                free = shutil.disk_usage(self.directory).free // 2**10
                raise OSError(errno.ENOSPC, f"checkpoint {step} not written, {free} KiB free; {latest}") from error
            raise

    def steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def meta(self, step: int) -> dict:
        """The JSON item saved with checkpoint `step` (config, W&B id, ...), without the state."""
        if not (self._step_dir(step) / "meta" / "metadata").is_file():
            raise self._damaged(step, "meta/metadata is missing")
        try:
            meta = self.manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore())).meta
        except Exception as error:  # noqa: BLE001 - Orbax's failures are varied; each becomes a one-line reason
            raise self._damaged(step, f"meta/metadata cannot be read ({self._one_line(error, step)})") from error
        if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict):
            raise self._damaged(step, "meta/metadata holds no config")
        return {**meta, "config": upgrade_saved(meta["config"])}  # an older gan_jax's layout, in today's

    def read(self, step: int, like: Any) -> tuple[Any, dict]:
        """(state, meta) of checkpoint `step`, the state in the structure, shapes and placement of `like`
        (e.g. a freshly initialised state). A leaf that `like` has and the checkpoint lacks keeps
        `like`'s value, with a warning naming it; anything else wrong raises DamagedCheckpoint."""
        meta = self.meta(step)
        return self._read_state(step, like), meta

    def newest_intact(
        self, like_for: Callable[[dict], Any], steps: list[int] | None = None
    ) -> tuple[Restored | None, list[DamagedCheckpoint]]:
        """The newest checkpoint of `steps` (default: all) that reads whole into `like_for(its meta)`
        (as `read`'s `like`), and the newer ones that did not, newest first. Nothing is moved or deleted."""
        damaged: list[DamagedCheckpoint] = []
        for step in sorted(self.steps() if steps is None else steps, reverse=True):
            try:
                meta = self.meta(step)
                return Restored(step, self._read_state(step, like_for(meta)), meta), damaged
            except DamagedCheckpoint as error:
                damaged.append(error)
        return None, damaged

    def intact_steps(self, like_for: Callable[[dict], Any]) -> list[int]:
        """The steps whose checkpoints read whole. Each is read in full: for messages, not for every start."""
        return [step for step in self.steps() if self.newest_intact(like_for, [step])[0] is not None]

    def saved_config(self) -> dict | None:
        """The config recorded with the newest checkpoint whose metadata can be read."""
        for step in reversed(self.steps()):
            try:
                return self.meta(step)["config"]
            except DamagedCheckpoint:  # restore_latest_intact sets it aside
                continue
        return None

    def restore_latest_intact(self, like: Any) -> tuple[int, Any, dict] | None:
        """Training's resume: (step, state, meta) of the newest checkpoint that reads whole; each damaged
        newer one is moved to checkpoints/damaged-<step>-<time>/ (kept, not deleted) with a warning."""
        restored, damaged = self.newest_intact(lambda meta: like)
        for error in damaged:
            aside = self.directory / f"damaged-{error.step}-{time.strftime('%Y%m%d-%H%M%S')}"
            log.warning(
                "checkpoint %s cannot be restored (%s); moved to %s, trying the previous one",
                self.directory / str(error.step),
                error.reason,
                aside,
            )
            if jax.process_index() == 0:  # the run directory's writer
                (self.directory / str(error.step)).rename(aside)
        if damaged:  # Orbax keeps its own list of the steps
            self.manager.close()
            self.manager = self._open_manager()
        return None if restored is None else (restored.step, restored.state, restored.meta)

    def _read_state(self, step: int, like: Any) -> Any:
        self._check_stored_bytes(step)
        saved_tree = self._saved_structure(step)
        saved, wanted = _leaves_by_path(saved_tree), _leaves_by_path(like)
        self._check_shapes(step, saved, wanted)
        if wanted and not set(wanted) & set(saved):
            raise self._damaged(step, "state/ holds none of the arrays of this state")
        abstract = {path: ocp.utils.to_shape_dtype_struct(leaf) for path, leaf in wanted.items() if path in saved}
        # The saved structure, with `like`'s shapes and placement where it has the leaf; a leaf it lacks
        # is read as saved (a NumPy array) and dropped: Orbax 0.12's StandardRestore takes no placeholder.
        target = jax.tree_util.tree_map_with_path(
            lambda path, saved_leaf: abstract.get(_path_of(path), _as_saved(saved_leaf)), saved_tree
        )
        try:
            restored = self.manager.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(target)))
        except Exception as error:  # noqa: BLE001 - see meta()
            raise self._damaged(step, f"the arrays in state/ cannot be read ({self._one_line(error, step)})") from error
        found = _leaves_by_path(restored.state)
        if missing := [path for path in wanted if path not in saved]:
            log.warning(
                "checkpoint %s has no %s (saved before %s existed); starting %s at %s initial value%s",
                self.directory / str(step),
                _listed(missing),
                *(("it", "it", "its", "") if len(missing) == 1 else ("they", "them", "their", "s")),
            )
        if unused := [path for path in saved if path not in wanted]:
            log.warning(
                "checkpoint %s holds %s, not part of this state; not restored",
                self.directory / str(step),
                _listed(unused),
            )
        return jax.tree.unflatten(jax.tree.structure(like), [found.get(path, leaf) for path, leaf in wanted.items()])

    def _check_stored_bytes(self, step: int) -> None:
        """Reads every stored value of the state once, from this thread, so that a missing or truncated
        file is named here: inside Orbax's parallel restore the first failure leaves reads pending, and
        each prints an 'Event loop is closed' traceback when it ends after Orbax has given up."""
        state_dir = self._step_dir(step) / "state"
        for required in ("_METADATA", "manifest.ocdbt"):
            if not (state_dir / required).is_file():
                raise self._damaged(step, f"state/{required} is missing")
        try:
            store = ts.KvStore.open({"driver": "ocdbt", "base": f"file://{state_dir}"}).result()
            keys = store.list().result()
        except Exception as error:  # noqa: BLE001 - see meta()
            raise self._damaged(step, f"the index of state/ cannot be read ({self._one_line(error, step)})") from error
        for start in range(0, len(keys), _READS_AT_ONCE):
            for key, read in [(key, store.read(key)) for key in keys[start : start + _READS_AT_ONCE]]:
                array = key.decode().split("/")[0].replace(".", "/")  # Orbax's name of the array, by path
                try:
                    value = read.result()
                except Exception as error:  # noqa: BLE001 - see meta()
                    reason = f"the data of {array} cannot be read ({self._one_line(error, step)})"
                    raise self._damaged(step, reason) from error
                # A value whose file is gone reads as empty, not as an error; no stored value is empty.
                if value.state != "value" or not value.value:
                    raise self._damaged(step, f"the data of {array} is missing (a file under state/ is gone)")

    def _saved_structure(self, step: int) -> Any:
        """The state's tree as saved (nested dicts and lists of Orbax's array metadata)."""
        try:
            metadata = self.manager.item_metadata(step).state
        except Exception as error:  # noqa: BLE001 - see meta()
            raise self._damaged(step, f"state/_METADATA cannot be read ({self._one_line(error, step)})") from error
        if metadata is None:
            raise self._damaged(step, "state/_METADATA cannot be read")
        return metadata.tree

    def _check_shapes(self, step: int, saved: dict[LeafPath, Any], wanted: dict[LeafPath, Any]) -> None:
        shapes = {path: (_shape(saved[path]), _shape(leaf)) for path, leaf in wanted.items() if path in saved}
        wrong = [
            f"{_name(path)} is {saved_shape} in the checkpoint, {wanted_shape} in this config"
            for path, (saved_shape, wanted_shape) in shapes.items()
            if None not in (saved_shape, wanted_shape) and saved_shape != wanted_shape
        ]
        if wrong:
            extra = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
            raise self._damaged(step, f"{'; '.join(wrong[:3])}{extra}")

    def _damaged(self, step: int, reason: str) -> DamagedCheckpoint:
        return DamagedCheckpoint(self.directory, step, reason)

    def _step_dir(self, step: int) -> Path:
        return self._orbax_path() / str(step)

    def _one_line(self, error: BaseException, step: int) -> str:
        """An Orbax or TensorStore error in one short line, its paths from the checkpoint's directory."""
        if isinstance(error, json.JSONDecodeError):
            return f"not valid JSON: {error}"
        text = str(error).split("\n")[0].split(" [tensorstore_spec")[0].split(". See full TensorStore details")[0]
        for base in (self._step_dir(step), self.directory / str(step)):
            text = text.replace(f"{base}/", "")
        text = text.replace('Error opening "cast" driver: ', "").replace('Error opening "zarr" driver: ', "")
        text = f"{type(error).__name__}: {text}" if text else type(error).__name__
        return text if len(text) <= 300 else text[:297] + "..."

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


def _path_of(keys: tuple) -> LeafPath:
    """A leaf's path by names, the same for a dataclass field, a dict key and Orbax's saved dicts."""
    names = []
    for key in keys:
        for attribute in ("key", "name", "idx"):  # DictKey / FlattenedIndexKey, GetAttrKey, SequenceKey
            if hasattr(key, attribute):
                names.append(str(getattr(key, attribute)))
                break
        else:
            raise TypeError(f"unexpected pytree key {key!r}")
    return tuple(names)


def _leaves_by_path(tree: Any) -> dict[LeafPath, Any]:
    return {_path_of(path): leaf for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def _name(path: LeafPath) -> str:
    return "/".join(path)


def _listed(paths: list[LeafPath]) -> str:
    names = [_name(p) for p in paths[:_LISTED_PATHS]]
    return ", ".join(names) + (f" (and {len(paths) - _LISTED_PATHS} more)" if len(paths) > _LISTED_PATHS else "")


def _as_saved(metadata: Any) -> Any:
    if hasattr(metadata, "shape") and hasattr(metadata, "dtype"):
        return jax.ShapeDtypeStruct(metadata.shape, metadata.dtype)
    return metadata


def _shape(leaf: Any) -> tuple[int, ...] | None:
    shape = getattr(leaf, "shape", None)
    return None if shape is None else tuple(shape)


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
    "dataset.workers",  # how many processes read the batches, never which batches
    "dataset.cache_dir",  # where a folder's prepared copy lives
    "logger",
    "model.grouped_conv",  # how XLA runs R3GAN's grouped convs: the same function
)


def differences(saved: dict, cfg: DictConfig) -> list[str]:
    """'key: saved -> now' for every config value that differs, bar RESUMABLE_CHANGES and
    keys added to gan_jax since the checkpoint was saved, now at their off value (null, [],
    false: a run saved before `augment.policy` existed resumes with no augmentation)."""
    as_saved = flatten(saved)
    saved = upgrade_saved(saved)  # an older gan_jax's layout, in today's
    now = flatten(cast(dict, OmegaConf.to_container(cfg, resolve=True)))
    before = flatten(saved)
    keys = sorted(set(now) | set(before))
    changed = [
        f"{k}: {before.get(k)!r} -> {now.get(k)!r}" + _predates(k, as_saved, before)
        for k in keys
        if before.get(k) != now.get(k) and not _resumable(k) and not (k not in before and _as_before(k, now[k]))
    ]
    if now.get("optim.lr_decay") is not None and before.get("train.steps") != now.get("train.steps"):
        # The decay ends at train.steps: a longer run would jump back to a higher lr.
        changed.append(
            f"train.steps: {before.get('train.steps')!r} -> {now.get('train.steps')!r} "
            f"(optim.lr_decay={now['optim.lr_decay']} ends at train.steps)"
        )
    return changed


def _predates(key: str, as_saved: dict, before: dict) -> str:
    """A hint for a key the run was saved without: the value that resumes it as it ran."""
    if key in as_saved or key not in ADDED_KEY_DEFAULTS:
        return ""
    value = OmegaConf.to_yaml({"v": before.get(key)}).strip().removeprefix("v: ")
    return f" (the run predates {key}; add {key}={value} to resume it as it ran)"


def _as_before(key: str, value: Any) -> bool:
    """A key the saved run lacks, at a value that behaves as before it existed."""
    return _is_off(value) or (key in ADDED_KEY_DEFAULTS and ADDED_KEY_DEFAULTS[key] == value)


def _is_off(value: Any) -> bool:
    return value is None or value is False or value == []


def _resumable(key: str) -> bool:
    return any(key == prefix or key.startswith(prefix + ".") for prefix in RESUMABLE_CHANGES)


def _is_disk_full(error: BaseException) -> bool:
    """An error (or its cause) that says the disk or quota is full."""
    chain: BaseException | None = error
    while chain is not None:
        if isinstance(chain, OSError) and chain.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(chain)  # TensorStore's RESOURCE_EXHAUSTED names the OS error; other exhaustion is not a full disk
        if "No space left on device" in text or "Disk quota exceeded" in text:
            return True
        chain = chain.__cause__ or chain.__context__
    return False
