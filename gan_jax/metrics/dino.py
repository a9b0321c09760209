"""DINOv2's ViT (facebookresearch/dinov2, the torch hub backbones) in Flax: FD_DINOv2's feature network.

    extract = dinov2("dinov2_vitl14_pretrain.pth", arch="vitl14")  # or GAN_JAX_DINOV2_WEIGHTS
    features, logits = extract(images)  # float images in [-1, 1], NHWC, any size, 1 or 3 channels
    extract.provenance                  # network, arch, weights file and sha256, resizer, normalisation

`features` is the class token of the final layer-normed output (1024 numbers for ViT-L/14),
what dgm-eval (Stein et al. 2023, "Exposing flaws of generative model evaluation metrics";
github.com/layer6ai-labs/dgm-eval) computes FD_DINOv2 and its other DINOv2 metrics on.
`logits` is None: the backbone has no classifier (there is no Inception Score in this space).

Structure, as `dinov2/models/vision_transformer.py` builds the hub's `dinov2_vit{s,b,l,g}14`
(img_size 518, patch 14, init_values 1.0 so LayerScale on, block_chunks 0, no register tokens,
interpolate_offset 0.1, interpolate_antialias False): a 14x14 stride-14 patch conv, a class
token, learned position embeddings for 37x37 patches, pre-norm blocks x + ls1(attn(norm1(x))),
x + ls2(ffn(norm2(x))) with layer norms of eps 1e-6, exact (erf) GELU MLPs of 4x width
(ViT-g/14: the fused SwiGLU, hidden (int(6144 * 2 / 3) + 7) // 8 * 8 = 4096, w12 then w3), and
a final layer norm. ViT-S/B/L/g: dims 384/768/1024/1536, depths 12/12/24/40, heads 6/12/16/24.

Position embeddings at another grid (the authors' `interpolate_pos_encoding`): the 37x37 patch
embeddings are resized by `F.interpolate(mode="bicubic", align_corners=False, antialias=False)`
with `scale_factor=((rows + 0.1) / 37, (cols + 0.1) / 37)` rather than a size, so the output
is floor(37 * scale) = rows by cols and the source coordinate of output pixel i is
(i + 0.5) / scale - 0.5 with that offset scale (not 37 / rows); cubic convolution A = -0.75,
borders clamped. At exactly 37x37 (518x518 pixels) the table is used as it is. Every version of
the authors' file (2023-04 to 2025-08) computes these same numbers (the kludge of
facebookresearch/dino#8; since 2024-02 written `float(w0 + 0.1) / M`, before `(w0 + 0.1) / sqrt(N)`).

Preprocessing, as dgm-eval's `DINOv2Encoder.transform` with its default `clean_resize=False`
on the PIL images its data loaders give (`Image.open(...).convert("RGB")`): torchvision's
`Resize((224, 224), InterpolationMode.BICUBIC)` on a PIL image, i.e. PIL's own
`Image.resize((224, 224), Image.BICUBIC)` on the 8-bit image (PIL's bicubic, a = -0.5, its
support widened by the scale when shrinking, so antialiased; two 8-bit passes, horizontal
then vertical, in PIL's 22-bit fixed point, each rounded to uint8), then `ToTensor` (/ 255)
and `Normalize` with ImageNet's mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225).
The pass order is PIL's before version 13 (dgm-eval pins pillow 9.2.0); Pillow 13
(python-pillow/Pillow#9549) resamples vertically first when the height shrinks much more than
the width, which moves some pixels of such tall images by a few levels; square images, and
all images that are not shrunk in height, are resized the same by both.
Here images in [-1, 1] first become the uint8 pixels gan-sample writes (round((x + 1) *
127.5), gan_jax.plots.to_uint8), so a sample scored here and its PNG scored by dgm-eval see
the same pixels; PIL's resize is reproduced in integer arithmetic, bit for bit. Grey images
are repeated to 3 channels (PIL's convert("RGB")).

Weights: the authors' `dinov2_vit{s,b,l,g}14_pretrain.pth`, read without executing pickled
code (gan_jax.metrics.torch_format), checked tensor by tensor against the arch, and
converted (transposes only, so nothing is cached: ViT-L/14's 1.2 GB load in about 5 s).
Nothing is downloaded. No hash of the released files is published (the hub loads them with
check_hash=False), so the provenance records the file's sha256 without judging it.

`gan_jax.metrics.dinov2(...)` (the package's lazy builder) is `dinov2` here.
"""

