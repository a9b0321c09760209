"""Computes the reference fixtures of tests/test_image_metrics.py ONCE, with the packages people use.

Run in a separate environment that has them (never needed by the tests themselves):

    python3 -m venv /work/refvenv
    /work/refvenv/bin/pip install torch==2.13.0 pytorch-fid==0.3.0 prdc==0.2 torch-fidelity==0.4.0 numpy scipy
    PYTHONPATH=. /work/refvenv/bin/python tests/data/make_metric_fixtures.py [--only metrics|inception]

Writes tests/data/metric_features.npz (random features, float32) and
tests/data/metric_references.json (pytorch-fid's Frechet distance, torch-fidelity's KID
and IS, prdc's precision/recall/density/coverage on them); with `inception`, also
tests/data/inception_references.npz: pytorch-fid's pool features of fixed images through a
randomly initialised FID Inception whose weights gan_jax writes deterministically (see
gan_jax.metrics.inception.write_random_state_dict), and a tiny state dict in PyTorch's
legacy (pre-1.6, non-zip) format for the reader's other branch.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.library

HERE = Path(__file__).resolve().parent

# PyPI's torchvision wheels are linked against CUDA torch; with torch's CPU build its
# compiled ops do not register. pytorch-fid only needs torchvision's Python model classes.
torch.library.register_fake = lambda *args, **kwargs: (lambda fn: fn)


def random_features() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(20240611)
    mix = rng.normal(size=(32, 32)) / np.sqrt(32)
    return {
        # FID: two correlated Gaussians with different means and covariances.
        "fid_a": rng.normal(size=(400, 32)) @ mix,
        "fid_b": rng.normal(size=(300, 32)) @ (mix + 0.3 * rng.normal(size=(32, 32)) / np.sqrt(32)) + 0.2,
        # KID: unequal N, a subset size below both.
        "kid_a": rng.normal(size=(500, 24)),
        "kid_b": 1.1 * rng.normal(size=(350, 24)) + 0.1,
        # IS: logits for 10 classes, some confident, some not.
        "is_logits": 3.0 * rng.normal(size=(500, 10)),
        # PRDC: real vs shifted fake.
        "prdc_real": rng.normal(size=(300, 16)),
        "prdc_fake": 0.8 * rng.normal(size=(250, 16)) + 0.3,
    }


def metric_references(features: dict[str, np.ndarray]) -> dict:
    from prdc import compute_prdc
    from pytorch_fid.fid_score import calculate_frechet_distance
    from torch_fidelity.metric_isc import isc_features_to_metric
    from torch_fidelity.metric_kid import kid_features_to_metric

    f = {k: v.astype(np.float64) for k, v in features.items()}
    fid = calculate_frechet_distance(f["fid_a"].mean(0), np.cov(f["fid_a"], rowvar=False),
                                     f["fid_b"].mean(0), np.cov(f["fid_b"], rowvar=False))
    kid = kid_features_to_metric(torch.from_numpy(f["kid_a"]), torch.from_numpy(f["kid_b"]),
                                 kid_subsets=20, kid_subset_size=200, rng_seed=2020, verbose=False)
    logits = torch.from_numpy(f["is_logits"])
    is_ordered = isc_features_to_metric(logits, splits=5, shuffle=False)
    is_shuffled = isc_features_to_metric(logits, splits=5, shuffle=True, rng_seed=2020)
    prdc = {k: compute_prdc(f["prdc_real"], f["prdc_fake"], nearest_k=k) for k in (3, 5)}
    return {
        "frechet_distance": float(fid),
        "kid": {"num_subsets": 20, "subset_size": 200, "seed": 2020,
                "mean": kid["kernel_inception_distance_mean"], "std": kid["kernel_inception_distance_std"]},
        "inception_score": {"splits": 5, "ordered": [is_ordered["inception_score_mean"], is_ordered["inception_score_std"]],
                            "shuffle_seed": 2020,
                            "shuffled": [is_shuffled["inception_score_mean"], is_shuffled["inception_score_std"]]},
        "prdc": {str(k): {m: float(v) for m, v in r.items()} for k, r in prdc.items()},
        "packages": {name: __import__(mod).__version__ if hasattr(__import__(mod), "__version__") else "?"
                     for name, mod in (("torch", "torch"), ("torch-fidelity", "torch_fidelity"), ("numpy", "numpy"),
                                       ("scipy", "scipy"))} | {"pytorch-fid": _version("pytorch-fid"),
                                                                 "prdc": _version("prdc")},
    }


def _version(dist: str) -> str:
    from importlib.metadata import version
    return version(dist)


def write_metric_fixtures() -> None:
    features = {k: v.astype(np.float32) for k, v in random_features().items()}
    np.savez_compressed(HERE / "metric_features.npz", **features)
    references = metric_references(features)
    (HERE / "metric_references.json").write_text(json.dumps(references, indent=2) + "\n")
    print(json.dumps(references, indent=2))


def write_inception_fixtures() -> None:
    raise NotImplementedError


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=("metrics", "inception"))
    args = parser.parse_args(argv)
    if args.only in (None, "metrics"):
        write_metric_fixtures()
    if args.only in (None, "inception"):
        write_inception_fixtures()


if __name__ == "__main__":
    main()
