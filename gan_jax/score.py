"""`gan-eval RUN_DIR|SWEEP_DIR`: score a run's checkpoint after training.

    gan-eval outputs/runs/X                        # the latest checkpoint, the run's own eval settings
    gan-eval outputs/runs/X --checkpoint best      # the one train.keep_best kept (or --checkpoint STEP)
    gan-eval outputs/sweeps/Y --num-samples 50000 --metrics fid kid
    gan-eval --real-vs-real dataset=fashion_mnist  # the floor: the train split against the reference split
    gan-eval outputs/runs/X --samples S.npz        # samples written elsewhere (gan-sample's npz), as the run's
    gan-eval outputs/runs/X --protocol stylegan2_ada   # a paper's protocol (conf/eval/protocol/): fid50k_full
    gan-eval outputs/runs/X --reference-split train --reference-num-samples all

The evaluation is the loop's own (gan_jax/evaluate.py): the same samples from the same
latents, the same feature network and cached reference, so with the run's N it
reproduces the value logged in training exactly. Results are added to the run
directory's eval.json under `<checkpoint>@<step>/n<N>/<protocol>` (the protocol's name, or
`custom`, with the features, resize, quantisation and reference: entries of other protocols
are kept, and their cached reference features never mix) and printed as a table under the
line saying how they were obtained.

A damaged checkpoint (unreadable metadata, a missing or truncated array file, shapes that do
not match its config) is named with its step and what is wrong, and nothing is moved or
deleted. `latest` then scores the newest intact checkpoint, with a warning and a note in
the table: exit status 0, as the entry's key and the table say which step was scored. A
damaged --checkpoint STEP or best stops that run, naming the intact steps. Exit status 1
when any run could not be scored; the others of a sweep are scored, and the table has a row
saying what was wrong with each that was not.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gan_jax import parallel, population, rundir, step
from gan_jax.checkpoint import Checkpoints, DamagedCheckpoint
from gan_jax.errors import ConfigError, GanJaxError
from gan_jax.evaluate import StateEvaluator
from gan_jax.parts import build as build_parts
from gan_jax.report.reading import EVAL_FILE, NOT_SCORES

log = logging.getLogger("gan_jax.eval")

CHECKPOINT_DIRS = {"latest": "checkpoints", "best": "best"}


def run_dirs(path: Path) -> list[Path]:
    """`path` itself when it is a run directory, else the run directories one level below (a sweep)."""
    if (path / "checkpoints").is_dir():
        return [path]
    return sorted(p.parent for p in path.glob("*/checkpoints") if p.is_dir())


def protocols() -> list[str]:
    """The named evaluation protocols: conf/eval/protocol/<name>.yaml."""
    from gan_jax.config import CONFIG_DIR

    return sorted(p.stem for p in (Path(CONFIG_DIR) / "eval" / "protocol").glob("*.yaml"))


def protocol_settings(name: str) -> DictConfig:
    """The eval keys protocol `name` sets (what eval/protocol=<name> sets in gan-train)."""
    from gan_jax.config import CONFIG_DIR

    if name not in protocols():
        raise ConfigError(f"--protocol {name}: valid protocols are {', '.join(protocols())}")
    return cast(DictConfig, OmegaConf.load(Path(CONFIG_DIR) / "eval" / "protocol" / f"{name}.yaml"))


def _eval_config(saved: DictConfig, args: argparse.Namespace) -> DictConfig:
    """The run's eval settings, with the protocol and options gan-eval was given on top."""
    eval_cfg = saved.eval.copy()
    # A config saved before a key existed lacks it: the feature space reads such a run's
    # evaluation as it was then (feature_space.build's defaults); a protocol may still add keys.
    OmegaConf.set_struct(eval_cfg, False)
    if args.protocol is not None:
        eval_cfg = cast(DictConfig, OmegaConf.merge(eval_cfg, protocol_settings(args.protocol)))
    given = {
        "features": args.features,
        "inception_weights": args.inception_weights,
        "reference_split": args.reference_split,
    }
    for key, value in given.items():
        if value is not None:
            eval_cfg[key] = value
    if args.reference_num_samples is not None:
        eval_cfg.reference_num_samples = (
            None if args.reference_num_samples == "all" else int(args.reference_num_samples)
        )
    return eval_cfg


def protocol_line(provenance: dict[str, Any] | None, first: str = "generated") -> str:
    """How a score was obtained, in one line: protocol, features, resize, quantisation, reference."""
    if not provenance:
        return "no image metrics"
    reference = provenance.get("reference", {})
    return (
        f"protocol {provenance.get('protocol') or 'custom'}: {provenance.get('features')} features, resize "
        f"{provenance.get('resize', 'network')}, quantize {provenance.get('quantize', False)}, "
        f"{provenance.get('num_fake')} {first} vs {reference.get('num_real')} of {reference.get('dataset')}'s "
        f"{reference.get('split')} split"
    )


