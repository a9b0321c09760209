"""Image data from TFDS (Fashion-MNIST prepared from Debian's package) and the DCGAN models."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import compose_config

from gan_jax import feed, parallel
from gan_jax.config import ConfigError, validate
from gan_jax.data import images
from gan_jax.models import dcgan


def _dataset(data_dir, *extra):
    return images.build(compose_config(["dataset=fashion_mnist", f"dataset.data_dir={data_dir}", *extra]).dataset)


def test_fashion_mnist_prepared_from_debian_reads_as_tfds(real_fashion_mnist_dir):
    dataset = _dataset(real_fashion_mnist_dir)
    assert dataset.num_examples == 60000 and dataset.shape == (28, 28, 1)
    batch = dataset.batch(seed=0, index=0, batch_size=32)
    assert batch.shape == (32, 28, 28, 1) and batch.dtype == np.float32
    assert batch.min() == -1.0 and batch.max() == 1.0  # uint8 0 and 255 map to the ends
    assert (real_fashion_mnist_dir / "fashion_mnist" / "3.0.1" / "dataset_info.json").is_file()
    test = _dataset(real_fashion_mnist_dir, "dataset.split=test")
    assert test.num_examples == 10000


def test_idx_files_prepare_into_exactly_their_images_and_labels(fashion_mnist_dir):
    from idx_files import synthetic_images

    dataset = _dataset(fashion_mnist_dir)
    assert dataset.num_examples == 512 and _dataset(fashion_mnist_dir, "dataset.split=test").num_examples == 128
    written, labels = synthetic_images(512, seed=0)
    read = dataset.source.__getitems__(list(range(512)))  # TFDS stores them shuffled
    assert sorted((r["image"][..., 0].tobytes(), int(r["label"])) for r in read) == sorted(
        zip((image.tobytes() for image in written), labels.tolist(), strict=True)
    )
    assert (fashion_mnist_dir / "fashion_mnist" / "3.0.1" / "dataset_info.json").is_file()


def test_tfds_split_slicing_works_unquoted(fashion_mnist_dir):
    """dataset.split=train[:10%] as typed on the command line (the override is quoted for Hydra)."""
    assert _dataset(fashion_mnist_dir, "dataset.split=train[:10%]").num_examples == 51
    assert _dataset(fashion_mnist_dir, "dataset.split=train[:100]").num_examples == 100


def test_idx_files_with_wrong_counts_are_refused(tmp_path):
    from idx_files import write_fashion_mnist_like

    source = write_fashion_mnist_like(tmp_path / "idx", train=16, test=8)
    with pytest.raises(images.DataError, match=r"train-images-idx3-ubyte.gz: .*16 items; expected 60000"):
        images.prepare_fashion_mnist_from_debian(tmp_path / "tfds", source)


def test_batches_depend_only_on_seed_and_index(fashion_mnist_dir):
    dataset = _dataset(fashion_mnist_dir)
    np.testing.assert_array_equal(dataset.batch(3, 7, 16), dataset.batch(3, 7, 16))
    assert not np.array_equal(dataset.batch(3, 7, 16), dataset.batch(4, 7, 16))
    assert not np.array_equal(dataset.batch(3, 7, 16), dataset.batch(3, 8, 16))
    # Each epoch is a permutation: every example once, a different order each epoch.
    n = dataset.num_examples
    first, second = images._epoch_order(3, 0, n), images._epoch_order(3, 1, n)
    assert sorted(first.tolist()) == list(range(n)) and not np.array_equal(first, second)
    np.testing.assert_array_equal(
        dataset.batch(3, n // 16, 16),
        dataset.preprocess(np.stack([dataset.source[int(i)]["image"] for i in second[:16]])),
    )


def test_device_feed_matches_chunk_batches_and_splits_over_devices(fashion_mnist_dir):
    dataset = _dataset(fashion_mnist_dir)
    expected = feed.chunk_batches(dataset, [0, 1], 2, 3, 2, 8)["images"]  # 2 seeds, steps 2..4, 2 D steps
    assert expected.shape == (2, 3, 2, 8, 28, 28, 1)
    np.testing.assert_array_equal(expected[1, 1, 0], dataset.batch(1, 3 * 2 + 0, 8))
    one_device = parallel.DataParallel(tuple(jax.local_devices()[:1]))
    chunks = [c["images"] for c in feed.device_batches(dataset, [0, 1], 2, [1, 2], 2, 8, one_device)]
    assert [c.shape for c in chunks] == [(2, 1, 2, 8, 28, 28, 1), (2, 2, 2, 8, 28, 28, 1)]
    np.testing.assert_array_equal(np.concatenate([chunks[0], chunks[1]], axis=1), expected)
    per_device = parallel.DataParallel(one_device.devices, "pmap")
    chunks = list(feed.device_batches(dataset, [0, 1], 2, [1, 2], 2, 8, per_device, labels=True))
    assert [c["images"].shape for c in chunks] == [(1, 2, 1, 2, 8, 28, 28, 1), (1, 2, 2, 2, 8, 28, 28, 1)]
    assert [c["labels"].shape for c in chunks] == [(1, 2, 1, 2, 8), (1, 2, 2, 2, 8)]
    images = np.concatenate([chunks[0]["images"][0], chunks[1]["images"][0]], axis=1)
    np.testing.assert_array_equal(images, expected)


@pytest.mark.slow  # make test's budget; tests/test_folder_data.py checks grain's workers
def test_worker_processes_read_exactly_the_batches_of_the_training_process(fashion_mnist_dir):
    """dataset.workers changes where batches are decoded, never which batches a step gets."""
    dataset = _dataset(fashion_mnist_dir)
    one_device = parallel.DataParallel(tuple(jax.local_devices()[:1]))

    def read(workers):
        return list(feed.device_batches(dataset, [0, 5], 3, [1, 2, 1], 2, 8, one_device, labels=True, workers=workers))

    in_process, two_workers = read(0), read(2)
    assert len(in_process) == len(two_workers) == 3
    for ours, theirs in zip(in_process, two_workers, strict=True):
        np.testing.assert_array_equal(ours["images"], theirs["images"])
        np.testing.assert_array_equal(ours["labels"], theirs["labels"])
    np.testing.assert_array_equal(two_workers[2]["images"][1, 0, 1], dataset.batch(5, 6 * 2 + 1, 8))


def test_labels_travel_with_their_images(fashion_mnist_dir):
    dataset = _dataset(fashion_mnist_dir)
    assert dataset.num_classes == 10
    batches = feed.chunk_batches(dataset, [3], 0, 1, 2, 16, labels=True)
    images, labels = dataset.labelled_batch(3, 1, 16)
    np.testing.assert_array_equal(batches["images"][0, 0, 1], images)
    np.testing.assert_array_equal(batches["labels"][0, 0, 1], labels)
    # The test images draw a bar whose row says the class (tests/idx_files.py).
    rows = 2 + 2 * labels
    assert np.all(images[np.arange(16), rows + 1, 10, 0] > images[np.arange(16), 0, 10, 0])


def test_resize_and_crop(fashion_mnist_dir):
    dataset = _dataset(fashion_mnist_dir, "dataset.image_size=32", "dataset.crop=24")
    assert dataset.batch(0, 0, 4).shape == (4, 32, 32, 1)
    with pytest.raises(images.DataError, match="dataset.crop=40: larger than fashion_mnist's 28x28"):
        _dataset(fashion_mnist_dir, "dataset.crop=40")


def test_missing_dataset_fails_at_once_naming_it_and_what_to_fetch(tmp_path):
    start = time.perf_counter()
    with pytest.raises(images.DataError) as error:
        images.build(compose_config(["dataset=mnist", f"dataset.data_dir={tmp_path}"]).dataset)
    assert time.perf_counter() - start < 30
    message = str(error.value)
    assert "dataset mnist is not prepared in" in message and "tfds build mnist" in message
    with pytest.raises(images.DataError, match="downloads disabled"):
        images.build(
            compose_config(["dataset=mnist", f"dataset.data_dir={tmp_path}", "dataset.download=false"]).dataset
        )


def test_damaged_data_directory_fails_saying_to_prepare_again(fashion_mnist_dir, tmp_path):
    import shutil

    shutil.copytree(fashion_mnist_dir / "fashion_mnist", tmp_path / "fashion_mnist")
    record = next((tmp_path / "fashion_mnist" / "3.0.1").glob("*train.array_record*"))
    record.write_bytes(record.read_bytes()[:1000])
    with pytest.raises(images.DataError, match="holds a damaged copy of fashion_mnist"):
        _dataset(tmp_path)


def test_unknown_tfds_name_fails():
    with pytest.raises(images.DataError, match="dataset.tfds_name='no_such_data': not a TFDS dataset"):
        images.build(compose_config(["dataset=tfds", "dataset.tfds_name=no_such_data"]).dataset)


@pytest.mark.parametrize("size,channels", [(28, 1), (32, 3), (64, 3)])
@pytest.mark.parametrize("upsample", dcgan.UPSAMPLERS)
def test_dcgan_shapes(size, channels, upsample):
    generator = dcgan.Generator((size, size, channels), 4, upsample)
    discriminator = dcgan.Discriminator((size, size, channels), 4)
    z = jnp.ones((3, 8))
    g_vars = jax.eval_shape(generator.init, jax.random.PRNGKey(0), z)
    images_out = jax.eval_shape(generator.apply, g_vars, z)
    assert images_out.shape == (3, size, size, channels)
    d_vars = jax.eval_shape(discriminator.init, jax.random.PRNGKey(1), images_out)
    assert jax.eval_shape(discriminator.apply, d_vars, images_out).shape == (3, 1)
    assert set(g_vars) == {"params", "batch_stats"}


def test_dcgan_follows_radford_initialisation():
    generator = dcgan.Generator((28, 28, 1), 32, "transpose")
    variables = generator.init(jax.random.PRNGKey(0), jnp.ones((2, 100)))
    kernel = variables["params"]["Dense_0"]["kernel"]
    out = generator.apply(variables, jnp.ones((2, 100)) * 50.0)
    assert float(jnp.abs(out).max()) <= 1.0  # tanh
    assert abs(float(kernel.std()) - 0.02) < 0.002 and abs(float(kernel.mean())) < 0.002


def test_batch_norm_records_running_statistics_only_when_asked():
    norm = dcgan.BatchNorm()
    x = jax.random.normal(jax.random.PRNGKey(0), (64, 4, 4, 3)) * 2.0 + 5.0
    variables = norm.init(jax.random.PRNGKey(1), x, False, None)
    out, updated = norm.apply(variables, x, True, None, mutable=["batch_stats"])
    np.testing.assert_allclose(np.asarray(out).mean((0, 1, 2)), np.asarray(variables["params"]["bias"]), atol=1e-4)
    np.testing.assert_allclose(updated["batch_stats"]["mean"], 0.1 * np.asarray(x.mean((0, 1, 2))), rtol=1e-5)
    np.testing.assert_array_equal(norm.apply(variables, x, False, None), out)  # same batch statistics


@pytest.mark.parametrize(
    "overrides,message",
    [
        (["experiment=none", "model=dcgan", "dataset=ring_2d"], "model=dcgan: needs an image dataset"),
        (
            ["experiment=fashion_mnist_dcgan", "dataset.image_size=48"],
            "dataset.image_size=48: model=dcgan supports 28, 32, 64",
        ),
        (
            ["experiment=fashion_mnist_dcgan", "penalty=wgan_gp", "penalty.wgan_gp.weight=10"],
            "penalty=wgan_gp with model.discriminator.norm=batch",
        ),
        (
            ["experiment=fashion_mnist_dcgan", "model.generator.upsample=bilinear"],
            "model.generator.upsample='bilinear': valid values are subpixel, transpose, resize_conv",
        ),
    ],
)
def test_image_config_errors(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(overrides), 1)


def test_an_image_run_knows_its_summary_keys_for_sweep_objectives(fashion_mnist_dir):
    from conftest import TINY_DCGAN

    from gan_jax import loop
    from gan_jax.evaluate import StateEvaluator

    cfg = compose_config(TINY_DCGAN + [f"dataset.data_dir={fashion_mnist_dir}"])
    parts = loop.build_parts(cfg)
    keys = loop.summary_keys(cfg, parts, StateEvaluator(parts, cfg.eval, cfg.dataset))
    assert {"final.d_loss", "final.d_real", "eval.sample_std", "d_real_last_tenth", "eval.fid", "eval.kid"} <= set(keys)
