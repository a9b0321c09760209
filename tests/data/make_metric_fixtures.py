"""Computes the reference fixtures of tests/test_image_metrics.py ONCE, with the packages people use.

Run in a separate environment that has them (never needed by the tests themselves):

    python3 -m venv /work/refvenv
    /work/refvenv/bin/pip install torch==2.13.0 pytorch-fid==0.3.0 prdc==0.2 torch-fidelity==0.4.0 numpy scipy
    GAN_JAX_PYTHON=.venv/bin/python /work/refvenv/bin/python tests/data/make_metric_fixtures.py \
        [--only metrics|inception]

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
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch
import torch.library

HERE = Path(__file__).resolve().parent
# A Python with gan_jax's dependencies (jax, flax), for gan_jax's weight writer.
GAN_JAX_PYTHON = os.environ.get("GAN_JAX_PYTHON", sys.executable)

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


def inception_images() -> dict[str, np.ndarray]:
    """uint8 images of three shapes: grey 28x28 (upsampled), RGB 40x36, grey 311x303 (shrunk)."""
    rng = np.random.default_rng(299)
    y, x = np.mgrid[0:311, 0:303] / 50.0
    smooth = (127.5 + 100 * np.sin(x * 1.3 + y * 0.7) * np.cos(y * 2.1)) + rng.normal(0, 20, (311, 303))
    return {
        "grey_28": rng.integers(0, 256, (3, 28, 28, 1), dtype=np.uint8),
        "rgb_40x36": rng.integers(0, 256, (2, 40, 36, 3), dtype=np.uint8),
        "grey_311x303": np.clip(smooth, 0, 255).astype(np.uint8)[None, :, :, None],
    }


def pytorch_fid_features(weights_path: Path, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """pytorch-fid's InceptionV3 (resize + normalise included) with the given state dict."""
    from pytorch_fid import inception

    state_dict = torch.load(weights_path, map_location="cpu", weights_only=True)
    inception.load_state_dict_from_url = lambda *args, **kwargs: state_dict  # no download
    model = inception.InceptionV3([inception.InceptionV3.BLOCK_INDEX_BY_DIM[2048]]).eval()
    full = inception.fid_inception_v3().eval()  # the same weights, for the fc layer
    x = torch.from_numpy(images.astype(np.float32) / 255.0).permute(0, 3, 1, 2)
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)  # as PIL's convert("RGB") in pytorch-fid's loader
    with torch.no_grad():
        pool = model(x)[0][:, :, 0, 0]
        logits = pool @ full.fc.weight.T
    return pool.numpy(), logits.numpy()


def write_inception_fixtures() -> None:
    structure = _fid_inception_structure()
    shapes = {name: list(tensor.shape) for name, tensor in structure.state_dict().items()}
    out = {}
    with tempfile.TemporaryDirectory() as tmp:
        weights = Path(tmp) / "random_fid_inception.pth"
        # gan_jax's own writer (no torch), run by a Python that has gan_jax's dependencies.
        subprocess.run([GAN_JAX_PYTHON, "-c", "import sys; from gan_jax.metrics.inception import "
                        "write_random_state_dict as w; w(sys.argv[1], seed=0)", str(weights)],
                       check=True, cwd=HERE.parents[1], env={**os.environ, "PYTHONPATH": str(HERE.parents[1])})
        for name, images in inception_images().items():
            out[f"images_{name}"] = images
            out[f"pool_{name}"], out[f"logits_{name}"] = pytorch_fid_features(weights, images)
            print(name, "pool mean/std", out[f"pool_{name}"].mean(), out[f"pool_{name}"].std())
    legacy = {"conv.weight": torch.arange(24, dtype=torch.float32).reshape(2, 3, 2, 2) / 7,
              "bn.num_batches_tracked": torch.tensor(5), "half": torch.linspace(-1, 1, 5).half()}
    legacy["transposed"] = legacy["conv.weight"][:, :, 0, 0].t()
    torch.save(legacy, HERE / "legacy_format_state_dict.pth", _use_new_zipfile_serialization=False)
    out.update({f"legacy/{k}": v.numpy() for k, v in legacy.items()})
    np.savez_compressed(HERE / "inception_references.npz", **out)
    (HERE / "inception_state_dict_shapes.json").write_text(json.dumps(
        {"source": f"pytorch-fid {_version('pytorch-fid')} fid_inception_v3().state_dict()", "shapes": shapes}) + "\n")


def _fid_inception_structure():
    """pytorch-fid's fid_inception_v3() modules, built as it builds them, without loading weights."""
    from pytorch_fid import inception

    model = inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    model.Mixed_5b = inception.FIDInceptionA(192, pool_features=32)
    model.Mixed_5c = inception.FIDInceptionA(256, pool_features=64)
    model.Mixed_5d = inception.FIDInceptionA(288, pool_features=64)
    model.Mixed_6b = inception.FIDInceptionC(768, channels_7x7=128)
    model.Mixed_6c = inception.FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6d = inception.FIDInceptionC(768, channels_7x7=160)
    model.Mixed_6e = inception.FIDInceptionC(768, channels_7x7=192)
    model.Mixed_7b = inception.FIDInceptionE_1(1280)
    model.Mixed_7c = inception.FIDInceptionE_2(2048)
    return model


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
