"""The Flax DINOv2 against the authors' code (facebookresearch/dinov2) and dgm-eval's preprocessing, without torch.

The fixtures in tests/data/dinov2 were computed once by make_fixtures.py there: the authors'
ViT-S/14, built as the torch hub builds it, loaded (strictly) with gan_jax's random weights,
fed through dgm-eval's DINOv2 transform; a tiny SwiGLU ViT saved by torch.save; the names and
shapes of all four hub backbones. Here the same random weights are made again from their seed.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from gan_jax import metrics
from gan_jax.errors import ConfigError
from gan_jax.metrics import dino as dinov2
from gan_jax.metrics import torch_format
from gan_jax.metrics.inception import WeightsError

DATA = Path(__file__).parent / "data" / "dinov2"
SOURCE_SETS = ("rgb_40x36", "grey_28", "rgb_200x180")
TINY = dinov2.Arch(embed_dim=24, depth=2, num_heads=2, ffn="swiglu", name="tiny")


def close(ours, theirs, rtol=1e-4, what=""):
    """Equal to rtol relative to the reference's largest magnitude (elementwise atol = rtol * max|theirs|)."""
    np.testing.assert_allclose(ours, theirs, rtol=rtol, atol=rtol * np.abs(theirs).max(), err_msg=what)


def normalised(pixels: np.ndarray) -> np.ndarray:
    """uint8 NHWC -> ToTensor's / 255 and Normalize's (x - mean) / std in float32 (NHWC)."""
    x = pixels.astype(np.float32) / np.float32(255)
    return (x - np.float32(dinov2.IMAGENET_MEAN)) / np.float32(dinov2.IMAGENET_STD)


def to_unit(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float32) / 127.5 - 1.0


