"""`gan-report RUN_OR_SWEEP_DIR`: an offline, self-contained HTML report of a run or a sweep.

    gan-report outputs/runs/X       # X/report.html
    gan-report outputs/sweeps/Y     # Y/report.html, and Y/<job>/report.html for every job

A run's page shows its status, D's outputs on real and on generated data against step
with the equilibrium line at 0.5, the losses, every evaluation curve (the evaluation rows
of metrics.jsonl, and what gan-eval recorded in eval.json), the sample grids over
training (samples/step_*.png) behind a step slider, the final numbers, the composed
config and the provenance from summary.json; a population (train.num_seeds > 1) has one
curve per member. A sweep's page has a sortable table of its runs (a population's
replicas count as runs, as in gan-compare) with their overrides and final numbers, one
box plot per final metric over gan-compare's groups, and links to every run's page.

Each page is one HTML file that makes no network request: the charts are inline SVG
drawn here, the images data: URIs, the little script (sorting, the slider) inline, and a
Content-Security-Policy forbids loading anything else. Pages are written whole (temp file
and rename). `write_run_report` reads whatever the run directory holds so far (no
summary, no evaluation, no grids yet, a torn last metrics row) and says what is missing
instead of failing; `refresh_run_report` never raises at all, for the training loop.

The package: reading.py reads a run directory, svg.py draws the charts, html.py holds the
page's pieces, run_page.py and sweep_page.py compose the two pages; this module writes them.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gan_jax import rundir
from gan_jax.report import run_page, sweep_page
from gan_jax.report.reading import REPORT_FILE, is_run_dir, read_run, sweep_members

__all__ = ["REPORT_FILE", "kind_of", "main", "refresh_run_report", "write_run_report", "write_sweep_report"]

log = logging.getLogger("gan_jax.report")


def write_run_report(run_dir: Path) -> Path:
    """Writes `run_dir/report.html` (whole: temp file and rename) and returns its path.

    Reads whatever the directory holds so far, so it can be called at any point of a run;
    it raises only when the page cannot be written (OSError)."""
    path = run_dir / REPORT_FILE
    rundir.write_atomic(path, run_page.run_page(read_run(run_dir)))
    return path


def refresh_run_report(run_dir: Path) -> Path | None:
    """`write_run_report` for the training loop: a failure is logged, never raised."""
    try:
        return write_run_report(run_dir)
    except Exception as error:
        log.warning("%s: could not write %s (%s); training goes on", run_dir, REPORT_FILE, error)
        return None


def write_sweep_report(sweep_dir: Path) -> Path:
    """Writes every job's page, then `sweep_dir/report.html` linking to them; returns its path."""
    for member in sweep_members(sweep_dir):
        write_run_report(member)
    path = sweep_dir / REPORT_FILE
    rundir.write_atomic(path, sweep_page.sweep_page(sweep_page.read_sweep(sweep_dir)))
    return path


def kind_of(path: Path) -> str | None:
    """ "run", "sweep", or None for a directory that is neither."""
    if not path.is_dir():
        return None
    if is_run_dir(path):
        return "run"
    return "sweep" if sweep_members(path) else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gan-report", description=__doc__.splitlines()[0])
    parser.add_argument("path", type=Path, help="a run directory, or a sweep (Hydra multirun) directory")
    args = parser.parse_args(argv)
    path: Path = args.path
    expected = "expected a run directory (with metrics.jsonl or summary.json) or a sweep directory of them"
    if not path.exists():
        print(f"gan-report: {path}: no such directory; {expected}", file=sys.stderr)
        return 2
    kind = kind_of(path)
    if kind is None:
        print(f"gan-report: {path}: neither a run nor a sweep: {expected}", file=sys.stderr)
        return 2
    try:
        written = write_run_report(path) if kind == "run" else write_sweep_report(path)
    except (OSError, ValueError) as error:
        print(f"gan-report: {path}: {error}", file=sys.stderr)
        return 1
    print(written)
    return 0
