"""What one in-training evaluation adds to a DCGAN run on Fashion-MNIST.

The evaluation of `experiment=fashion_mnist_dcgan` (10,000 samples of G, the shipped
classifier's features, FID, KID, precision/recall, density/coverage and the classifier
score against the cached test-split reference), timed part by part, beside the DCGAN
training step it interrupts (batch 64, one compiled call per step, as gan-train runs it).
Rounds alternate the two; medians are printed, and the evaluation's cost in training
steps and as a share of the run at eval.every=500.

    python experiments/throughput/eval_cost.py [--rounds 3] [--num-samples 10000] [--data-dir DIR] [--json OUT]

Needs Fashion-MNIST prepared (offline: Debian's dataset-fashion-mnist is found by itself)
for the reference images; the reference features are computed before the first round.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import dcgan

from gan_jax import step
from gan_jax.config import compose
from gan_jax.evaluate import StateEvaluator
from gan_jax.evaluators import EvalInputs
from gan_jax.parts import build as build_parts

STEPS_PER_ROUND = 20


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def evaluation_parts(evaluate: StateEvaluator, state: step.GANState) -> dict[str, float]:
    """Seconds of each part of one evaluation: generation, features, each metric."""
    seconds = {}
    samples, seconds["generate"] = timed(lambda: evaluate.samples(state, evaluate.num_samples))
    features, seconds["features"] = timed(lambda: evaluate.features.extract(samples))
    inputs = EvalInputs(evaluate.parts.data, samples, lambda x: x, evaluate.features, _fake=features)
    for metric in evaluate.active:
        _, seconds[metric.name] = timed(lambda m=metric: m.compute(inputs))
    seconds["total"] = sum(seconds.values())
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--num-samples", type=int, default=10_000)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()

    overrides = ["experiment=fashion_mnist_dcgan", "logger=none", f"eval.num_samples={args.num_samples}"]
    cfg = compose(overrides + ([f"dataset.data_dir={args.data_dir}"] if args.data_dir else []))
    parts = build_parts(cfg)
    evaluate, setup_seconds = timed(lambda: StateEvaluator(parts, cfg.eval, cfg.dataset))
    state = step.init_state(parts, 0)
    evaluation_parts(evaluate, state)  # compiles generation and feature extraction
    train, _ = dcgan.jax_runner("subpixel")

    evaluations, step_seconds = [], []
    for _ in range(args.rounds):
        evaluations.append(evaluation_parts(evaluate, state))
        _, seconds = timed(lambda: train(STEPS_PER_ROUND))
        step_seconds.append(seconds / STEPS_PER_ROUND)

    median = {k: statistics.median(e[k] for e in evaluations) for k in evaluations[0]}
    step_time = statistics.median(step_seconds)
    every = cfg.eval.every
    share = median["total"] / (median["total"] + every * step_time)
    result = {
        "num_samples": args.num_samples,
        "evaluator_start_seconds": setup_seconds,
        "evaluation_seconds": median,
        "train_step_seconds": step_time,
        "evaluation_in_steps": median["total"] / step_time,
        "share_of_run_at_eval_every": {"every": every, "share": share},
    }
    print(f"one evaluation of {args.num_samples} samples (median of {args.rounds} rounds):")
    for name, seconds in median.items():
        print(f"  {name:<18} {seconds:7.2f} s")
    print(f"DCGAN training step: {1000 * step_time:.0f} ms (median)")
    print(
        f"one evaluation = {result['evaluation_in_steps']:.0f} training steps; at eval.every={every} "
        f"it adds {100 * share:.1f}% to the run's time"
    )
    print(f"start of the evaluator (network, reference images, features or their cache): {setup_seconds:.1f} s")
    if args.json:
        args.json.write_text(json.dumps(result, indent=2, default=float) + "\n")


if __name__ == "__main__":
    main()
