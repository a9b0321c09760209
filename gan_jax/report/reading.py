"""Reading a run directory (RunData) and a sweep's members; never raises: what cannot be read becomes a note."""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gan_jax import rundir

REPORT_FILE = "report.html"
SAMPLES_DIR = "samples"  # the loop's samples/step_<step>.png
EVAL_FILE = "eval.json"  # gan-eval's (gan_jax/score.py)
NOT_SCORES = ("seed", "member", "diverged_step")  # the numbers of its replicas that say whose they are
MAX_GRIDS = 60  # sample grids on a page, evenly spaced over training (the first and last kept)


@dataclass(frozen=True)
class RunData:
    """What a run directory holds, read once; the page is a pure function of it."""

    run_dir: Path
    summary: dict[str, Any] | None
    rows: list[dict[str, Any]]
    config_yaml: str | None
    overrides: list[str] | None
    evaluations: dict[str, Any]  # eval.json: entry key -> entry
    grids: list[tuple[int, bytes]]  # (step, PNG), in step order
    grids_total: int  # before thinning to MAX_GRIDS
    figures: list[tuple[str, bytes]]  # the run directory's *.png: (name, PNG)
    in_sweep: bool  # the parent directory is a sweep (a link up to its page)
    notes: list[str] = field(default_factory=list)


def is_run_dir(path: Path) -> bool:
    return (path / rundir.METRICS_FILE).is_file() or (path / rundir.SUMMARY_FILE).is_file()


def sweep_members(path: Path) -> list[Path]:
    """The run directories one level below `path` (a Hydra multirun's jobs), by name."""
    try:
        children = sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith("."))
    except OSError:
        return []
    return [p for p in children if is_run_dir(p)]


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def read_rows(run_dir: Path, notes: list[str]) -> list[dict[str, Any]]:
    try:
        rows = rundir.MetricsFile(run_dir).read(warn=False)  # a torn last line (a row being written) is dropped
    except rundir.DamagedRunDirectory as error:
        notes.append(str(error))
        return []
    except (OSError, ValueError) as error:
        notes.append(f"{rundir.METRICS_FILE}: {error}")
        return []
    return [r for r in rows if isinstance(r, dict) and isinstance(r.get("step"), (int, float))]


def read_overrides(run_dir: Path) -> list[str] | None:
    text = _read_text(run_dir / ".hydra" / "overrides.yaml")
    try:
        loaded = yaml.safe_load(text) if text is not None else None
    except yaml.YAMLError:
        return None
    return [str(o) for o in loaded] if isinstance(loaded, list) else None


def _read_evaluations(run_dir: Path, notes: list[str]) -> dict[str, Any]:
    text = _read_text(run_dir / EVAL_FILE)
    if text is None:
        return {}
    try:
        loaded = json.loads(text)
    except ValueError:
        notes.append(f"{EVAL_FILE}: not JSON; its entries are left out")
        return {}
    return {str(k): v for k, v in loaded.items() if isinstance(v, dict)} if isinstance(loaded, dict) else {}


GRID_NAME = re.compile(r"step_(\d+)\.png")


def grid_files(run_dir: Path) -> list[tuple[int, Path]]:
    """samples/step_<step>.png, in step order."""
    try:
        paths = list((run_dir / SAMPLES_DIR).glob("step_*.png"))
    except OSError:
        return []
    found = [(int(m.group(1)), p) for p in paths if (m := GRID_NAME.fullmatch(p.name))]
    return sorted(found)


def thin(items: Sequence[Any], limit: int) -> list[Any]:
    """At most `limit` of `items`, evenly spaced, the first and the last kept."""
    if len(items) <= limit:
        return list(items)
    if limit <= 1:
        return list(items[-1:])
    picks = sorted({round(i * (len(items) - 1) / (limit - 1)) for i in range(limit)})
    return [items[i] for i in picks]


def _read_images(paths: Iterable[tuple[Any, Path]]) -> list[tuple[Any, bytes]]:
    images = []
    for key, path in paths:
        try:
            images.append((key, path.read_bytes()))
        except OSError:
            continue  # gone since it was listed
    return images


def read_run(run_dir: Path) -> RunData:
    """Everything the run page shows; missing or unreadable parts become notes."""
    notes: list[str] = []
    read_back: Any = rundir.read_summary(run_dir)  # JSON: a list would pass its type
    written = read_back if isinstance(read_back, dict) else None
    if written is None and (run_dir / rundir.SUMMARY_FILE).exists():
        notes.append(f"{rundir.SUMMARY_FILE}: cannot be read")
    grids = grid_files(run_dir)
    try:
        figure_paths = sorted(p for p in run_dir.glob("*.png") if p.is_file())
    except OSError:
        figure_paths = []
    parent = run_dir.parent
    return RunData(
        run_dir=run_dir,
        summary=written,
        rows=read_rows(run_dir, notes),
        config_yaml=_read_text(run_dir / ".hydra" / "config.yaml"),
        overrides=read_overrides(run_dir),
        evaluations=_read_evaluations(run_dir, notes),
        grids=_read_images(thin(grids, MAX_GRIDS)),
        grids_total=len(grids),
        figures=_read_images((p.name, p) for p in figure_paths),
        in_sweep=(parent / "multirun.yaml").is_file() or (parent / ".jobs").is_dir(),
        notes=notes,
    )
