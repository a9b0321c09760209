"""Feature-extraction throughput (images/s): gan_jax's Fashion-MNIST classifier, FID
Inception-v3 and DINOv2 ViT-S/14 and L/14 (FD_DINOv2), and pytorch-fid's Inception and the
DINOv2 authors' ViT on the same images when torch (and, for DINOv2, a checkout of
facebookresearch/dinov2 at $DINOV2_SRC) is there.

Images are 28x28 grey in [-1, 1] (what a Fashion-MNIST GAN produces); the Inception
contenders include the resize to 299x299 and the grey-to-RGB repeat. Weights are random
(timing does not depend on them): the shipped classifier weights when present. Rounds
alternate the contenders so the machine's load hits all of them; medians are printed.
The first call (compilation) is not timed.

    python experiments/throughput/features.py [--rounds 3] [--classifier-images 5000]
        [--inception-images 100] [--contenders classifier,inception,pytorch_fid] [--json OUT]

pytorch-fid runs where torch and pytorch-fid are installed (`pip install torch==2.13.0
pytorch-fid`); the contenders can run in separate environments (`--contenders`), the
numbers are comparable on the same machine.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

CLASSIFIER_BATCH = 500
INCEPTION_BATCH = 50


def images(n: int) -> np.ndarray:
    return np.random.default_rng(0).uniform(-1, 1, (n, 28, 28, 1)).astype(np.float32)


def classifier_runner(n: int):
    from gan_jax.metrics import classifier

    try:
        extract = classifier.fashion_mnist_classifier(batch_size=CLASSIFIER_BATCH, progress=False)
    except FileNotFoundError:  # no shipped weights: random ones time the same
        import jax
        import jax.numpy as jnp

        variables = classifier.Classifier().init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
        extract = classifier.ClassifierFeatures(variables, {}, CLASSIFIER_BATCH, progress=False)
    batch = images(n)
    extract(batch[:CLASSIFIER_BATCH])  # compile
    return lambda: extract(batch)


def inception_runner(n: int):
    import jax
    import jax.numpy as jnp

    from gan_jax.metrics import inception

    variables = inception.FIDInceptionV3().init(jax.random.key(0), jnp.zeros((1, 299, 299, 3)))
    extract = inception.InceptionFeatures(variables, "random", Path("random"), INCEPTION_BATCH, progress=False)
    batch = images(n)
    extract(batch[:INCEPTION_BATCH])  # compile
    return lambda: extract(batch)


def pytorch_fid_runner(n: int):
    import torch
    import torch.library

    # PyPI's torchvision is linked against CUDA torch; pytorch-fid needs only its Python classes.
    torch.library.register_fake = lambda *args, **kwargs: lambda fn: fn
    from pytorch_fid import inception

    state = {}

    def random_weights(*args, **kwargs):  # instead of the download: the modules' own random init
        return state["dict"]

    model = inception._inception_v3(num_classes=1008, aux_logits=False, weights=None)
    for name, block in (
        ("Mixed_5b", inception.FIDInceptionA(192, 32)),
        ("Mixed_5c", inception.FIDInceptionA(256, 64)),
        ("Mixed_5d", inception.FIDInceptionA(288, 64)),
        ("Mixed_6b", inception.FIDInceptionC(768, 128)),
        ("Mixed_6c", inception.FIDInceptionC(768, 160)),
        ("Mixed_6d", inception.FIDInceptionC(768, 160)),
        ("Mixed_6e", inception.FIDInceptionC(768, 192)),
        ("Mixed_7b", inception.FIDInceptionE_1(1280)),
        ("Mixed_7c", inception.FIDInceptionE_2(2048)),
    ):
        setattr(model, name, block)
    state["dict"] = model.state_dict()
    inception.load_state_dict_from_url = random_weights
    net = inception.InceptionV3([3]).eval()
    batch = torch.from_numpy((images(n) + 1) / 2).permute(0, 3, 1, 2).repeat(1, 3, 1, 1)  # as its loader: RGB in [0, 1]

    def run():
        with torch.no_grad():
            for start in range(0, n, INCEPTION_BATCH):
                net(batch[start : start + INCEPTION_BATCH])

    run_once = batch[:INCEPTION_BATCH]
    with torch.no_grad():
        net(run_once)
    return run


def dinov2_images(n: int) -> np.ndarray:
    """224x224 RGB in [-1, 1] on the 256 levels of saved images: what FD_DINOv2 sees after its resize."""
    pixels = np.random.default_rng(0).integers(0, 256, (n, 224, 224, 3)).astype(np.float32)
    return pixels / 127.5 - 1.0


def dinov2_runner(n: int, arch: str = "vits14"):
    import jax
    import jax.numpy as jnp

    from gan_jax.metrics import dino

    spec = dino.ARCHS[arch]
    variables = dino.DinoVisionTransformer(spec).init(jax.random.key(0), jnp.zeros((1, 224, 224, 3)))
    extract = dino.DINOv2Features(variables, spec, "random", Path("random"), batch_size=n, progress=False)
    batch = dinov2_images(n)
    extract(batch)  # compile
    return lambda: extract(batch)


def dinov2_torch_runner(n: int, arch: str = "vits14"):
    """The authors' ViT (a checkout of facebookresearch/dinov2 at $DINOV2_SRC; xformers off),
    normalisation and forward on the same pixels."""
    import os
    import sys

    import torch

    if not os.environ.get("DINOV2_SRC"):
        raise ImportError("DINOV2_SRC is not set (a checkout of facebookresearch/dinov2)")
    sys.path.insert(0, os.environ["DINOV2_SRC"])
    os.environ.setdefault("XFORMERS_DISABLED", "1")
    from dinov2.hub import backbones

    model = getattr(backbones, f"dinov2_{arch}")(pretrained=False).eval()
    pixels = torch.from_numpy(np.round((dinov2_images(n) + 1) * 127.5).astype(np.uint8)).permute(0, 3, 1, 2)
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)

    def run():
        with torch.inference_mode():
            return model((pixels.float() / 255 - mean) / std).numpy()

    run()  # warm-up
    return run


RUNNERS = {
    "classifier": classifier_runner,
    "inception": inception_runner,
    "pytorch_fid": pytorch_fid_runner,
    "dinov2_s": dinov2_runner,
    "dinov2_s_authors": dinov2_torch_runner,
    "dinov2_l": lambda n: dinov2_runner(n, "vitl14"),
    "dinov2_l_authors": lambda n: dinov2_torch_runner(n, "vitl14"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--classifier-images", type=int, default=5000)
    parser.add_argument("--inception-images", type=int, default=100)
    parser.add_argument("--dinov2-images", type=int, default=16)
    parser.add_argument("--contenders", default=None, help="comma-separated; default: all that can run here")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    wanted = args.contenders.split(",") if args.contenders else list(RUNNERS)
    counts = {
        "classifier": args.classifier_images,
        "inception": args.inception_images,
        "pytorch_fid": args.inception_images,
        "dinov2_s": args.dinov2_images,
        "dinov2_s_authors": args.dinov2_images,
        "dinov2_l": max(args.dinov2_images // 4, 1),
        "dinov2_l_authors": max(args.dinov2_images // 4, 1),
    }
    runners = {}
    for name in wanted:
        try:
            runners[name] = RUNNERS[name](counts[name])
        except (ImportError, ModuleNotFoundError) as error:
            print(f"skipping {name}: {error}")
    rates: dict[str, list[float]] = {name: [] for name in runners}
    for _ in range(args.rounds):
        for name, run in runners.items():
            start = time.perf_counter()
            run()
            rates[name].append(counts[name] / (time.perf_counter() - start))
    medians = {name: statistics.median(r) for name, r in rates.items()}
    print(f"{'contender':14s} {'images/s':>9s} {'min':>8s} {'max':>8s}")
    for name, r in rates.items():
        print(f"{name:14s} {medians[name]:9.1f} {min(r):8.1f} {max(r):8.1f}")
    if args.json:
        args.json.write_text(json.dumps({"rates": rates, "medians": medians, "counts": counts}, indent=2) + "\n")


if __name__ == "__main__":
    main()