from __future__ import annotations

import functools
import math
import os
import re
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.metrics.inception import WeightsError, _sha256, _unflatten, extract_in_batches
from gan_jax.metrics.torch_format import StateDictError, save_state_dict
from gan_jax.metrics.torch_format import load_state_dict as read_pth

WEIGHTS_ENV = "GAN_JAX_DINOV2_WEIGHTS"
WEIGHTS_URL_BASE = "https://dl.fbaipublicfiles.com/dinov2"
PATCH_SIZE = 14
PRETRAIN_SIZE = 518  # the hub models' img_size: 37 x 37 patches of position embeddings
POS_GRID = PRETRAIN_SIZE // PATCH_SIZE
INTERPOLATE_OFFSET = 0.1
LN_EPS = 1e-6
INPUT_SIZE = 224
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESIZER = (
    "uint8 pixels round((x + 1) * 127.5), then PIL's Image.resize((224, 224), BICUBIC) on 8-bit RGB "
    "(antialiased when shrinking; horizontal pass first, as Pillow < 13; torchvision Resize on a PIL "
    "image, dgm-eval's DINOv2 transform with clean_resize=False), reproduced bit for bit"
)
NORMALISATION = "pixels / 255, ImageNet mean (0.485, 0.456, 0.406) and std (0.229, 0.224, 0.225)"
PRECISION = jax.lax.Precision.HIGHEST  # full float32 matmuls on every backend (no TF32 on GPUs)


@dataclass(frozen=True)
class Arch:
    """A DINOv2 ViT's shape; `ffn` is "mlp" (GELU MLP) or "swiglu" (the fused SwiGLU of ViT-g)."""

    embed_dim: int
    depth: int
    num_heads: int
    ffn: str = "mlp"
    name: str = "custom"

    @property
    def hidden_dim(self) -> int:
        hidden = 4 * self.embed_dim
        return (int(hidden * 2 / 3) + 7) // 8 * 8 if self.ffn == "swiglu" else hidden

    @property
    def title(self) -> str:
        if ARCHS.get(self.name) == self:
            return f"dinov2_{self.name} ({weights_file(self)})"
        return f"the {self.name} DINOv2 ViT (embed dim {self.embed_dim}, {self.depth} blocks, {self.ffn})"


ARCHS = {
    "vits14": Arch(384, 12, 6, "mlp", "vits14"),
    "vitb14": Arch(768, 12, 12, "mlp", "vitb14"),
    "vitl14": Arch(1024, 24, 16, "mlp", "vitl14"),
    "vitg14": Arch(1536, 40, 24, "swiglu", "vitg14"),
}
DEFAULT_ARCH = "vitl14"


def get_arch(arch: str | Arch) -> Arch:
    if isinstance(arch, Arch):
        return arch
    if arch not in ARCHS:
        raise ConfigError(f"DINOv2 arch {arch!r}: valid values are {', '.join(ARCHS)}")
    return ARCHS[arch]


def weights_file(arch: str | Arch) -> str:
    return f"dinov2_{get_arch(arch).name}_pretrain.pth"


def weights_url(arch: str | Arch) -> str:
    name = get_arch(arch).name
    return f"{WEIGHTS_URL_BASE}/dinov2_{name}/dinov2_{name}_pretrain.pth"


# --- position embeddings at the input's grid --------------------------------------------


