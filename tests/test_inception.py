"""The Flax FID Inception against pytorch-fid, without torch.

A randomly initialised FID Inception is written as a pytorch-fid state dict by gan_jax's
own writer (the 91 MiB file is regenerated here from a seed, not committed); its features
of fixed images (resize included) must match the ones pytorch-fid computed once from the
same file (tests/data/make_metric_fixtures.py).
"""

from __future__ import annotations

import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest

from gan_jax import metrics
from gan_jax.metrics import inception, resizing, torch_format

DATA = Path(__file__).parent / "data"
IMAGE_SETS = ("grey_28", "rgb_40x36", "grey_311x303")


@pytest.fixture(scope="module")
def references():
    with np.load(DATA / "inception_references.npz") as f:
        return dict(f)


@pytest.fixture(scope="module")
def random_weights(tmp_path_factory) -> Path:
    return inception.write_random_state_dict(tmp_path_factory.mktemp("inception") / "random.pth", seed=0)


@pytest.fixture(scope="module")
def cache(tmp_path_factory) -> Path:
    """One conversion cache for the module: the weights are converted once."""
    where = tmp_path_factory.mktemp("cache")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv(inception.CACHE_ENV, str(where))
        yield where


def test_state_dict_layout_is_pytorch_fids():
    expected = json.loads((DATA / "inception_state_dict_shapes.json").read_text())["shapes"]
    assert {k: list(v) for k, v in inception.state_dict_shapes().items()} == expected


def test_random_inception_matches_pytorch_fid(random_weights, references, cache):
    with pytest.warns(inception.NonStandardWeightsWarning, match="6726825d"):
        extract = metrics.inception_v3(random_weights, batch_size=3, progress=False)
    assert extract.provenance["standard_weights"] is False
    assert "align_corners=False" in extract.provenance["resizer"]
    for name in IMAGE_SETS:
        images = references[f"images_{name}"].astype(np.float32) / 127.5 - 1.0
        pool, logits = extract(images)
        assert pool.shape == (len(images), 2048) and logits.shape == (len(images), 1008)
        for ours, theirs in ((pool, references[f"pool_{name}"]), (logits, references[f"logits_{name}"])):
            np.testing.assert_allclose(ours, theirs, rtol=1e-5, atol=1e-5 * np.abs(theirs).max(), err_msg=name)
    # Converted once, then read from the cache keyed by the file's hash.
    assert len(list((cache / "inception_v3").glob("*.npz"))) == 1


def test_second_load_reads_the_cache(random_weights, cache, monkeypatch):
    with pytest.warns(inception.NonStandardWeightsWarning):
        first, sha, _ = inception.load_params(random_weights)
    monkeypatch.setattr(inception, "load_state_dict", lambda path: pytest.fail("read the .pth again"))
    with pytest.warns(inception.NonStandardWeightsWarning):
        second, sha_again, _ = inception.load_params(random_weights)
    assert sha == sha_again and (cache / "inception_v3" / f"{sha[:16]}.npz").is_file()
    kernel = ("Mixed_7c", "branch_pool", "conv", "kernel")
    a, b = first["params"], second["params"]
    for key in kernel:
        a, b = a[key], b[key]
    np.testing.assert_array_equal(a, b)


def test_missing_weights_say_what_to_get(tmp_path, monkeypatch):
    monkeypatch.delenv(inception.WEIGHTS_ENV, raising=False)
    for given in (None, tmp_path / "nowhere.pth"):
        with pytest.raises(inception.WeightsError) as error:
            inception.inception_v3(given)
        message = str(error.value)
        for needed in (
            "pt_inception-2015-12-05-6726825d.pth",
            "6726825d",
            "github.com/mseitzer/pytorch-fid/releases",
            inception.WEIGHTS_ENV,
        ):
            assert needed in message
    assert "nowhere.pth does not exist" in message


def test_weights_from_the_environment(random_weights, cache, monkeypatch):
    monkeypatch.setenv(inception.WEIGHTS_ENV, str(random_weights))
    with pytest.warns(inception.NonStandardWeightsWarning):
        _, _, path = inception.load_params()
    assert path == random_weights