@dataclass(frozen=True)
class RestoredRun:
    """A run's checkpoint read back: the population state, its config and parts, and the newer
    checkpoints that were damaged and passed over."""

    which: str  # latest or best
    at_step: int
    state: step.GANState
    cfg: DictConfig
    parts: step.GANParts
    damaged: list[DamagedCheckpoint]
    diverged: dict[int, int]  # a population's members that had diverged by then -> the step they did


def restore(run_dir: Path, checkpoint: str) -> RestoredRun:
    """`checkpoint` (latest, best or a step) of `run_dir`, read without moving or deleting anything.

    `latest` is the newest checkpoint that reads whole: a damaged newer one is named in a warning
    and in `damaged`. A damaged STEP or best stops, naming the intact steps."""
    which = "best" if checkpoint == "best" else "latest"
    if not (run_dir / CHECKPOINT_DIRS[which]).is_dir():
        raise GanJaxError(f"no {CHECKPOINT_DIRS[which]}/ in the run (--checkpoint best needs train.keep_best)")
    population_like = _PopulationLike()
    checkpoints = Checkpoints(run_dir, keep=10**6, subdir=CHECKPOINT_DIRS[which], read_only=True)
    try:
        steps = checkpoints.steps()
        if not steps:
            raise GanJaxError(f"{checkpoints.directory}: no checkpoint to score")
        if checkpoint not in CHECKPOINT_DIRS and int(checkpoint) not in steps:
            held = ", ".join(map(str, steps))
            raise GanJaxError(f"--checkpoint {checkpoint}: {checkpoints.directory} holds steps {held}")
        candidates = {"latest": steps, "best": steps[-1:]}.get(checkpoint) or [int(checkpoint)]
        restored, damaged = checkpoints.newest_intact(population_like, candidates)
    finally:
        checkpoints.close()
    if restored is None:
        raise GanJaxError(_nothing_to_score(run_dir, checkpoint, damaged, population_like))
    if damaged:
        log.warning(
            "%s; using step %d, the latest intact checkpoint, instead", "; ".join(map(str, damaged)), restored.step
        )
    cfg = OmegaConf.create(restored.meta["config"])
    diverged = {int(m): int(s) for m, s in restored.meta.get("diverged_members", {}).items()}
    return RestoredRun(which, restored.step, restored.state, cfg, population_like.parts(cfg), damaged, diverged)


def score_run(run_dir: Path, args: argparse.Namespace) -> dict[str, Any]:
    """Restores the chosen checkpoint of `run_dir` and evaluates every replica; returns eval.json's entry
    (a damaged newer checkpoint passed over is listed in its `passed_over`)."""
    run = restore(run_dir, args.checkpoint)
    cfg, damaged = run.cfg, run.damaged
    evaluate = StateEvaluator(
        run.parts,
        _eval_config(cfg, args),
        cfg.dataset,
        metrics=args.metrics,
        count=args.num_samples,
        progress=True,
    )
    replicas = [
        {**_identity(cfg, member), **_diverged(run.diverged[member.index])}
        if member.index in run.diverged  # its parameters are NaN: nothing to score
        else {**_identity(cfg, member), **evaluate(parallel.replica(run.state, member.index)).scalars}
        for member in population.members(cfg)
    ]
    entry = {
        "checkpoint": run.which,
        "step": run.at_step,
        "num_samples": evaluate.num_samples,
        "scored_at": time.time(),
        "replicas": replicas,
        "provenance": evaluate.summary().get("eval_provenance"),
    }
    if damaged:
        entry["passed_over"] = [{"step": error.step, "reason": error.reason} for error in damaged]
    return entry


class _PopulationLike:
    """A checkpoint's meta -> the freshly initialised population its state is read into; the parts
    are built once per config (a run's checkpoints share one)."""

    def __init__(self) -> None:
        self._built: dict[str, step.GANParts] = {}

    def parts(self, cfg: DictConfig) -> step.GANParts:
        key = json.dumps(OmegaConf.to_container(cfg), sort_keys=True)
        if key not in self._built:
            self._built[key] = build_parts(cfg)
        return self._built[key]

    def __call__(self, meta: dict) -> step.GANState:
        cfg = OmegaConf.create(meta["config"])
        return population.initial_state(self.parts(cfg), cfg)


def _diverged(at_step: int) -> dict[str, Any]:
    return {"status": "diverged", "diverged_step": at_step, "note": f"diverged at step {at_step}: not scored"}


def _who(replica: dict) -> str:
    return f"member {replica['member']}" if "member" in replica else f"seed {replica['seed']}"