def _cubic_weights(t: np.ndarray) -> np.ndarray:
    """[n] fractions -> [n, 4] weights of PyTorch's cubic convolution (A = -0.75), float32."""
    a = np.float32(-0.75)

    def near(x):  # |x| <= 1
        return ((a + 2) * x - (a + 3)) * x * x + 1

    def far(x):  # 1 < |x| < 2
        return ((a * x - 5 * a) * x + 8 * a) * x - 4 * a

    return np.stack([far(t + 1), near(t), near(1 - t), far(2 - t)], axis=1).astype(np.float32)


def pos_embed_matrix(out_size: int, in_size: int = POS_GRID) -> np.ndarray:
    """[out, in] weights of the authors' position-embedding resize along one axis: F.interpolate
    bicubic, align_corners=False, scale_factor (out + 0.1) / in (so source = (i + 0.5) / scale - 0.5),
    float32 coordinates as PyTorch's CPU kernel computes them, indices clamped at the borders."""
    scale_factor = float(out_size + INTERPOLATE_OFFSET) / in_size
    if math.floor(in_size * scale_factor) != out_size:  # what the authors' assert checks
        raise ValueError(f"position embeddings: {in_size} x {scale_factor} does not give {out_size}")
    scale = np.float32(1.0 / scale_factor)
    source = scale * (np.arange(out_size, dtype=np.float32) + np.float32(0.5)) - np.float32(0.5)
    floor = np.floor(source)
    weights = _cubic_weights(np.clip(source - floor, 0, 1))
    matrix = np.zeros((out_size, in_size), np.float64)
    for tap in range(4):
        index = np.clip(floor.astype(int) - 1 + tap, 0, in_size - 1)
        np.add.at(matrix, (np.arange(out_size), index), weights[:, tap])
    return matrix.astype(np.float32)


def interpolate_pos_embed(pos_embed: jax.Array, rows: int, cols: int) -> jax.Array:
    """[1, 1 + 37 * 37, D] -> [1, 1 + rows * cols, D], as the authors' interpolate_pos_encoding."""
    if (rows, cols) == (POS_GRID, POS_GRID):
        return pos_embed
    dim = pos_embed.shape[-1]
    grid = pos_embed[0, 1:].reshape(POS_GRID, POS_GRID, dim)
    grid = jnp.einsum(
        "ph,hwd,qw->pqd", pos_embed_matrix(rows), grid, pos_embed_matrix(cols), precision=PRECISION
    ).reshape(1, rows * cols, dim)
    return jnp.concatenate([pos_embed[:, :1], grid], axis=1)


# --- the network ------------------------------------------------------------------------


def _dense(features: int, name: str) -> nn.Dense:
    return nn.Dense(features, precision=PRECISION, name=name)


def _layer_norm(name: str) -> nn.LayerNorm:
    return nn.LayerNorm(epsilon=LN_EPS, use_fast_variance=False, name=name)


class LayerScale(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, x):
        return x * self.param("gamma", nn.initializers.ones, (self.dim,))


class Attention(nn.Module):
    dim: int
    num_heads: int

    @nn.compact
    def __call__(self, x):
        batch, tokens, _ = x.shape
        head_dim = self.dim // self.num_heads
        qkv = _dense(3 * self.dim, "qkv")(x).reshape(batch, tokens, 3, self.num_heads, head_dim)
        q, k, v = qkv.transpose(2, 0, 3, 1, 4)  # [batch, heads, tokens, head_dim] each: faster on CPUs
        scores = jnp.einsum("bhqd,bhkd->bhqk", q, k, precision=PRECISION) * head_dim**-0.5
        out = jnp.einsum("bhqk,bhkd->bhqd", jax.nn.softmax(scores, axis=-1), v, precision=PRECISION)
        return _dense(self.dim, "proj")(out.transpose(0, 2, 1, 3).reshape(batch, tokens, self.dim))


class Mlp(nn.Module):
    hidden: int
    dim: int

    @nn.compact
    def __call__(self, x):
        return _dense(self.dim, "fc2")(nn.gelu(_dense(self.hidden, "fc1")(x), approximate=False))


