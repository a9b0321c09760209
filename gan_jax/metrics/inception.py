"""The FID Inception-v3 (TTUR's network, as pytorch-fid ports it) in Flax, with its weights.

    extract = inception_v3("pt_inception-2015-12-05-6726825d.pth")  # or GAN_JAX_INCEPTION_WEIGHTS
    pool, logits = extract(images)  # float images in [-1, 1], NHWC, any size, 1 or 3 channels
    extract.provenance              # network, weights file and sha256, resizer: record with scores

Structure: torchvision's Inception-v3 with pytorch-fid's patches (`FIDInceptionA/C/E_1/E_2`):
average pools exclude the padding, `Mixed_7c` max-pools its pool branch; 1008 classes, no
auxiliary head. Every conv is conv (no bias) + batch norm (eps 1e-3, running statistics) +
ReLU; the batch norm is folded into the conv (kernel, bias) when the weights are converted.
Kernels: PyTorch OIHW -> Flax HWIO. Images are resized to 299x299 exactly as pytorch-fid's
`F.interpolate(mode="bilinear", align_corners=False)` (no antialiasing, also when
shrinking), grey repeated to 3 channels. Outputs: the 2048 pool features (FID, KID, PRDC)
and 1008 logits = pool @ fc.weight.T without fc.bias (the original IS code's and
torch-fidelity's `logits_unbiased`, for the Inception Score).

Weights: pytorch-fid's state dict `pt_inception-2015-12-05-6726825d.pth`, read without
executing pickled code (gan_jax.metrics.torch_format), checked key by key, converted once
and cached as .npz keyed by the file's sha256 (in $GAN_JAX_CACHE_DIR, default
~/.cache/gan_jax). Nothing is downloaded.
"""

from __future__ import annotations

import functools
import hashlib
import os
import warnings
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gan_jax.errors import ConfigError
from gan_jax.metrics.resizing import bilinear_matrix
from gan_jax.metrics.torch_format import StateDictError, load_state_dict, save_state_dict

WEIGHTS_FILE = "pt_inception-2015-12-05-6726825d.pth"
WEIGHTS_SHA256_PREFIX = "6726825d"
WEIGHTS_URL = "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/" + WEIGHTS_FILE
WEIGHTS_ENV = "GAN_JAX_INCEPTION_WEIGHTS"
CACHE_ENV = "GAN_JAX_CACHE_DIR"
INPUT_SIZE = 299
BN_EPS = 1e-3
NUM_CLASSES = 1008
POOL_DIM = 2048
RESIZER = "bilinear to 299x299, align_corners=False, no antialias (pytorch-fid's F.interpolate)"


class WeightsError(ConfigError):
    """The feature network's weights are missing or not the expected tensors; the message says what to do."""


class NonStandardWeightsWarning(UserWarning):
    """The weights are not pytorch-fid's standard file: scores are not comparable to published ones."""


# --- the network ------------------------------------------------------------------------


class BasicConv(nn.Module):
    """conv + batch norm (folded into the conv's bias) + ReLU; `padding` is PyTorch's (ph, pw)."""

    features: int
    kernel: tuple[int, int]
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        (ph, pw) = self.padding
        x = nn.Conv(self.features, self.kernel, strides=self.stride, padding=((ph, ph), (pw, pw)), name="conv")(x)
        return nn.relu(x)


def _conv(features, kernel, stride=1, padding=0, name=None):
    kernel = (kernel, kernel) if isinstance(kernel, int) else kernel
    padding = (padding, padding) if isinstance(padding, int) else padding
    return BasicConv(features, kernel, stride, padding, name=name)


def _avg_pool_3x3(x):  # TensorFlow's: the padded zeros are not counted
    return nn.avg_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_3x3_stride_2(x):
    return nn.max_pool(x, (3, 3), strides=(2, 2), padding="VALID")


class FIDInceptionA(nn.Module):
    pool_features: int

    @nn.compact
    def __call__(self, x):
        b1 = _conv(64, 1, name="branch1x1")(x)
        b5 = _conv(64, 5, padding=2, name="branch5x5_2")(_conv(48, 1, name="branch5x5_1")(x))
        b3 = _conv(64, 1, name="branch3x3dbl_1")(x)
        b3 = _conv(96, 3, padding=1, name="branch3x3dbl_3")(_conv(96, 3, padding=1, name="branch3x3dbl_2")(b3))
        bp = _conv(self.pool_features, 1, name="branch_pool")(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b5, b3, bp], axis=-1)