def _identity(cfg: DictConfig, member: population.Member) -> dict[str, int]:
    """Whose scores these are: a seed, or a hyper-parameter population's member and seed (as its rows say)."""
    return {"member": member.index, "seed": member.seed} if population.keys(cfg) else {"seed": member.seed}


def _nothing_to_score(
    run_dir: Path, chosen: str, damaged: list[DamagedCheckpoint], population_like: _PopulationLike
) -> str:
    """Why --checkpoint `chosen` of `run_dir` cannot be scored, and which steps can."""
    if chosen == "latest":
        return f"no checkpoint can be read: {'; '.join(map(str, damaged))}"
    checkpoints = Checkpoints(run_dir, keep=10**6, read_only=True)
    try:
        intact = checkpoints.intact_steps(population_like)
    finally:
        checkpoints.close()
    if not intact:
        return f"--checkpoint {chosen}: {damaged[0]}; no checkpoint of this run can be read"
    steps = f"step{'s' * (len(intact) > 1)} {', '.join(map(str, intact))}"
    return f"--checkpoint {chosen}: {damaged[0]}; the intact checkpoints are {steps} (--checkpoint STEP or latest)"


def score_samples(run_dir: Path, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The run's evaluation (feature network, reference, metrics that need no D) of the samples in
    `path`: an npz with `samples` (float32 in [-1, 1], gan-sample's) or `images` (uint8), and
    `labels` for a conditional model's class metrics."""
    try:
        with np.load(path) as stored:
            arrays = {k: stored[k] for k in stored.files}
    except (OSError, ValueError) as error:
        raise GanJaxError(f"--samples {path}: not a readable npz ({error})") from None
    if "samples" in arrays:
        samples = arrays["samples"].astype(np.float32)
    elif "images" in arrays:
        samples = arrays["images"].astype(np.float32) / 127.5 - 1.0
    else:
        raise GanJaxError(f"--samples {path}: holds {sorted(arrays)}, neither 'samples' nor 'images'")
    run = restore(run_dir, args.checkpoint)  # for the run's config and data
    if samples.shape[1:] != run.parts.data.shape:
        raise GanJaxError(
            f"--samples {path}: examples of shape {samples.shape[1:]}, the run's are {run.parts.data.shape}"
        )
    evaluate = StateEvaluator(
        run.parts, _eval_config(run.cfg, args), run.cfg.dataset, metrics=args.metrics, count=len(samples), progress=True
    )
    scalars, _ = evaluate.measure(samples, None, arrays.get("labels"))
    return {
        "checkpoint": f"samples:{path.name}",
        "step": run.at_step,
        "num_samples": len(samples),
        "scored_at": time.time(),
        "replicas": [{"seed": None, **scalars}],
        "provenance": evaluate.summary().get("eval_provenance"),
    }


def real_vs_real(overrides: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """The data's own floor: N images of dataset.split scored as if generated, against the reference split."""
    from gan_jax.config import compose, validate
    from gan_jax.metrics.feature_space import reference_images

    cfg = compose(overrides)
    validate(cfg, 1)
    parts = build_parts(cfg)
    metrics = args.metrics or ["fid", "kid", "precision_recall", "density_coverage", "inception_score"]
    evaluate = StateEvaluator(parts, _eval_config(cfg, args), cfg.dataset, metrics=metrics, count=args.num_samples)
    images, _ = reference_images(cfg.dataset, cfg.dataset.split, evaluate.num_samples)
    scalars, _ = evaluate.measure(images)
    provenance = evaluate.features.provenance(len(images)) if evaluate.features is not None else None
    return {"real_vs_real": {"split": cfg.dataset.split, "num": len(images), **scalars}, "provenance": provenance}


def record(run_dir: Path, entry: dict[str, Any]) -> str:
    """Adds `entry` to run_dir/eval.json (whole-file rewrite under a lock; other entries kept)."""
    key = f"{entry['checkpoint']}@{entry['step']}/n{entry['num_samples']}/{_protocol_tag(entry.get('provenance'))}"
    path = run_dir / EVAL_FILE
    with rundir.file_lock(run_dir / f".{EVAL_FILE}.lock"):
        try:
            existing = json.loads(path.read_text())
        except (OSError, ValueError):
            existing = {}
        existing[key] = entry
        rundir.write_atomic(path, json.dumps(existing, indent=2) + "\n")
    return key


def _protocol_tag(provenance: dict[str, Any] | None) -> str:
    """What sets an entry's numbers apart besides checkpoint and N: the protocol's settings."""
    if not provenance:
        return "no-features"
    reference = provenance.get("reference", {})
    name, features = provenance.get("protocol") or "custom", provenance.get("features")
    resize, quantize = provenance.get("resize", "network"), int(bool(provenance.get("quantize")))
    return f"{name}:{features}:resize={resize}:q{quantize}:{reference.get('split')}x{reference.get('num_real')}"


def table(rows: list[tuple[str, dict[str, Any]]]) -> str:
    """Markdown: one row per (label, scalars), one column per metric, and a last column for the
    rows' `note`s (a run not scored, or scored from an older checkpoint) when any has one."""
    columns = sorted(
        {k for _, values in rows for k, v in values.items() if isinstance(v, (int, float)) and k not in NOT_SCORES}
    )
    notes = any("note" in values for _, values in rows)
    lines = [
        "| run | " + " | ".join(columns + ["note"] * notes) + " |",
        "|---|" + "---:|" * len(columns) + "---|" * notes,
    ]
    for label, values in rows:
        cells = [_cell(values.get(c)) for c in columns] + [values.get("note", "").replace("|", "\\|")] * notes
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _with_note(replica: dict[str, Any], note: dict[str, str]) -> dict[str, Any]:
    notes = [n for n in (replica.get("note"), note.get("note")) if n]
    return replica | ({"note": "; ".join(notes)} if notes else {})


def _passed_over(damaged: list[dict[str, Any]]) -> str:
    steps = ", ".join(str(d["step"]) for d in damaged)
    return f"the latest intact checkpoint: step{'s' * (len(damaged) > 1)} {steps} cannot be read"


def _cell(value: Any) -> str:
    if isinstance(value, int):
        return str(value)
    return f"{value:.4g}" if isinstance(value, float) else ""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gan-eval", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", nargs="?", help="a run directory, or a sweep directory (every run in it)")
    parser.add_argument("--checkpoint", default="latest", help="latest (default), best, or a step")
    parser.add_argument("--num-samples", type=int, default=None, help="default: the run's eval.num_samples")
    parser.add_argument("--metrics", nargs="+", default=None, help="default: the run's eval.metrics")
    parser.add_argument("--features", default=None, help="auto, fashion_mnist_classifier or inception_v3")
    parser.add_argument("--inception-weights", default=None, help="pytorch-fid's pt_inception-2015-12-05 .pth")
    parser.add_argument("--samples", type=Path, default=None, help="an npz of samples (gan-sample's) to score instead")
    parser.add_argument("--protocol", default=None, help="a paper's protocol: stylegan2_ada, clean_fid, studiogan, ...")
    parser.add_argument("--reference-split", default=None, help="the real split compared with (default: the run's)")
    parser.add_argument("--reference-num-samples", default=None, help="real images of it, or 'all' (the whole split)")
    parser.add_argument(
        "--real-vs-real", nargs="*", metavar="OVERRIDE", default=None, help="score the data against itself"
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] %(message)s")
    logging.getLogger("absl").setLevel(logging.ERROR)  # TFDS's note that OpenCV would decode faster
    args = _parser().parse_args(argv)
    if args.checkpoint not in CHECKPOINT_DIRS and not args.checkpoint.isdigit():
        _parser().error(f"--checkpoint {args.checkpoint!r}: valid values are latest, best or a step number")
    try:
        if args.protocol is not None:
            protocol_settings(args.protocol)  # an unknown name stops here, before any run is read
        if args.real_vs_real is not None:
            result = real_vs_real(args.real_vs_real, args)
            split = result["real_vs_real"]["split"]
            print(protocol_line(result["provenance"], first=f"real ({split} split)"))
            print(table([(f"real ({result['real_vs_real']['split']}) vs reference", result["real_vs_real"])]))
            return 0
        if args.path is None:
            _parser().error("give a run or sweep directory, or --real-vs-real")
        runs = run_dirs(Path(args.path))
        if not runs:
            raise GanJaxError(f"{args.path}: neither a run directory with checkpoints/ nor a sweep of them")
    except GanJaxError as error:
        log.error("%s", error)
        return error.exit_code
    rows, failed, protocols_used = [], 0, set()
    if args.samples is not None and len(runs) > 1:
        log.error("--samples: give one run directory, not a sweep")
        return 2
    for run_dir in runs:
        try:
            entry = score_run(run_dir, args) if args.samples is None else score_samples(run_dir, args.samples, args)
        except GanJaxError as error:
            log.error("%s: %s", run_dir, error)
            failed += 1
            rows.append((run_dir.name, {"note": f"not scored: {error}"}))
            continue
        key = record(run_dir, entry)
        log.info("%s: %s written to %s", run_dir, key, run_dir / EVAL_FILE)
        note = {"note": _passed_over(entry["passed_over"])} if "passed_over" in entry else {}
        label = (
            f"{run_dir.name} {entry['checkpoint']}" if args.samples else f"{run_dir.name} {{who}} step {entry['step']}"
        )
        rows += [(label.format(who=_who(r)), _with_note(r, note)) for r in entry["replicas"]]
        protocols_used.add(protocol_line(entry.get("provenance")))
    for line in sorted(protocols_used):
        print(line)
    if rows:
        print(table(rows))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