class SwiGLU(nn.Module):
    hidden: int
    dim: int

    @nn.compact
    def __call__(self, x):
        x1, x2 = jnp.split(_dense(2 * self.hidden, "w12")(x), 2, axis=-1)
        return _dense(self.dim, "w3")(nn.silu(x1) * x2)


class Block(nn.Module):
    arch: Arch

    @nn.compact
    def __call__(self, x):
        dim, ffn = self.arch.embed_dim, Mlp if self.arch.ffn == "mlp" else SwiGLU
        x = x + LayerScale(dim, name="ls1")(Attention(dim, self.arch.num_heads, name="attn")(_layer_norm("norm1")(x)))
        return x + LayerScale(dim, name="ls2")(ffn(self.arch.hidden_dim, dim, name="mlp")(_layer_norm("norm2")(x)))


class PatchEmbed(nn.Module):
    dim: int

    @nn.compact
    def __call__(self, x):
        patches = (PATCH_SIZE, PATCH_SIZE)
        return nn.Conv(self.dim, patches, strides=patches, padding="VALID", precision=PRECISION, name="proj")(x)


class DinoVisionTransformer(nn.Module):
    """[N, H, W, 3] normalised images (H, W multiples of 14) -> [N, 1 + H/14 * W/14, D]: the
    final layer norm of every token, class token first (the authors' x_norm_clstoken, then
    x_norm_patchtokens in row-major patch order)."""

    arch: Arch

    @nn.compact
    def __call__(self, x):
        batch, height, width, _ = x.shape
        if height % PATCH_SIZE or width % PATCH_SIZE:
            raise ValueError(f"DINOv2: image size {height}x{width} is not a multiple of the patch size {PATCH_SIZE}")
        dim = self.arch.embed_dim
        rows, cols = height // PATCH_SIZE, width // PATCH_SIZE
        tokens = PatchEmbed(dim, name="patch_embed")(x).reshape(batch, rows * cols, dim)
        cls_token = self.param("cls_token", nn.initializers.zeros, (1, 1, dim))
        pos_embed = self.param("pos_embed", nn.initializers.zeros, (1, 1 + POS_GRID * POS_GRID, dim))
        x = jnp.concatenate([jnp.broadcast_to(cls_token, (batch, 1, dim)), tokens], axis=1)
        x = x + interpolate_pos_embed(pos_embed, rows, cols)
        for index in range(self.arch.depth):
            x = Block(self.arch, name=f"blocks_{index}")(x)
        return _layer_norm("norm")(x)


# --- the weights: PyTorch state dict <-> Flax parameters --------------------------------

_TOP_ORDER = ("cls_token", "pos_embed", "register_tokens", "mask_token", "patch_embed", "blocks", "norm")
_BLOCK_ORDER = ("norm1", "attn.qkv", "attn.proj", "ls1", "norm2", "mlp.fc1", "mlp.fc2", "mlp.w12", "mlp.w3", "ls2")
_LEAF_ORDER = ("weight", "bias", "gamma")


def _authors_order(name: str) -> tuple[int, ...]:
    """The position of a tensor in the authors' state dict: own parameters, patch_embed, blocks, norm."""
    parts = name.split(".")
    if parts[0] == "blocks":
        return (_TOP_ORDER.index("blocks"), int(parts[1]), _BLOCK_ORDER.index(".".join(parts[2:-1])),
                _LEAF_ORDER.index(parts[-1]))  # fmt: skip
    return (_TOP_ORDER.index(parts[0]), 0, 0, _LEAF_ORDER.index(parts[-1]) if len(parts) > 1 else 0)


def _torch_name(path: tuple[str, ...]) -> str:
    """("blocks_3", "attn", "qkv", "kernel") -> "blocks.3.attn.qkv.weight"."""
    *modules, leaf = path
    modules = [re.sub(r"^blocks_(\d+)$", r"blocks.\1", part) for part in modules]
    return ".".join([*modules, {"kernel": "weight", "scale": "weight"}.get(leaf, leaf)])


