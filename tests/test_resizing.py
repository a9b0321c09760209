"""Resizers by name (gan_jax.metrics.resize) against clean-fid's own, on random uint8 images."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gan_jax import metrics
from gan_jax.metrics import resizing

FIXTURES = Path(__file__).parent / "data" / "resize"


def _inputs(case: str) -> np.ndarray:
    # The fixture script's inputs, rebuilt from its seeds (importing it needs clean-fid).
    (height, width), _ = {"up": ((20, 30), 48), "down": ((64, 64), 28), "odd": ((33, 47), 40)}[case]
    return np.random.default_rng(sum(map(ord, case))).integers(0, 256, (1, height, width, 3)).astype(np.uint8)


@pytest.mark.parametrize("case", ["up", "down", "odd"])
def test_every_mode_equals_clean_fids_resizer(case):
    """PIL's modes to 1e-5 relative; the legacy mode (a float64 matrix product here, float32
    F.interpolate there) to 1e-5 of the pixel range."""
    expected = np.load(FIXTURES / "clean_fid_resize.npz")
    images = _inputs(case)
    size = expected[f"{case}/bicubic"].shape[1]
    for mode, theirs in (("clean", "bicubic"), *((m, m) for m in resizing.PIL_FILTERS)):
        ours = metrics.resize(images, size, mode)
        np.testing.assert_allclose(ours, expected[f"{case}/{theirs}"], rtol=1e-5, atol=1e-4, err_msg=mode)
    legacy = metrics.resize(images, size, "legacy_pytorch")
    np.testing.assert_allclose(legacy, expected[f"{case}/legacy_pytorch"], rtol=0, atol=1e-5 * 255)


def test_float_images_keep_their_range_and_equal_the_uint8_path():
    images = _inputs("odd")
    as_float = images.astype(np.float32) / 127.5 - 1.0
    for mode in resizing.MODES:
        np.testing.assert_allclose(
            metrics.resize(as_float, 40, mode), metrics.resize(images, 40, mode) / 127.5 - 1.0, atol=1e-5
        )


def test_legacy_pytorch_is_the_inception_resize():
    """The legacy mode is the FID Inception's own resize (every existing FID fixture holds)."""
    import jax.numpy as jnp

    from gan_jax.metrics import inception

    images = _inputs("down").astype(np.float32) / 127.5 - 1.0
    np.testing.assert_allclose(
        metrics.resize(images, 99, "legacy_pytorch"),
        np.asarray(inception.resize_like_torch(jnp.asarray(images), 99)),
        atol=1e-5,
    )


def test_quantize_rounds_to_the_levels_of_a_saved_image():
    x = np.array([-1.0, -0.99, 0.0, 0.5, 1.2], np.float32)
    levels = (metrics.quantize(x) + 1.0) * 127.5
    np.testing.assert_allclose(levels, np.round(levels), atol=1e-4)
    np.testing.assert_allclose(metrics.quantize(x)[[0, 4]], [-1.0, 1.0])


def test_an_unknown_mode_names_the_valid_ones():
    with pytest.raises(ValueError, match="valid modes are legacy_pytorch, clean, nearest"):
        metrics.resize(np.zeros((1, 4, 4, 1), np.uint8), 2, "antialiased")
