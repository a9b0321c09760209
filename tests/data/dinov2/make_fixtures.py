"""Computes tests/test_dinov2.py's fixtures ONCE, with the authors' DINOv2 code and dgm-eval's transform.

Never needed by the tests. Run in an environment with torch (2.13.0 here) and Pillow, with the
authors' sources unpacked beside it (facebookresearch/dinov2, layer6ai-labs/dgm-eval) and
torchvision installed without its dependencies (PyPI's wheel is linked against CUDA torch; its
transforms are pure Python, the compiled ops are not needed and their registration is skipped):

    pip install torch==2.13.0 pillow numpy && pip install --no-deps torchvision==0.28.0
    DINOV2_SRC=/tmp/dinov2src DGM_EVAL_SRC=/tmp/dgmeval GAN_JAX_PYTHON=.venv/bin/python \
        /tmp/torchenv/bin/python tests/data/dinov2/make_fixtures.py

Writes, beside this script:
  state_dict_shapes.json  every tensor name and shape of the hub backbones dinov2_vit{s,b,l,g}14
                          (built with pretrained=False on the meta device: no weights), in order
  references.npz          the authors' ViT-S/14 (hub config) with gan_jax's random weights
                          (gan_jax.metrics.dino.random_state_dict("vits14", seed=0), written by
                          gan_jax's writer, loaded with load_state_dict(strict=True)):
                          - src_<set>: uint8 source images; pre_<set>: their pixels after
                            dgm-eval's DINOv2 transform's resize (PIL bicubic to 224x224), for two;
                            cls_<set>: the class tokens of dgm-eval's transform + the model
                          - grid_images: uint8 [2, 98, 126, 3], fed as (u / 255 - mean) / std in
                            float32; grid_cls [2, 384]; grid_patch0: normed patch tokens of image 0
                          - pos_<rows>x<cols>: interpolate_pos_encoding's output, first 8 channels
                          - tiny_*: the same for a 2-block SwiGLU ViT (embed dim 24, 2 heads)
  tiny_swiglu.pth         that tiny model's state dict saved by torch.save (a file torch wrote)
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tempfile
import types
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.library

HERE = Path(__file__).resolve().parent
DINOV2_SRC = Path(os.environ.get("DINOV2_SRC", "/tmp/dinov2src"))
DGM_EVAL_SRC = Path(os.environ.get("DGM_EVAL_SRC", "/tmp/dgmeval"))
GAN_JAX_PYTHON = os.environ.get("GAN_JAX_PYTHON", ".venv/bin/python")
ARCH_FUNCTIONS = {"vits14": "dinov2_vits14", "vitb14": "dinov2_vitb14", "vitl14": "dinov2_vitl14",
                  "vitg14": "dinov2_vitg14"}  # fmt: skip
TINY = {"embed_dim": 24, "depth": 2, "num_heads": 2, "ffn": "swiglu"}
MEAN = np.array([0.485, 0.456, 0.406])  # dgm-eval's, as numpy float64; Normalize casts to float32
STD = np.array([0.229, 0.224, 0.225])

torch.library.register_fake = lambda *args, **kwargs: lambda fn: fn  # torchvision's CUDA-built ops
sys.path.insert(0, str(DINOV2_SRC))
os.environ.setdefault("XFORMERS_DISABLED", "1")  # the authors' plain-PyTorch path


def dgm_eval_transform():
    """dgm-eval's DINOv2Encoder.transform, imported from its file without its package's other models."""
    for name in ("dgm_eval", "dgm_eval.models"):
        folder = DGM_EVAL_SRC / name.replace(".", "/")
        package = types.ModuleType(name)
        package.__path__ = [str(folder)]
        sys.modules[name] = package
    module = importlib.import_module("dgm_eval.models.dinov2")
    encoder = types.SimpleNamespace(clean_resize=False)  # dgm-eval's default (no --clean_resize)
    return lambda image: module.DINOv2Encoder.transform(encoder, image)


def write_random(path: Path, arch: str) -> None:
    """gan_jax's random state dict, written by gan_jax's own writer (in GAN_JAX_PYTHON)."""
    code = (
        "import json, sys; import gan_jax.metrics.dino as d; "
        "arch = d.Arch(**json.loads(sys.argv[2]), name='tiny') if sys.argv[2].startswith('{') else sys.argv[2]; "
        "d.write_random_state_dict(sys.argv[1], arch, seed=0)"
    )
    subprocess.run([GAN_JAX_PYTHON, "-c", code, str(path), arch], check=True)


def loaded(model: torch.nn.Module, path: Path) -> torch.nn.Module:
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True), strict=True)
    return model.eval()


def state_dict_shapes() -> dict:
    from dinov2.hub import backbones

    shapes = {}
    for arch, function in ARCH_FUNCTIONS.items():
        with torch.device("meta"):
            model = getattr(backbones, function)(pretrained=False)
        shapes[arch] = {name: list(t.shape) for name, t in model.state_dict().items()}
    return shapes


def normalised(pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> float32 NCHW, ToTensor's / 255 and Normalize's float32 (x - mean) / std."""
    x = pixels.astype(np.float32) / np.float32(255)
    x = (x - MEAN.astype(np.float32)) / STD.astype(np.float32)
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def run(model, pixels_or_tensor) -> dict[str, np.ndarray]:
    x = pixels_or_tensor if torch.is_tensor(pixels_or_tensor) else torch.from_numpy(normalised(pixels_or_tensor))
    with torch.inference_mode():
        out = model.forward_features(x)
    return {k: out[k].numpy() for k in ("x_norm_clstoken", "x_norm_patchtokens")}