def _torch_shape(path: tuple[str, ...], shape: tuple[int, ...]) -> tuple[int, ...]:
    if path[-1] != "kernel":
        return shape
    return (shape[3], shape[2], shape[0], shape[1]) if len(shape) == 4 else (shape[1], shape[0])  # HWIO -> OIHW


@functools.lru_cache(maxsize=8)
def _flax_param_shapes(arch: Arch) -> dict[tuple[str, ...], tuple[int, ...]]:
    images = jnp.zeros((1, PATCH_SIZE, PATCH_SIZE, 3))
    shapes = jax.eval_shape(DinoVisionTransformer(arch).init, jax.random.key(0), images)
    flat = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
    return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def state_dict_shapes(arch: str | Arch = DEFAULT_ARCH) -> OrderedDict[str, tuple[int, ...]]:
    """Every tensor of the authors' state dict of this arch (the hub's dinov2_<arch>_pretrain.pth):
    name -> shape, in their order; `mask_token` (masked training only) is checked but not used."""
    arch = get_arch(arch)
    shapes = {_torch_name(path): _torch_shape(path, shape) for path, shape in _flax_param_shapes(arch).items()}
    shapes["mask_token"] = (1, arch.embed_dim)
    return OrderedDict(sorted(shapes.items(), key=lambda item: _authors_order(item[0])))


def looks_like(state_dict: dict[str, np.ndarray]) -> str:
    """What a state dict holds, in words: the DINOv2 arch it matches, or its embed dim, depth, FFN."""
    names = list(state_dict)
    dims = [np.shape(state_dict[n])[-1] for n in ("cls_token", "norm.weight") if n in state_dict]
    if not dims:
        prefix = os.path.commonprefix(names).rpartition(".")[0]
        hint = f"; every name starts with {prefix + '.'!r} (strip it: the backbone's own state dict)" if prefix else ""
        return f"it holds no DINOv2 backbone tensors (no cls_token, no norm.weight){hint}"
    dim = int(dims[0])
    chunked = any(re.match(r"blocks\.\d+\.\d+\.", n) for n in names)
    depth = len({m[1] for n in names if (m := re.match(r"blocks\.(?:\d+\.)?(\d+)\.norm1\.", n))})
    ffn = "swiglu" if any(".mlp.w12." in n for n in names) else "mlp"
    registers = int(np.shape(state_dict["register_tokens"])[1]) if "register_tokens" in names else 0
    patch = int(np.shape(state_dict["patch_embed.proj.weight"])[-1]) if "patch_embed.proj.weight" in names else None
    words = f"embed dim {dim}, {depth} blocks, {'SwiGLU' if ffn == 'swiglu' else 'MLP'} FFN"
    words += f", patch {patch}" if patch not in (None, PATCH_SIZE) else ""
    words += f", {registers} register tokens" if registers else ""
    words += ", chunked blocks (blocks.<chunk>.<block>.: save the hub model's state dict)" if chunked else ""
    matches = [name for name, a in ARCHS.items() if (a.embed_dim, a.depth, a.ffn) == (dim, depth, ffn)]
    if not matches or patch not in (None, PATCH_SIZE):
        return f"it holds a ViT with {words}: none of {', '.join(ARCHS)}"
    if registers:
        return (
            f"it looks like dinov2_{matches[0]}_reg{registers} ({words}): the models with registers are "
            "not built here (dgm-eval's DINOv2 is the one without)"
        )
    return f"it looks like dinov2_{matches[0]} ({words}){'' if chunked else f': pass arch={matches[0]!r}'}"