def test_wrong_tensors_are_named(tmp_path, cache):
    shapes = inception.state_dict_shapes()
    good = {name: np.zeros(shape, np.float32) for name, shape in shapes.items() if name.startswith("Conv2d_1a")}
    bad = dict(good, **{"Conv2d_1a_3x3.conv.weight": np.zeros((32, 1, 3, 3), np.float32)})
    torch_format.save_state_dict(bad, tmp_path / "bad.pth")
    with (
        pytest.raises(
            inception.WeightsError,
            match=r"Conv2d_1a_3x3\.conv\.weight has shape \(32, 1, 3, 3\), "
            r"expected \(32, 3, 3, 3\)",
        ),
        pytest.warns(inception.NonStandardWeightsWarning),
    ):
        inception.inception_v3(tmp_path / "bad.pth")
    with pytest.raises(
        inception.WeightsError, match=r"Conv2d_2a_3x3\.conv\.weight \(shape \(32, 32, 3, 3\)\) is missing"
    ):
        inception.check_state_dict(good)
    full = {name: np.broadcast_to(np.float32(0), shape) for name, shape in shapes.items()}
    inception.check_state_dict(full)
    with pytest.raises(
        inception.WeightsError, match=r"unexpected tensor AuxLogits\.fc\.weight \(shape \(1008, 768\)\)"
    ):
        inception.check_state_dict(full | {"AuxLogits.fc.weight": np.zeros((1008, 768))})


def test_reader_needs_no_torch_and_runs_no_code(tmp_path):
    try:
        import torch  # noqa: F401

        pytest.skip("torch is installed: the restricted reader is the fallback")
    except ImportError:
        pass
    marker = tmp_path / "ran"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    with zipfile.ZipFile(tmp_path / "evil.pth", "w") as archive:
        archive.writestr("archive/data.pkl", pickle.dumps({"x": Payload()}, protocol=2))
        archive.writestr("archive/version", "3\n")
    with pytest.raises(torch_format.StateDictError, match="refusing to load posix.system"):
        torch_format.load_state_dict(tmp_path / "evil.pth")
    assert not marker.exists()


def test_reader_reads_pytorchs_legacy_format(references):
    loaded = torch_format.read_state_dict(DATA / "legacy_format_state_dict.pth")
    assert list(loaded) == ["conv.weight", "bn.num_batches_tracked", "half", "transposed"]
    for name, value in loaded.items():
        expected = references[f"legacy/{name}"]
        assert value.dtype == expected.dtype and value.shape == expected.shape
        np.testing.assert_array_equal(value, expected)


def test_writer_round_trip(tmp_path):
    arrays = {
        "a": np.arange(12, dtype=np.float32).reshape(3, 4).T,
        "n": np.array(7, np.int64),
        "d": np.linspace(0, 1, 5),
        "flag": np.array([True, False]),
    }
    torch_format.save_state_dict(arrays, tmp_path / "x.pth")
    loaded = torch_format.read_state_dict(tmp_path / "x.pth")
    for name, value in arrays.items():
        assert loaded[name].dtype == value.dtype and loaded[name].shape == value.shape
        np.testing.assert_array_equal(loaded[name], value)


def test_resize_weights():
    same = resizing.bilinear_matrix(7, 7)
    np.testing.assert_allclose(same, np.eye(7))
    for size_in, size_out in ((28, 299), (311, 299), (5, 2)):
        matrix = resizing.bilinear_matrix(size_in, size_out)
        np.testing.assert_allclose(matrix.sum(axis=1), 1.0, rtol=1e-6)
    images = np.zeros((1, 4, 6, 1), np.float32)
    assert inception.resize_like_torch(images).shape == (1, 299, 299, 3)


def test_bad_images_are_refused(random_weights, cache):
    with pytest.warns(inception.NonStandardWeightsWarning):
        extract = inception.inception_v3(random_weights, batch_size=2, progress=False)
    with pytest.raises(ValueError, match=r"\[N, H, W, 1 or 3\]"):
        extract(np.zeros((2, 28, 28)))
    images = np.zeros((3, 28, 28, 1), np.float32)
    images[1, 3, 3, 0] = np.nan
    with pytest.raises(ValueError, match="1 of 3 hold NaN"):
        extract(images)
