"""Image resizers by name: the choice that most often makes "my FID does not match the paper".

    from gan_jax.metrics import resize
    resize(images, 299, "clean")            # clean-fid's: PIL bicubic on float32, per channel

Modes (clean-fid's taxonomy; Parmar et al. 2022, "On aliased resizing and surprising
subtleties in GAN evaluation"):
  legacy_pytorch  bilinear, align_corners=False, no antialiasing: pytorch-fid's
                  F.interpolate, and so StyleGAN2-ADA's and StudioGAN's FID
  clean           PIL's bicubic (antialiased) on float32 pixels, channel by channel,
                  clipped to 0..255: clean-fid's `mode="clean"`
  nearest, bilinear, bicubic, lanczos, box
                  PIL's filter of that name, the same way as `clean` (clean = bicubic)

Images are uint8 [N, H, W, C] (pixels 0..255) or float [N, H, W, C] in [-1, 1]; the result
is float32 in the same range, [N, size, size, C] (size: an int, or (height, width)).
"""

from __future__ import annotations

import numpy as np
from PIL import Image

PIL_FILTERS = {
    "nearest": Image.Resampling.NEAREST,
    "bilinear": Image.Resampling.BILINEAR,
    "bicubic": Image.Resampling.BICUBIC,
    "lanczos": Image.Resampling.LANCZOS,
    "box": Image.Resampling.BOX,
}
MODES = ("legacy_pytorch", "clean", *PIL_FILTERS)
DESCRIPTIONS = {
    "legacy_pytorch": "bilinear, align_corners=False, no antialias (pytorch-fid's F.interpolate)",
    "clean": "PIL bicubic on float32 per channel, clipped to 0..255 (clean-fid's clean mode)",
    **{name: f"PIL {name} on float32 per channel, clipped to 0..255" for name in PIL_FILTERS},
}


def resize(images: np.ndarray, size: int | tuple[int, int], mode: str) -> np.ndarray:
    """`images` (uint8 0..255 or float in [-1, 1], NHWC) resized to `size` with `mode`, as float32
    in the input's range."""
    if mode not in MODES:
        raise ValueError(f"resize mode {mode!r}: valid modes are {', '.join(MODES)}")
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images: expected [N, H, W, C], got shape {images.shape}")
    height, width = (size, size) if isinstance(size, int) else size
    pixels = images.astype(np.float32) if images.dtype == np.uint8 else (images.astype(np.float32) + 1.0) * 127.5
    if mode == "legacy_pytorch":
        resized = _bilinear_like_torch(pixels, height, width)
    else:
        resample = PIL_FILTERS.get(mode, Image.Resampling.BICUBIC)  # clean: bicubic
        resized = np.stack([_pil_float(image, height, width, resample) for image in pixels])
    return resized if images.dtype == np.uint8 else resized / 127.5 - 1.0


def _pil_float(image: np.ndarray, height: int, width: int, resample: Image.Resampling) -> np.ndarray:
    channels = [
        np.asarray(Image.fromarray(image[:, :, c], mode="F").resize((width, height), resample=resample))
        for c in range(image.shape[-1])
    ]
    return np.clip(np.stack(channels, axis=-1), 0.0, 255.0).astype(np.float32)


def bilinear_matrix(in_size: int, out_size: int) -> np.ndarray:
    """[out, in] weights of PyTorch's linear interpolation, align_corners=False (no antialias)."""
    scale = in_size / out_size
    src = np.maximum((np.arange(out_size) + 0.5) * scale - 0.5, 0.0)
    low = np.minimum(np.floor(src).astype(int), in_size - 1)
    high = np.minimum(low + 1, in_size - 1)
    frac = (src - low).astype(np.float64)
    matrix = np.zeros((out_size, in_size))
    np.add.at(matrix, (np.arange(out_size), low), 1.0 - frac)
    np.add.at(matrix, (np.arange(out_size), high), frac)
    return matrix.astype(np.float32)


def _bilinear_like_torch(pixels: np.ndarray, height: int, width: int) -> np.ndarray:
    rows, cols = bilinear_matrix(pixels.shape[1], height), bilinear_matrix(pixels.shape[2], width)
    return np.clip(np.einsum("ph,nhwc,qw->npqc", rows, pixels, cols), 0.0, 255.0).astype(np.float32)


def quantize(images: np.ndarray) -> np.ndarray:
    """Float images in [-1, 1] rounded to the 256 levels a saved uint8 image has (clean-fid's
    advice: score what would be written to disk), still in [-1, 1]."""
    return (np.round((np.clip(images, -1.0, 1.0) + 1.0) * 127.5) / 127.5 - 1.0).astype(np.float32)