def check_state_dict(
    state_dict: dict[str, np.ndarray], arch: str | Arch = DEFAULT_ARCH, where: str = "the state dict"
) -> None:
    """Raises WeightsError naming the first missing, wrongly shaped or unexpected tensor (in the
    authors' order), and saying which arch the tensors look like."""
    arch = get_arch(arch)
    expected = state_dict_shapes(arch)

    def fail(problem: str) -> WeightsError:
        return WeightsError(f"{where}: {problem}: not the state dict of {arch.title}; {looks_like(state_dict)}")

    for name, shape in expected.items():
        if name not in state_dict:
            raise fail(f"tensor {name} (shape {shape}) is missing")
        found = tuple(np.shape(state_dict[name]))
        if found != shape:
            raise fail(f"tensor {name} has shape {found}, expected {shape}")
        dtype = np.asarray(state_dict[name]).dtype
        if dtype.kind != "f" and dtype != np.uint16:  # uint16: bfloat16 as the restricted reader returns it
            raise fail(f"tensor {name} holds {dtype}, not floating point numbers")
    extra = [name for name in state_dict if name not in expected]
    if extra:
        more = f" and {len(extra) - 1} more" if len(extra) > 1 else ""
        raise fail(f"unexpected tensor {extra[0]} (shape {tuple(np.shape(state_dict[extra[0]]))}){more}")


def _float32(array: np.ndarray) -> np.ndarray:
    array = np.asarray(array)
    if array.dtype == np.uint16:  # torch_format's reader returns bfloat16 storages as their bits
        import ml_dtypes

        array = array.view(ml_dtypes.bfloat16)
    return array.astype(np.float32)


def convert_state_dict(state_dict: dict[str, np.ndarray], arch: str | Arch = DEFAULT_ARCH) -> dict[str, np.ndarray]:
    """The authors' names and layouts -> flat Flax parameters {"blocks_0/attn/qkv/kernel": [in, out], ...}:
    Linear weights transposed, the patch conv OIHW -> HWIO, float32."""
    arch = get_arch(arch)
    check_state_dict(state_dict, arch)
    flat = {}
    for path in _flax_param_shapes(arch):
        value = _float32(state_dict[_torch_name(path)])
        if path[-1] == "kernel":
            value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T
        flat["/".join(path)] = np.ascontiguousarray(value)
    return flat


def load_state_dict(path: str | Path, arch: str | Arch = DEFAULT_ARCH) -> dict:
    """Flax variables {"params": ...} of DinoVisionTransformer(arch) from the authors' .pth, read
    without executing pickled code; WeightsError names the first tensor that does not fit."""
    try:
        state_dict = read_pth(path)
    except StateDictError as error:
        raise WeightsError(str(error)) from None
    check_state_dict(state_dict, arch, where=str(path))
    return {"params": _unflatten(convert_state_dict(state_dict, arch))}


def missing_weights_message(path: Path | None, arch: str | Arch = DEFAULT_ARCH) -> str:
    arch = get_arch(arch)
    where = f"{path} does not exist" if path else f"no path given and ${WEIGHTS_ENV} is not set"
    return (
        f"DINOv2 weights not found ({where}). gan_jax needs the authors' state dict {weights_file(arch)} "
        f"(facebookresearch/dinov2, the torch hub's dinov2_{arch.name}); nothing is downloaded at run time. "
        f"Download it by hand from {weights_url(arch)} and pass its path (dinov2(weights_path=..., "
        f"arch={arch.name!r}), eval.dinov2_weights) or set {WEIGHTS_ENV}=/path/to/{weights_file(arch)}."
    )


def load_params(weights_path: str | Path | None = None, arch: str | Arch = DEFAULT_ARCH) -> tuple[dict, str, Path]:
    """(Flax variables, sha256, path) for the weights file ($GAN_JAX_DINOV2_WEIGHTS by default)."""
    arch = get_arch(arch)
    path = weights_path or os.environ.get(WEIGHTS_ENV)
    path = Path(path).expanduser() if path else None
    if path is None or not path.is_file():
        raise WeightsError(missing_weights_message(path, arch))
    return load_state_dict(path, arch), _sha256(path), path