@pytest.fixture(scope="module")
def references():
    with np.load(DATA / "references.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def vits14_variables():
    return {"params": dinov2._unflatten(dinov2.convert_state_dict(dinov2.random_state_dict("vits14"), "vits14"))}


def test_state_dict_layout_is_the_authors():
    """Every hub backbone's tensor names, shapes and order (ViT-L/14's from the Flax model's own shapes)."""
    expected = json.loads((DATA / "state_dict_shapes.json").read_text())["shapes"]
    for arch in dinov2.ARCHS:
        ours = {name: list(shape) for name, shape in dinov2.state_dict_shapes(arch).items()}
        assert list(ours.items()) == list(expected[arch].items()), arch


def test_random_vits14_matches_the_authors_through_dgm_evals_transform(references, tmp_path):
    path = dinov2.write_random_state_dict(tmp_path / "dinov2_vits14_random.pth", "vits14", seed=0)
    extract = metrics.dinov2(path, arch="vits14", batch_size=2, progress=False)
    provenance = extract.provenance
    assert provenance["features"] == "dinov2" and provenance["arch"] == "vits14"
    assert provenance["weights"] == path.name and len(provenance["weights_sha256"]) == 64
    assert "PIL" in provenance["resizer"] and "BICUBIC" in provenance["resizer"]
    assert "0.485" in provenance["normalisation"]
    for name in SOURCE_SETS:
        features, logits = extract(to_unit(references[f"src_{name}"]))
        assert logits is None and features.dtype == np.float32
        assert features.shape == references[f"cls_{name}"].shape == (len(features), 384)
        close(features, references[f"cls_{name}"], what=name)


@pytest.mark.slow  # make test's budget; the dgm-eval pipeline test covers a non-square input
def test_pos_embed_interpolation_on_a_non_square_grid(references, vits14_variables):
    """98x126 pixels = 7x9 patches: the class token and every normed patch token of the authors'."""
    network = dinov2.DinoVisionTransformer(dinov2.ARCHS["vits14"])
    tokens = np.asarray(jax.jit(network.apply)(vits14_variables, normalised(references["grid_images"])))
    assert tokens.shape == (2, 1 + 7 * 9, 384)
    close(tokens[:, 0], references["grid_cls"], what="class tokens")
    close(tokens[0, 1:], references["grid_patch0"], what="patch tokens")
    pos_embed = jnp.asarray(dinov2.random_state_dict("vits14")["pos_embed"])
    for rows, cols in ((16, 16), (7, 9), (37, 37), (2, 40)):
        ours = np.asarray(dinov2.interpolate_pos_embed(pos_embed, rows, cols))[0, :, :8]
        close(ours, references[f"pos_{rows}x{cols}"], rtol=1e-5, what=f"{rows}x{cols}")


def test_offset_scale_factor_is_the_authors_arithmetic():
    """F.interpolate(scale_factor=(16 + 0.1) / 37): output i reads source (i + 0.5) * 37 / 16.1 - 0.5, not
    (i + 0.5) * 37 / 16 - 0.5 (what size=16 would give); cubic convolution A = -0.75, borders clamped."""

    def cubic(x):  # Keys' kernel, A = -0.75
        x = abs(x)
        return 1.25 * x**3 - 2.25 * x**2 + 1 if x <= 1 else (-0.75 * (x**3 - 5 * x**2 + 8 * x - 4) if x < 2 else 0.0)

    def matrix(scale):
        out = np.zeros((16, 37))
        for i in range(16):
            source = (i + 0.5) * scale - 0.5
            for tap in range(int(np.floor(source)) - 1, int(np.floor(source)) + 3):
                out[i, min(max(tap, 0), 36)] += cubic(source - tap)
        return out

    ours = dinov2.pos_embed_matrix(16)
    np.testing.assert_allclose(ours, matrix(37 / 16.1), atol=1e-5)  # ours: float32 coordinates, as PyTorch
    assert np.abs(ours - matrix(37 / 16)).max() > 0.05
    np.testing.assert_allclose(ours.sum(axis=1), 1.0, rtol=1e-6)


def test_preprocessing_is_dgm_evals(references):
    """Pixels after dgm-eval's transform's resize, bit for bit; then its float32 normalisation."""
    for name in ("rgb_40x36", "rgb_200x180"):
        images = jnp.asarray(to_unit(references[f"src_{name}"][:1]))
        pixels = np.asarray(dinov2.pil_resize(dinov2.to_pixels(images)))
        np.testing.assert_array_equal(pixels, references[f"pre_{name}"], err_msg=name)
        ours = np.asarray(jax.jit(dinov2.preprocess)(images))
        np.testing.assert_allclose(ours, normalised(references[f"pre_{name}"]), rtol=0, atol=1e-6)


def _pil_resized(image: np.ndarray) -> np.ndarray:
    pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
    return np.asarray(pil.resize((224, 224), Image.BICUBIC)).reshape(224, 224, image.shape[-1])


@pytest.mark.parametrize(
    ("height", "width", "channels"), [(28, 28, 1), (32, 32, 3), (40, 36, 3), (224, 224, 3), (224, 300, 3), (97, 513, 3)]
)
def test_resize_is_pils_bit_for_bit(height, width, channels):
    rng = np.random.default_rng(height * 1000 + width)
    pixels = rng.integers(0, 256, (2, height, width, channels), dtype=np.uint8)
    pixels[0, : height // 2] = 255  # edges saturate: PIL's clip to [0, 255]
    pixels[0, height // 2 :, : width // 3] = 0
    ours = np.asarray(dinov2.pil_resize(jnp.asarray(pixels, jnp.int32)))
    for image, resized in zip(pixels, ours, strict=True):
        np.testing.assert_array_equal(resized, _pil_resized(image))


@pytest.mark.slow  # make test's budget
def test_tall_images_are_resized_horizontally_first():
    """PIL before 13 (dgm-eval pins 9.2.0) always resamples horizontally, then vertically. Pillow 13
    (python-pillow/Pillow#9549) goes vertically first when the height shrinks much more than the
    width (here 513x97): then each pass is still ours, in the other order."""
    import PIL

    pixels = np.random.default_rng(1).integers(0, 256, (1, 513, 97, 3), dtype=np.uint8)
    horizontal_first = np.asarray(dinov2.pil_resize(jnp.asarray(pixels, jnp.int32)))[0]
    if int(PIL.__version__.split(".")[0]) < 13:
        np.testing.assert_array_equal(horizontal_first, _pil_resized(pixels[0]))
    else:
        vertical = dinov2._pil_resample_axis(jnp.asarray(pixels, jnp.int32), 224, axis=1)
        vertical_first = np.asarray(dinov2._pil_resample_axis(vertical, 224, axis=2))[0]
        np.testing.assert_array_equal(vertical_first, _pil_resized(pixels[0]))
        assert (vertical_first != horizontal_first).any()  # the order matters: 28% of the values here


def test_pixels_are_the_ones_gan_sample_writes():
    from gan_jax.plots import to_uint8

    rng = np.random.default_rng(0)
    halves = (np.arange(256, dtype=np.float32) + 0.5) / 127.5 - 1.0  # ties of round()
    images = np.concatenate([rng.uniform(-1.2, 1.2, 4000).astype(np.float32), halves, np.float32([-1, 0, 1])])
    ours = np.asarray(jax.jit(dinov2.to_pixels)(jnp.asarray(images)))
    np.testing.assert_array_equal(ours, to_uint8(images))
    every = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(np.asarray(dinov2.to_pixels(jnp.asarray(to_unit(every)))), every)


@pytest.mark.slow  # ViT-g/14's feed-forward; make test-all
def test_swiglu_file_written_by_torch(references):
    """A 2-block SwiGLU ViT (ViT-g/14's FFN) from a file torch.save wrote, read without torch."""
    path = DATA / "tiny_swiglu.pth"
    assert list(torch_format.read_state_dict(path)) == list(dinov2.state_dict_shapes(TINY))
    variables = dinov2.load_state_dict(path, TINY)
    tokens = np.asarray(dinov2.DinoVisionTransformer(TINY).apply(variables, normalised(references["tiny_images"])))
    close(tokens[:, 0], references["tiny_cls"], what="class token")
    close(tokens[0, 1:], references["tiny_patch"], what="patch tokens")
    pos = np.asarray(dinov2.interpolate_pos_embed(variables["params"]["pos_embed"], 3, 4))[0, :, :8]
    close(pos, references["tiny_pos_3x4"], rtol=1e-5)


def test_wrong_tensors_are_named(tmp_path):
    small = dinov2.random_state_dict("vits14")
    with pytest.raises(
        WeightsError,
        match=r"tensor cls_token has shape \(1, 1, 384\), expected \(1, 1, 1024\): not the state dict of "
        r"dinov2_vitl14 \(dinov2_vitl14_pretrain\.pth\); it looks like dinov2_vits14 \(embed dim 384, "
        r"12 blocks, MLP FFN\): pass arch='vits14'",
    ):
        dinov2.check_state_dict(small, "vitl14")
    dinov2.check_state_dict(small, "vits14")
    missing = {k: v for k, v in small.items() if k != "blocks.3.attn.qkv.bias"}
    with pytest.raises(WeightsError, match=r"tensor blocks\.3\.attn\.qkv\.bias \(shape \(1152,\)\) is missing"):
        dinov2.check_state_dict(missing, "vits14")
    registers = dict(small, register_tokens=np.zeros((1, 4, 384), np.float32))
    with pytest.raises(
        WeightsError, match=r"unexpected tensor register_tokens \(shape \(1, 4, 384\)\).*dinov2_vits14_reg4"
    ):
        dinov2.check_state_dict(registers, "vits14")
    wrapped = {f"teacher.backbone.{k}": v for k, v in list(small.items())[:4]}
    with pytest.raises(WeightsError, match=r"is missing.*every name starts with 'teacher\.backbone\.'"):
        dinov2.check_state_dict(wrapped, "vits14")
    integers = dict(small, **{"norm.bias": np.zeros(384, np.int64)})
    with pytest.raises(WeightsError, match=r"tensor norm\.bias holds int64"):
        dinov2.check_state_dict(integers, "vits14")
    # Through a file, named by its path.
    torch_format.save_state_dict({k: small[k] for k in ("cls_token", "pos_embed")}, tmp_path / "partial.pth")
    with pytest.raises(WeightsError, match=r"partial\.pth: tensor mask_token \(shape \(1, 384\)\) is missing"):
        dinov2.dinov2(tmp_path / "partial.pth", arch="vits14")
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(WeightsError, match="junk.pth"):
        dinov2.dinov2(tmp_path / "junk.pth", arch="vits14")


def test_missing_weights_say_what_to_get(tmp_path, monkeypatch):
    monkeypatch.delenv(dinov2.WEIGHTS_ENV, raising=False)
    for given in (None, tmp_path / "nowhere.pth"):
        with pytest.raises(WeightsError) as error:
            metrics.dinov2(given)
        message = str(error.value)
        for needed in (
            "dinov2_vitl14_pretrain.pth",
            "https://dl.fbaipublicfiles.com/dinov2/dinov2_vitl14/dinov2_vitl14_pretrain.pth",
            dinov2.WEIGHTS_ENV,
            "eval.dinov2_weights",
            "nothing is downloaded",
        ):
            assert needed in message
    assert "nowhere.pth does not exist" in message
    with pytest.raises(WeightsError, match="dinov2_vits14_pretrain.pth"):
        metrics.dinov2(None, arch="vits14")
    with pytest.raises(ConfigError, match="vits14, vitb14, vitl14, vitg14"):
        metrics.dinov2(None, arch="vith14")


def test_weights_from_the_environment(monkeypatch):
    monkeypatch.setenv(dinov2.WEIGHTS_ENV, str(DATA / "tiny_swiglu.pth"))
    _, sha256, path = dinov2.load_params(arch=TINY)
    assert path == DATA / "tiny_swiglu.pth" and len(sha256) == 64


def test_images_go_through_the_shared_checks():
    """inception.extract_in_batches' checks (tested with Inception) also guard DINOv2's extractor."""
    variables = dinov2.load_state_dict(DATA / "tiny_swiglu.pth", TINY)
    extract = dinov2.DINOv2Features(variables, TINY, "0" * 64, Path("tiny.pth"), batch_size=2, progress=False)
    images = np.zeros((3, 28, 28, 1), np.float32)
    features, logits = extract(images)
    assert features.shape == (3, 24) and logits is None
    images[1, 3, 3, 0] = np.nan
    with pytest.raises(ValueError, match="1 of 3 hold NaN"):
        extract(images)
    with pytest.raises(ValueError, match="not a multiple of the patch size 14"):
        dinov2.DinoVisionTransformer(TINY).apply(variables, jnp.zeros((1, 30, 28, 3)))