def pos_embeds(model, prefix: str, grids) -> dict[str, np.ndarray]:
    out = {}
    dim = model.embed_dim
    for rows, cols in grids:
        tokens = torch.zeros(1, 1 + rows * cols, dim)
        with torch.inference_mode():
            pos = model.interpolate_pos_encoding(tokens, rows * 14, cols * 14)
        out[f"{prefix}pos_{rows}x{cols}"] = pos[0, :, :8].detach().numpy()
    return out


def main() -> None:
    from dinov2.hub.backbones import dinov2_vits14
    from dinov2.layers import MemEffAttention
    from dinov2.layers import NestedTensorBlock as Block
    from dinov2.models.vision_transformer import DinoVisionTransformer
    from PIL import Image

    torch.set_num_threads(2)
    transform = dgm_eval_transform()
    rng = np.random.default_rng(20251201)
    out: dict[str, np.ndarray] = {}
    with tempfile.TemporaryDirectory() as tmp:
        write_random(Path(tmp) / "vits14.pth", "vits14")
        model = loaded(dinov2_vits14(pretrained=False), Path(tmp) / "vits14.pth")
        write_random(Path(tmp) / "tiny.pth", json.dumps(TINY))
        tiny = DinoVisionTransformer(
            img_size=518, patch_size=14, embed_dim=TINY["embed_dim"], depth=TINY["depth"],
            num_heads=TINY["num_heads"], mlp_ratio=4, init_values=1.0, ffn_layer="swiglufused",
            block_chunks=0, block_fn=partial(Block, attn_class=MemEffAttention),
        )  # fmt: skip
        tiny = loaded(tiny, Path(tmp) / "tiny.pth")
    torch.save(tiny.state_dict(), HERE / "tiny_swiglu.pth")

    # dgm-eval's pipeline on source images: PIL image -> transform -> model(batch) = the class token.
    sources = {
        "rgb_40x36": rng.integers(0, 256, (2, 40, 36, 3), dtype=np.uint8),
        "grey_28": rng.integers(0, 256, (1, 28, 28, 1), dtype=np.uint8),
        "rgb_200x180": rng.integers(0, 256, (1, 200, 180, 3), dtype=np.uint8),
    }
    worst = 0.0
    for name, images in sources.items():
        pil = [Image.fromarray(im[..., 0] if im.shape[-1] == 1 else im).convert("RGB") for im in images]
        batch = torch.stack([transform(im) for im in pil])
        resized = np.stack([np.asarray(im.resize((224, 224), Image.BICUBIC)) for im in pil])
        worst = max(worst, float(np.abs(batch.numpy() - normalised(resized)).max()))
        with torch.inference_mode():
            out[f"cls_{name}"] = model(batch).numpy()
        out[f"src_{name}"] = images
        if name != "grey_28":
            out[f"pre_{name}"] = resized[:1]
    assert worst == 0.0, f"dgm-eval's transform differs from PIL resize + float32 normalisation by {worst}"

    grid_images = rng.integers(0, 256, (2, 98, 126, 3), dtype=np.uint8)
    grid = run(model, grid_images)
    out |= {"grid_images": grid_images, "grid_cls": grid["x_norm_clstoken"],
            "grid_patch0": grid["x_norm_patchtokens"][0]}  # fmt: skip
    out |= pos_embeds(model, "", [(16, 16), (7, 9), (37, 37), (2, 40)])

    tiny_images = rng.integers(0, 256, (1, 42, 56, 3), dtype=np.uint8)
    tiny_out = run(tiny, tiny_images)
    out |= {"tiny_images": tiny_images, "tiny_cls": tiny_out["x_norm_clstoken"],
            "tiny_patch": tiny_out["x_norm_patchtokens"][0]}  # fmt: skip
    out |= pos_embeds(tiny, "tiny_", [(3, 4)])
    np.savez_compressed(HERE / "references.npz", **out)

    dinov2_commit = subprocess.run(
        ["git", "-C", "/work/.mirror/facebookresearch+dinov2/repo", "rev-parse", "HEAD"],
        capture_output=True, text=True, check=False,
    ).stdout.strip()  # fmt: skip
    import PIL
    import torchvision

    made_with = {
        "dinov2": f"facebookresearch/dinov2 {dinov2_commit or '(commit unknown)'}: dinov2.hub.backbones "
        "dinov2_vit*14(pretrained=False) on the meta device",
        "torch": torch.__version__, "torchvision": torchvision.__version__, "pillow": PIL.__version__,
        "dgm_eval": "layer6ai-labs/dgm-eval dgm_eval/models/dinov2.py DINOv2Encoder.transform, clean_resize=False",
        "random_weights": "gan_jax.metrics.dino.random_state_dict(arch, seed=0)",
        "tiny": TINY,
    }  # fmt: skip
    shapes = {"made_with": made_with, "shapes": state_dict_shapes()}
    (HERE / "state_dict_shapes.json").write_text(json.dumps(shapes, indent=1) + "\n")
    for path in sorted(HERE.iterdir()):
        print(f"{path.name}: {path.stat().st_size} bytes")


if __name__ == "__main__":
    main()