def random_state_dict(arch: str | Arch = DEFAULT_ARCH, seed: int = 0) -> OrderedDict[str, np.ndarray]:
    """A random DINOv2 state dict in the authors' names and layouts (no torch needed).

    Tensor `name` is np.random.default_rng([seed, crc32(name)]).standard_normal(shape) scaled by
    kind, so activations stay O(1) through the blocks: Linear and conv weights by 1/sqrt(fan_in),
    biases by 0.1, cls_token and pos_embed by 0.5, mask_token by 0.02; layer norm weights
    1 + 0.2 N(0, 1); LayerScale gammas uniform in [0.05, 0.5).
    """
    arrays = OrderedDict()
    for name, shape in state_dict_shapes(arch).items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        if name.endswith(".gamma"):
            value = rng.uniform(0.05, 0.5, shape)
        elif name.endswith(".weight") and len(shape) == 1:  # layer norms
            value = 1.0 + 0.2 * rng.standard_normal(shape)
        elif name.endswith(".weight"):
            value = rng.standard_normal(shape) / np.sqrt(np.prod(shape[1:]))
        elif name.endswith(".bias"):
            value = 0.1 * rng.standard_normal(shape)
        else:  # cls_token, pos_embed, mask_token
            value = (0.02 if name == "mask_token" else 0.5) * rng.standard_normal(shape)
        arrays[name] = value.astype(np.float32)
    return arrays


def write_random_state_dict(path: str | Path, arch: str | Arch = DEFAULT_ARCH, seed: int = 0) -> Path:
    """random_state_dict(arch, seed) saved as a PyTorch state dict (gan_jax's writer, no torch)."""
    save_state_dict(random_state_dict(arch, seed), path)
    return Path(path)


# --- preprocessing: dgm-eval's, PIL's bicubic in integer arithmetic ---------------------

PIL_PRECISION_BITS = 32 - 8 - 2


def _pil_bicubic(x: float) -> float:
    """PIL's bicubic_filter (a = -0.5)."""
    x = abs(x)
    if x < 1.0:
        return ((-0.5 + 2.0) * x - (-0.5 + 3.0)) * x * x + 1
    if x < 2.0:
        return (((x - 5) * x + 8) * x - 4) * -0.5
    return 0.0


@functools.lru_cache(maxsize=32)
def pil_bicubic_taps(in_size: int, out_size: int) -> tuple[np.ndarray, np.ndarray]:
    """(index [out, k], weight [out, k] int32) of PIL's 8-bit bicubic resampling along one axis:
    precompute_coeffs (support 2 x max(scale, 1), weights normalised to sum 1) then
    normalize_coeffs_8bpc (rounded to 22-bit fixed point, halves away from zero)."""
    scale = in_size / out_size
    filterscale = max(scale, 1.0)
    support = 2.0 * filterscale
    ksize = int(math.ceil(support)) * 2 + 1
    index = np.zeros((out_size, ksize), np.int32)
    weight = np.zeros((out_size, ksize), np.int64)
    for xx in range(out_size):
        center = (xx + 0.5) * scale
        inverse = 1.0 / filterscale
        xmin = max(int(center - support + 0.5), 0)  # C's (int): toward zero
        count = min(int(center + support + 0.5), in_size) - xmin
        taps = [_pil_bicubic((x + xmin - center + 0.5) * inverse) for x in range(count)]
        total = 0.0
        for tap in taps:  # summed in order, as the C loop
            total += tap
        for x, tap in enumerate(taps):
            k = tap / total if total != 0.0 else tap
            weight[xx, x] = int(k * (1 << PIL_PRECISION_BITS) + (0.5 if k >= 0 else -0.5))
        index[xx, :count] = np.arange(xmin, xmin + count)
        index[xx, count:] = xmin  # weight 0
    return index, weight.astype(np.int32)


def _pil_resample_axis(pixels: jax.Array, out_size: int, axis: int) -> jax.Array:
    """One of PIL's 8-bit passes along `axis` of int32 pixels: sum of pixel x weight from 2^21,
    shifted right by 22 bits and clipped to [0, 255]."""
    in_size = pixels.shape[axis]
    if in_size == out_size:  # PIL skips the pass
        return pixels
    index, weight = pil_bicubic_taps(in_size, out_size)
    shape = [1] * pixels.ndim
    shape[axis] = out_size
    total = jnp.full((), 1 << (PIL_PRECISION_BITS - 1), jnp.int32)
    for tap in range(index.shape[1]):
        total = total + jnp.take(pixels, index[:, tap], axis=axis) * weight[:, tap].reshape(shape)
    return jnp.clip(jnp.right_shift(total, PIL_PRECISION_BITS), 0, 255)