class InceptionB(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = _conv(384, 3, stride=2, name="branch3x3")(x)
        bd = _conv(64, 1, name="branch3x3dbl_1")(x)
        bd = _conv(96, 3, stride=2, name="branch3x3dbl_3")(_conv(96, 3, padding=1, name="branch3x3dbl_2")(bd))
        return jnp.concatenate([b3, bd, _max_pool_3x3_stride_2(x)], axis=-1)


class FIDInceptionC(nn.Module):
    channels_7x7: int

    @nn.compact
    def __call__(self, x):
        c7 = self.channels_7x7
        b1 = _conv(192, 1, name="branch1x1")(x)
        b7 = _conv(c7, 1, name="branch7x7_1")(x)
        b7 = _conv(c7, (1, 7), padding=(0, 3), name="branch7x7_2")(b7)
        b7 = _conv(192, (7, 1), padding=(3, 0), name="branch7x7_3")(b7)
        bd = _conv(c7, 1, name="branch7x7dbl_1")(x)
        bd = _conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_2")(bd)
        bd = _conv(c7, (1, 7), padding=(0, 3), name="branch7x7dbl_3")(bd)
        bd = _conv(c7, (7, 1), padding=(3, 0), name="branch7x7dbl_4")(bd)
        bd = _conv(192, (1, 7), padding=(0, 3), name="branch7x7dbl_5")(bd)
        bp = _conv(192, 1, name="branch_pool")(_avg_pool_3x3(x))
        return jnp.concatenate([b1, b7, bd, bp], axis=-1)


class InceptionD(nn.Module):
    @nn.compact
    def __call__(self, x):
        b3 = _conv(320, 3, stride=2, name="branch3x3_2")(_conv(192, 1, name="branch3x3_1")(x))
        b7 = _conv(192, 1, name="branch7x7x3_1")(x)
        b7 = _conv(192, (1, 7), padding=(0, 3), name="branch7x7x3_2")(b7)
        b7 = _conv(192, (7, 1), padding=(3, 0), name="branch7x7x3_3")(b7)
        b7 = _conv(192, 3, stride=2, name="branch7x7x3_4")(b7)
        return jnp.concatenate([b3, b7, _max_pool_3x3_stride_2(x)], axis=-1)


class FIDInceptionE(nn.Module):
    """E_1 (Mixed_7b) average-pools its pool branch; E_2 (Mixed_7c) max-pools it, as TF's graph."""

    max_pool: bool

    @nn.compact
    def __call__(self, x):
        b1 = _conv(320, 1, name="branch1x1")(x)
        b3 = _conv(384, 1, name="branch3x3_1")(x)
        b3 = [
            _conv(384, (1, 3), padding=(0, 1), name="branch3x3_2a")(b3),
            _conv(384, (3, 1), padding=(1, 0), name="branch3x3_2b")(b3),
        ]
        bd = _conv(384, 3, padding=1, name="branch3x3dbl_2")(_conv(448, 1, name="branch3x3dbl_1")(x))
        bd = [
            _conv(384, (1, 3), padding=(0, 1), name="branch3x3dbl_3a")(bd),
            _conv(384, (3, 1), padding=(1, 0), name="branch3x3dbl_3b")(bd),
        ]
        pooled = nn.max_pool(x, (3, 3), strides=(1, 1), padding=((1, 1), (1, 1))) if self.max_pool else _avg_pool_3x3(x)
        bp = _conv(192, 1, name="branch_pool")(pooled)
        return jnp.concatenate([b1, *b3, *bd, bp], axis=-1)


class FIDInceptionV3(nn.Module):
    """[N, 299, 299, 3] in [-1, 1] -> (pool [N, 2048], logits [N, 1008] without the fc bias)."""

    @nn.compact
    def __call__(self, x):
        x = _conv(32, 3, stride=2, name="Conv2d_1a_3x3")(x)
        x = _conv(32, 3, name="Conv2d_2a_3x3")(x)
        x = _conv(64, 3, padding=1, name="Conv2d_2b_3x3")(x)
        x = _max_pool_3x3_stride_2(x)
        x = _conv(80, 1, name="Conv2d_3b_1x1")(x)
        x = _conv(192, 3, name="Conv2d_4a_3x3")(x)
        x = _max_pool_3x3_stride_2(x)
        x = FIDInceptionA(32, name="Mixed_5b")(x)
        x = FIDInceptionA(64, name="Mixed_5c")(x)
        x = FIDInceptionA(64, name="Mixed_5d")(x)
        x = InceptionB(name="Mixed_6a")(x)
        x = FIDInceptionC(128, name="Mixed_6b")(x)
        x = FIDInceptionC(160, name="Mixed_6c")(x)
        x = FIDInceptionC(160, name="Mixed_6d")(x)
        x = FIDInceptionC(192, name="Mixed_6e")(x)
        x = InceptionD(name="Mixed_7a")(x)
        x = FIDInceptionE(max_pool=False, name="Mixed_7b")(x)
        x = FIDInceptionE(max_pool=True, name="Mixed_7c")(x)
        pool = jnp.mean(x, axis=(1, 2))
        logits = nn.Dense(NUM_CLASSES, use_bias=False, name="fc")(pool)
        return pool, logits


# --- the weights: PyTorch state dict <-> Flax parameters --------------------------------


@functools.lru_cache(maxsize=1)
def _flax_param_shapes() -> dict[tuple[str, ...], tuple[int, ...]]:
    shapes = jax.eval_shape(FIDInceptionV3().init, jax.random.key(0), jnp.zeros((1, INPUT_SIZE, INPUT_SIZE, 3)))
    flat = jax.tree_util.tree_flatten_with_path(shapes["params"])[0]
    return {tuple(k.key for k in path): tuple(leaf.shape) for path, leaf in flat}


def state_dict_shapes() -> OrderedDict[str, tuple[int, ...]]:
    """Every tensor of pytorch-fid's FID Inception state dict: name -> shape (num_batches_tracked optional)."""
    out: OrderedDict[str, tuple[int, ...]] = OrderedDict()
    for path, shape in _flax_param_shapes().items():
        if path[-1] != "kernel" or path[0] == "fc":
            continue
        name = ".".join(path[:-2])  # drop ("conv", "kernel")
        kh, kw, cin, cout = shape
        out[f"{name}.conv.weight"] = (cout, cin, kh, kw)
        for stat in ("weight", "bias", "running_mean", "running_var"):
            out[f"{name}.bn.{stat}"] = (cout,)
        out[f"{name}.bn.num_batches_tracked"] = ()
    out["fc.weight"] = (NUM_CLASSES, POOL_DIM)
    out["fc.bias"] = (NUM_CLASSES,)
    return out


def check_state_dict(state_dict: dict[str, np.ndarray], where: str = "the state dict") -> None:
    """Raises WeightsError naming the first missing, unexpected or wrongly shaped tensor."""
    expected = state_dict_shapes()
    for name, shape in expected.items():
        if name.endswith("num_batches_tracked") and name not in state_dict:
            continue  # bookkeeping, absent from some files
        if name not in state_dict:
            raise WeightsError(
                f"{where}: tensor {name} (shape {shape}) is missing: not pytorch-fid's "
                f"FID Inception state dict ({WEIGHTS_FILE})"
            )
        found = tuple(np.shape(state_dict[name]))
        if found != shape:
            raise WeightsError(
                f"{where}: tensor {name} has shape {found}, expected {shape}: not pytorch-fid's "
                f"FID Inception state dict ({WEIGHTS_FILE})"
            )
    extra = [name for name in state_dict if name not in expected]
    if extra:
        raise WeightsError(
            f"{where}: unexpected tensor {extra[0]} (shape {tuple(np.shape(state_dict[extra[0]]))})"
            f"{f' and {len(extra) - 1} more' if len(extra) > 1 else ''}: not pytorch-fid's "
            f"FID Inception state dict ({WEIGHTS_FILE})"
        )


def convert_state_dict(state_dict: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """PyTorch names and layouts -> flat Flax parameters {"Mixed_5b/branch1x1/conv/kernel": HWIO, ...},
    batch norm folded into each conv in float64."""
    check_state_dict(state_dict)
    flat = {}
    for name in state_dict_shapes():
        if not name.endswith(".conv.weight"):
            continue
        block = name[: -len(".conv.weight")]
        weight = np.asarray(state_dict[name], np.float64)
        bn = {
            s: np.asarray(state_dict[f"{block}.bn.{s}"], np.float64)
            for s in ("weight", "bias", "running_mean", "running_var")
        }
        scale = bn["weight"] / np.sqrt(bn["running_var"] + BN_EPS)
        prefix = block.replace(".", "/") + "/conv/"
        flat[prefix + "kernel"] = (weight * scale[:, None, None, None]).transpose(2, 3, 1, 0).astype(np.float32)
        flat[prefix + "bias"] = (bn["bias"] - bn["running_mean"] * scale).astype(np.float32)
    flat["fc/kernel"] = np.asarray(state_dict["fc.weight"], np.float32).T.copy()
    return flat


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for key, value in flat.items():
        node = tree
        *parents, leaf = key.split("/")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = jnp.asarray(value)
    return tree


def write_random_state_dict(path: str | Path, seed: int = 0) -> Path:
    """A randomly initialised FID Inception saved as a pytorch-fid state dict (no torch needed).

    Every tensor is drawn from NumPy's generator seeded by (seed, crc32 of its name), so
    the file's contents depend only on the seed. Conv weights are He-scaled and the batch
    norms near identity, so activations stay O(1) through the 94 layers.
    """
    arrays = OrderedDict()
    for name, shape in state_dict_shapes().items():
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        kind = name.rsplit(".", 1)[1]
        if name.endswith("num_batches_tracked"):
            arrays[name] = np.array(0, np.int64)
            continue
        if name.endswith("conv.weight"):
            value = rng.standard_normal(shape) * np.sqrt(2.0 / np.prod(shape[1:]))
        elif name == "fc.weight":
            value = rng.standard_normal(shape) / np.sqrt(shape[1])
        elif kind == "weight":
            value = rng.uniform(0.8, 1.2, shape)
        elif kind == "running_var":
            value = rng.uniform(0.5, 1.5, shape)
        else:  # bias, running_mean
            value = 0.1 * rng.standard_normal(shape)
        arrays[name] = value.astype(np.float32)
    save_state_dict(arrays, path)
    return Path(path)


# --- resizing -------------------------------------------------------------------------


def resize_like_torch(images: jax.Array, size: int = INPUT_SIZE) -> jax.Array:
    """[N, H, W, C] -> [N, size, size, 3]: F.interpolate(bilinear, align_corners=False); grey -> 3 channels."""
    if images.shape[-1] == 1:
        images = jnp.repeat(images, 3, axis=-1)
    rows, cols = bilinear_matrix(images.shape[1], size), bilinear_matrix(images.shape[2], size)
    return jnp.einsum("ph,nhwc,qw->npqc", rows, images, cols, precision=jax.lax.Precision.HIGHEST)


# --- the extractor --------------------------------------------------------------------


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gan_jax")


def missing_weights_message(path: Path | None) -> str:
    where = f"{path} does not exist" if path else f"no path given and ${WEIGHTS_ENV} is not set"
    return (
        f"FID Inception weights not found ({where}). gan_jax needs pytorch-fid's state dict "
        f"{WEIGHTS_FILE} (sha256 starting {WEIGHTS_SHA256_PREFIX}, 91 MiB); nothing is downloaded at "
        f"run time. Get it from pytorch-fid's GitHub release ({WEIGHTS_URL}) and pass its path "
        f"(inception_v3(weights_path=...), eval.inception_weights) or set {WEIGHTS_ENV}=/path/to/{WEIGHTS_FILE}."
    )


def load_params(weights_path: str | Path | None = None) -> tuple[dict, str, Path]:
    """(Flax params, sha256, path) for the weights file; converted once, then read from the cache."""
    path = weights_path or os.environ.get(WEIGHTS_ENV)
    path = Path(path).expanduser() if path else None
    if path is None or not path.is_file():
        raise WeightsError(missing_weights_message(path))
    sha256 = _sha256(path)
    if not sha256.startswith(WEIGHTS_SHA256_PREFIX):
        warnings.warn(
            f"{path}: sha256 {sha256[:8]}... is not pytorch-fid's {WEIGHTS_FILE} "
            f"({WEIGHTS_SHA256_PREFIX}...): scores are not comparable to published ones",
            NonStandardWeightsWarning,
            stacklevel=3,
        )
    cached = cache_dir() / "inception_v3" / f"{sha256[:16]}.npz"
    if cached.is_file():
        with np.load(cached) as stored:
            flat = dict(stored)
    else:
        try:
            state_dict = load_state_dict(path)
        except StateDictError as error:
            raise WeightsError(str(error)) from None
        check_state_dict(state_dict, where=str(path))
        flat = convert_state_dict(state_dict)
        cached.parent.mkdir(parents=True, exist_ok=True)
        partial = cached.with_suffix(f".{os.getpid()}.tmp.npz")
        np.savez(partial, **flat)  # type: ignore[arg-type]  # numpy's stubs: **kwds as allow_pickle
        os.replace(partial, cached)  # atomic: concurrent jobs write the same bytes
    return {"params": _unflatten(flat)}, sha256, path


@dataclass
class InceptionFeatures:
    """images [N, H, W, 1|3] in [-1, 1] -> (pool [N, 2048], logits [N, 1008]) as float32 NumPy."""

    variables: dict
    weights_sha256: str
    weights_path: Path
    batch_size: int = 50
    progress: bool = True
    provenance: dict = field(init=False)

    def __post_init__(self):
        self.provenance = {
            "features": "inception_v3",
            "network": "FID Inception-v3 (pytorch-fid port, pool3 2048 / logits 1008)",
            "weights": self.weights_path.name,
            "weights_sha256": self.weights_sha256,
            "standard_weights": self.weights_sha256.startswith(WEIGHTS_SHA256_PREFIX),
            "resizer": RESIZER,
        }
        self._network = jax.jit(FIDInceptionV3().apply)
        self._resize = jax.jit(resize_like_torch)

    def __call__(self, images) -> tuple[np.ndarray, np.ndarray]:
        return extract_in_batches(
            lambda batch: self._network(self.variables, self._resize(batch)),
            images,
            self.batch_size,
            self.progress,
            "Inception-v3 features",
        )


def extract_in_batches(fn, images, batch_size: int, progress: bool, description: str):
    """Applies a jitted `fn` (batch -> tuple of arrays) over `images` in fixed-size batches
    (the last one padded, so one compiled program serves all), concatenated as NumPy."""
    images = np.asarray(images, np.float32)
    if images.ndim != 4 or images.shape[-1] not in (1, 3):
        raise ValueError(f"images: expected [N, H, W, 1 or 3], got shape {images.shape}")
    if not np.isfinite(images).all():
        raise ValueError(
            f"images: {int((~np.isfinite(images)).reshape(len(images), -1).any(1).sum())} of "
            f"{len(images)} hold NaN or inf"
        )
    from tqdm.auto import tqdm

    outputs: list[list[np.ndarray]] = []
    size = batch_size
    with tqdm(total=len(images), desc=description, unit="img", disable=not progress, leave=False) as bar:
        for start in range(0, len(images), size):
            batch = images[start : start + size]
            count = len(batch)
            if count < size:
                batch = np.concatenate([batch, np.zeros((size - count, *batch.shape[1:]), batch.dtype)])
            result = jax.device_get(fn(jnp.asarray(batch)))
            outputs.append([np.asarray(r)[:count] for r in result])
            bar.update(count)
    if not outputs:
        raise ValueError("images: empty")
    return tuple(np.concatenate(parts) for parts in zip(*outputs, strict=True))


def inception_v3(
    weights_path: str | Path | None = None, batch_size: int = 50, progress: bool = True
) -> InceptionFeatures:
    """The FID Inception as a callable: images in [-1, 1], NHWC, any size, 1 or 3 channels ->
    (pool [N, 2048], logits [N, 1008]) NumPy. `weights_path`: pytorch-fid's
    pt_inception-2015-12-05-6726825d.pth (default: $GAN_JAX_INCEPTION_WEIGHTS)."""
    variables, sha256, path = load_params(weights_path)
    return InceptionFeatures(variables, sha256, path, batch_size, progress)