def to_pixels(images: jax.Array) -> jax.Array:
    """[-1, 1] -> integer pixels round((x + 1) * 127.5) as int32, what gan_jax.plots.to_uint8 writes."""
    return jnp.round((jnp.clip(images, -1.0, 1.0) + 1.0) * 127.5).astype(jnp.int32)


def pil_resize(pixels: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
    """int32 pixels [N, H, W, C] in [0, 255] -> [N, size, size, C]: PIL's Image.resize((size, size),
    BICUBIC) on 8-bit images, bit for bit (horizontal pass, rounded to 8 bits, then vertical)."""
    return _pil_resample_axis(_pil_resample_axis(pixels, size, axis=2), size, axis=1)


def preprocess(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
    """Images [N, H, W, 1|3] in [-1, 1] -> [N, size, size, 3] float32, as dgm-eval feeds DINOv2:
    uint8 pixels, PIL bicubic to size x size, / 255, ImageNet mean and std."""
    resized = pil_resize(to_pixels(images), size).astype(jnp.float32) / 255.0
    if resized.shape[-1] == 1:
        resized = jnp.repeat(resized, 3, axis=-1)
    return (resized - jnp.asarray(IMAGENET_MEAN, jnp.float32)) / jnp.asarray(IMAGENET_STD, jnp.float32)


# --- the extractor --------------------------------------------------------------------


@dataclass
class DINOv2Features:
    """images [N, H, W, 1|3] in [-1, 1] -> (features [N, D] float32 NumPy, None): the class token."""

    variables: dict
    arch: Arch
    weights_sha256: str
    weights_path: Path
    batch_size: int = 50
    progress: bool = True
    provenance: dict = field(init=False)

    def __post_init__(self):
        a = self.arch
        self.provenance = {
            "features": "dinov2",
            "network": (
                f"DINOv2 {a.name} (facebookresearch/dinov2 backbone; class token of the final layer norm, "
                f"{a.embed_dim}; pos-embed bicubic from 37x37, offset 0.1)"
            ),
            "arch": a.name,
            "feature_source": "x_norm_clstoken",
            "weights": self.weights_path.name,
            "weights_sha256": self.weights_sha256,
            "resizer": RESIZER,
            "input_size": INPUT_SIZE,
            "normalisation": NORMALISATION,
        }
        network = DinoVisionTransformer(a)

        def class_token(variables: dict, batch: jax.Array) -> tuple[jax.Array]:
            tokens: jax.Array = network.apply(variables, preprocess(batch))  # type: ignore[assignment]  # Flax: Any | tuple
            return (tokens[:, 0],)

        self._extract = jax.jit(class_token)

    def __call__(self, images) -> tuple[np.ndarray, None]:
        (features,) = extract_in_batches(
            lambda batch: self._extract(self.variables, batch),
            images,
            self.batch_size,
            self.progress,
            f"DINOv2 {self.arch.name} features",
        )
        return features, None


def dinov2(
    weights_path: str | Path | None = None, arch: str = DEFAULT_ARCH, batch_size: int = 50, progress: bool = True
) -> DINOv2Features:
    """DINOv2 as a callable: images in [-1, 1], NHWC, any size, 1 or 3 channels -> (class-token
    features [N, D] NumPy, None). `weights_path`: the authors' dinov2_<arch>_pretrain.pth
    (default: $GAN_JAX_DINOV2_WEIGHTS); `arch`: vits14, vitb14, vitl14 (dgm-eval's default), vitg14."""
    variables, sha256, path = load_params(weights_path, arch)
    return DINOv2Features(variables, get_arch(arch), sha256, path, batch_size, progress)
