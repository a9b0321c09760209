"""dataset=folder: a folder (or .zip) of the researcher's own images, prepared once into array_record."""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, compose_config, metrics_rows
from PIL import Image

from gan_jax import data, rundir
from gan_jax.config import ConfigError, validate
from gan_jax.data import folder, images
from gan_jax.data.images import DataError

CLASSES = ("cat", "dog", "emu")
COUNT = 240  # images of the main folder, plus one broken file


def _colour(i: int) -> tuple[int, int, int]:
    """Image i is flat: red says its folder's class, green which image it is, blue its json class."""
    return 60 * (i % 3) + 20, (i * 37) % 256, 60 * (i % 4) + 20


def _name(i: int) -> str:
    extension = {1: "jpg", 2: "webp"}.get(i % 20, "png")
    return f"{CLASSES[i % 3]}/img{i:04d}.{extension}"


def write_main_folder(root: Path) -> Path:
    """COUNT flat images of mixed sizes (every 5th not square) as PNG, JPEG and WebP in three
    class folders, a file that does not decode, and dataset.json labelling all of them."""
    for i in range(COUNT):
        width = 24 + (i * 7) % 25
        height = width if i % 5 else width + 9
        path = root / _name(i)
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (width, height), _colour(i)).save(path, quality=95)
    (root / "cat" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)
    (root / "notes.txt").write_text("not an image\n")
    (root / ".hidden.png").write_bytes(b"an editor's leftover")  # hidden: left out
    labels = [[_name(i), i % 4] for i in range(COUNT)] + [["cat/broken.png", 0]]
    (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    return root


@pytest.fixture(scope="module")
def main_folder(tmp_path_factory) -> Path:
    return write_main_folder(tmp_path_factory.mktemp("images"))


def _cfg(path, cache, *extra):
    return compose_config(
        ["dataset=folder", f"dataset.path={path}", f"dataset.cache_dir={cache}", "dataset.resolution=16", *extra]
    ).dataset


def _build(path, cache, *extra) -> folder.FolderDataset:
    return folder.build(_cfg(path, cache, "dataset.max_bad_files=1", *extra))


def _all(dataset) -> tuple[np.ndarray, list[dict]]:
    examples = dataset.source.__getitems__(list(range(len(dataset.source))))
    return np.stack([e["image"] for e in examples]), examples


def _ids(dataset) -> list[bytes]:
    """Which images (by their pixels) the split holds, in order."""
    return [image.tobytes() for image in _all(dataset)[0]]


# The main folder's images in their prepared order (sorted by path; broken.png skipped).
ORDER = [i for _, i in sorted((_name(i), i) for i in range(COUNT))]


def _messages(caplog) -> str:
    return "\n".join(r.getMessage() for r in caplog.records)


# --- preparation and reuse -----------------------------------------------------------


def test_prepares_once_and_a_second_run_says_it_reuses_the_copy(main_folder, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gan_jax.data.folder")
    dataset = data.build(_cfg(main_folder, tmp_path, "dataset.max_bad_files=1"))
    assert isinstance(dataset, images.ImageDataset)  # a folder behaves as a TFDS dataset
    assert dataset.num_examples == COUNT and dataset.shape == (16, 16, 3) and dataset.num_classes == 0
    assert "preparing 241 images" in _messages(caplog) and "reusing" not in _messages(caplog)
    batch = dataset.batch(0, 0, 32)
    assert batch.shape == (32, 16, 16, 3) and batch.dtype == np.float32 and -1 <= batch.min() <= batch.max() <= 1
    provenance = dataset.provenance
    assert {k: provenance[k] for k in ("resize", "crop", "resolution", "channels", "num_files", "num_skipped")} == {
        "resize": "lanczos",
        "crop": "center",
        "resolution": 16,
        "channels": 3,
        "num_files": 241,
        "num_skipped": 1,
    }
    assert provenance["skipped"] == ["cat/broken.png"] and len(provenance["content_sha256"]) == 64
    caplog.clear()
    again = data.build(_cfg(main_folder, tmp_path, "dataset.max_bad_files=1"))
    assert "reusing the prepared copy" in _messages(caplog) and "preparing" not in _messages(caplog)
    np.testing.assert_array_equal(again.batch(0, 0, 32), batch)
    assert again.provenance == provenance
    assert [p.name for p in tmp_path.iterdir() if not p.name.startswith(".")] == [
        Path(provenance["prepared_copy"]).name
    ]
    # Other settings: another copy, the first one kept.
    data.build(_cfg(main_folder, tmp_path, "dataset.max_bad_files=1", "dataset.resize=box"))
    assert len([p for p in tmp_path.iterdir() if not p.name.startswith(".")]) == 2


def test_a_changed_folder_is_prepared_again(main_folder, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gan_jax.data.folder")
    images_dir = shutil.copytree(main_folder, tmp_path / "images")
    cache = tmp_path / "cache"
    first = _build(images_dir, cache)
    caplog.clear()
    Image.new("RGB", (30, 30), (1, 2, 3)).save(images_dir / "dog" / "new.png")
    added = _build(images_dir, cache)
    assert "preparing 242 images" in _messages(caplog) and added.num_examples == COUNT + 1
    caplog.clear()
    Image.new("RGB", (31, 30), (4, 5, 6)).save(images_dir / "dog" / "new.png")  # the same name, other bytes
    changed = _build(images_dir, cache)
    assert "preparing 242 images" in _messages(caplog)
    assert len({first.provenance["content_sha256"], added.provenance["content_sha256"]}) == 2
    assert changed.provenance["content_sha256"] != added.provenance["content_sha256"]


def test_a_damaged_prepared_copy_is_prepared_again(main_folder, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="gan_jax.data.folder")
    copy = Path(_build(main_folder, tmp_path).provenance["prepared_copy"])
    records = copy / folder.RECORDS_FILE
    records.write_bytes(records.read_bytes()[:1000])
    caplog.clear()
    assert _build(main_folder, tmp_path).num_examples == COUNT
    assert "is damaged" in _messages(caplog) and "preparing 241 images" in _messages(caplog)


# --- bad input -------------------------------------------------------------------------


def test_files_that_do_not_decode_are_skipped_up_to_max_bad_files(main_folder, tmp_path, caplog):
    with pytest.raises(DataError, match=r"1 files of .* do not decode, more than dataset.max_bad_files=0: cat/broken"):
        folder.build(_cfg(main_folder, tmp_path))
    assert [p.suffix for p in tmp_path.iterdir()] == [".lock"]  # no copy, no temporary directory
    caplog.set_level(logging.WARNING, logger="gan_jax.data.folder")
    dataset = _build(main_folder, tmp_path)
    assert any("skipping cat/broken.png" in r.getMessage() for r in caplog.records)
    assert dataset.provenance["num_skipped"] == 1
    # The copy is kept; a run asking for no bad files still refuses it, naming the file.
    with pytest.raises(DataError, match="set dataset.max_bad_files=1 to skip them"):
        folder.build(_cfg(main_folder, tmp_path))


def test_missing_empty_and_imageless_folders_fail_clearly(tmp_path):
    with pytest.raises(DataError, match=r"dataset.path=.*no such folder or .zip file"):
        _build(tmp_path / "nowhere", tmp_path / "cache")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=r"no images found in .*empty \(looked for .png, .jpg, .jpeg, .webp files"):
        _build(tmp_path / "empty", tmp_path / "cache")
    (tmp_path / "text").mkdir()
    (tmp_path / "text" / "a.txt").write_text("hello")
    with pytest.raises(DataError, match=r"no images found in .*text"):
        _build(tmp_path / "text", tmp_path / "cache")
    (tmp_path / "file.bin").write_bytes(b"x")
    with pytest.raises(DataError, match="neither a folder nor a .zip file"):
        _build(tmp_path / "file.bin", tmp_path / "cache")


def test_wrong_settings_fail_at_start_naming_each_key():
    cfg = compose_config(
        [
            "experiment=fashion_mnist_dcgan",
            "dataset=folder",
            "dataset.resize=hamming",
            "dataset.crop=zoom",
            "dataset.channels=2",
            "dataset.labels=csv",
            "dataset.holdout=1.5",
            "dataset.max_bad_files=-1",
        ]
    )
    with pytest.raises(ConfigError) as error:
        validate(cfg, 1)
    message = str(error.value)
    for expected in (
        "dataset.path=None: must be the folder or .zip file of the images (dataset.path=DIR)",
        "dataset.resize='hamming': valid values are lanczos, bicubic, bilinear, box, nearest",
        "dataset.crop='zoom': valid values are center, pad, none",
        "dataset.channels=2: must be 1 (grey) or 3 (RGB)",
        "dataset.labels='csv': valid values are none, json, folders",
        "dataset.holdout=1.5: must be a fraction in [0, 1) of the images, or a whole number of them",
        "dataset.max_bad_files=-1: must be an integer >= 0",
    ):
        assert expected in message


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["model=stylegan2", "dataset.resolution=48"], "model=stylegan2 needs a power of two >= 16"),
        (["experiment=fashion_mnist_dcgan", "dataset.resolution=48"], "model=dcgan supports 28, 32, 64"),
    ],
)
def test_models_refuse_resolutions_they_do_not_build(overrides, message):
    with pytest.raises(ConfigError, match=message):
        validate(compose_config(["experiment=none", "dataset=folder", "dataset.path=x", "augment=none", *overrides]), 1)


# --- labels ----------------------------------------------------------------------------


def test_labels_from_dataset_json_and_from_folders(main_folder, tmp_path):
    by_json = _build(main_folder, tmp_path, "dataset.labels=json")
    assert by_json.num_classes == 4
    pixels, examples = _all(by_json)
    assert [e["label"] for e in examples] == [i % 4 for i in ORDER]
    np.testing.assert_allclose(pixels[:, 0, 0, 2], [_colour(i)[2] for i in ORDER], atol=4)  # JPEG, WebP: lossy
    by_folders = _build(main_folder, tmp_path, "dataset.labels=folders")
    assert by_folders.num_classes == 3 and by_folders.provenance["classes"] == list(CLASSES)
    images_, labels = by_folders.labelled_batch(0, 1, 64)
    assert labels.dtype == np.int32
    np.testing.assert_allclose((images_[:, 0, 0, 0] + 1) * 127.5, 60 * labels + 20, atol=4)  # red says the class


def _small_folder(root: Path, names=("a.png", "b/c.png", "b/d.jpg"), labels=None) -> Path:
    for i, name in enumerate(names):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (8, 8), (i * 40, 0, 0)).save(root / name)
    if labels is not None:
        (root / "dataset.json").write_text(json.dumps({"labels": labels}))
    return root


@pytest.mark.parametrize(
    "labels, message",
    [
        (
            [["a.png", 0], ["b/c.png", 1], ["b/d.jpg", 1], ["b/gone.png", 2]],
            r"entry 3 \['b/gone.png', 2\] names no image",
        ),
        (
            [["a.png", 0], ["b/c.png", "cat"], ["b/d.jpg", 1]],
            r"entry 1 \['b/c.png', 'cat'\]: the class must be an integer",
        ),
        ([["a.png", 0], ["b/c.png", 1.5], ["b/d.jpg", 1]], r"entry 1 \['b/c.png', 1.5\]: the class must be an integer"),
        ([["a.png", None], ["b/c.png", 1], ["b/d.jpg", 1]], r"entry 0 \['a.png', None\]: the class must be an integer"),
        ([["a.png", 0], ["b/c.png", 1]], r"1 images have no entry in .*dataset.json: b/d.jpg"),
    ],
)
def test_bad_labels_fail_naming_the_entry(tmp_path, labels, message):
    source = _small_folder(tmp_path / "images", labels=labels)
    with pytest.raises(DataError, match=message):
        _build(source, tmp_path / "cache", "dataset.labels=json")


def test_unlabelled_json_missing_json_and_loose_files(tmp_path):
    source = _small_folder(tmp_path / "images")
    with pytest.raises(DataError, match=r"dataset.labels=json: .*dataset.json does not exist"):
        _build(source, tmp_path / "cache", "dataset.labels=json")
    with pytest.raises(DataError, match=r"dataset.labels=folders: 1 images of .* are not in a class folder \(a.png\)"):
        _build(source, tmp_path / "cache", "dataset.labels=folders")
    (source / "dataset.json").write_text(json.dumps({"labels": None}))  # dataset_tool's unlabelled dataset
    assert _build(source, tmp_path / "cache", "dataset.labels=json").num_classes == 0


# --- a zip, splits, crops, channels ------------------------------------------------------


def test_a_zip_gives_the_folders_images_and_labels(main_folder, tmp_path):
    archive = Path(shutil.make_archive(str(tmp_path / "images"), "zip", main_folder))
    from_zip = _build(archive, tmp_path / "cache", "dataset.labels=json")
    from_folder = _build(main_folder, tmp_path / "cache", "dataset.labels=json")
    assert from_zip.provenance["kind"] == "zip" and from_folder.provenance["kind"] == "folder"
    for key in ("content_sha256", "images_sha256", "num_files", "skipped"):
        assert from_zip.provenance[key] == from_folder.provenance[key], key
    zip_images, zip_examples = _all(from_zip)
    folder_images, folder_examples = _all(from_folder)
    np.testing.assert_array_equal(zip_images, folder_images)
    assert [e["label"] for e in zip_examples] == [e["label"] for e in folder_examples]
    with zipfile.ZipFile(archive, "a") as handle:  # another member: prepared again
        handle.writestr("dog/extra.png", _png_bytes())
    assert _build(archive, tmp_path / "cache").num_examples == COUNT + 1


def _png_bytes() -> bytes:
    import io

    buffer = io.BytesIO()
    Image.new("RGB", (20, 20), (9, 9, 9)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_splits_slice_as_tfds_and_the_holdout_is_disjoint(main_folder, tmp_path):
    build = lambda *extra: _build(main_folder, tmp_path, *extra)  # noqa: E731
    whole = _ids(build())
    assert _ids(build("dataset.split=train[:10%]")) == whole[:24]  # round(240 / 10)
    assert _ids(build("dataset.split=train[100:200]")) == whole[100:200]
    assert _ids(build("dataset.split=train[-5:]")) == whole[-5:]
    train, holdout = _ids(build("dataset.holdout=0.1")), _ids(build("dataset.holdout=0.1", "dataset.split=holdout"))
    assert len(holdout) == 24 and len(train) == COUNT - 24 and sorted(train + holdout) == sorted(whole)
    assert _ids(build("dataset.holdout=24", "dataset.split=holdout")) == holdout  # a count, the same files
    assert _ids(build("dataset.holdout=24", "dataset.split=test")) == holdout  # evaluation's reference
    reference = build("dataset.split=test")  # no holdout: the whole folder
    assert _ids(reference) == whole and reference.provenance["resolved_split"] == "all"
    with pytest.raises(DataError, match="dataset.holdout is 0"):
        build("dataset.split=holdout")
    with pytest.raises(DataError, match="valid values are train, holdout"):
        build("dataset.split=validation")
    with pytest.raises(DataError, match="300 is out of range; the split has 240 images"):
        build("dataset.split=train[:300]")
    with pytest.raises(DataError, match="leaving none to train on"):
        build("dataset.holdout=240")


def _two_colour(width: int, height: int) -> Image.Image:
    """Left half red, right half blue."""
    pixels = np.zeros((height, width, 3), np.uint8)
    pixels[:, : width // 2, 0] = 255
    pixels[:, width // 2 :, 2] = 255
    return Image.fromarray(pixels)


def test_crop_modes(tmp_path):
    source = tmp_path / "images"
    source.mkdir()
    _two_colour(41, 20).save(source / "wide.png")
    centre = _build(source, tmp_path / "cache", "dataset.resolution=10", "dataset.crop=center")
    # NVIDIA dataset_tool's center-crop: rows (h - s) // 2 : (h + s) // 2, the same for columns, then lanczos
    wide = np.asarray(Image.open(source / "wide.png"))
    expected = np.asarray(
        Image.fromarray(wide[:, (41 - 20) // 2 : (41 + 20) // 2]).resize((10, 10), Image.Resampling.LANCZOS)
    )
    np.testing.assert_array_equal(_all(centre)[0][0], expected)
    padded = _all(_build(source, tmp_path / "cache", "dataset.resolution=20", "dataset.crop=pad"))[0][0]
    assert padded[:2].max() == 0 and padded[-2:].max() == 0  # black bars above and below
    assert padded[10, 2, 0] > 200 and padded[10, -3, 2] > 200  # the image between them
    with pytest.raises(DataError, match=r"dataset.crop=none: 1 images .* not square: wide.png \(41x20\); set dataset"):
        _build(source, tmp_path / "cache", "dataset.crop=none")
    (source / "wide.png").unlink()
    _two_colour(32, 32).save(source / "square.png")
    square = _all(_build(source, tmp_path / "cache", "dataset.crop=none"))[0][0]
    np.testing.assert_array_equal(square, np.asarray(_two_colour(32, 32).resize((16, 16), Image.Resampling.LANCZOS)))


def test_channels_grey_to_rgb_colour_to_grey_alpha_dropped(tmp_path):
    source = tmp_path / "images"
    source.mkdir()
    Image.new("L", (16, 16), 100).save(source / "a_grey.png")
    Image.new("RGBA", (16, 16), (200, 10, 30, 0)).save(source / "b_alpha.png")
    Image.new("RGB", (16, 16), (200, 10, 30)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        source / "c_palette.png"
    )
    Image.new("RGB", (16, 16), (200, 10, 30)).save(source / "d_colour.webp", lossless=True)
    rgb = _all(_build(source, tmp_path / "cache", "dataset.channels=3"))[0]
    assert rgb.shape == (4, 16, 16, 3)
    assert rgb[0, 0, 0].tolist() == [100, 100, 100]
    assert rgb[1, 0, 0].tolist() == rgb[2, 0, 0].tolist() == rgb[3, 0, 0].tolist() == [200, 10, 30]
    grey = _build(source, tmp_path / "cache", "dataset.channels=1")
    assert grey.shape == (16, 16, 1) and grey.batch(0, 0, 4).shape == (4, 16, 16, 1)
    luma = Image.new("RGB", (1, 1), (200, 10, 30)).convert("L").getpixel((0, 0))
    assert _all(grey)[0][:, 0, 0, 0].tolist() == [100, luma, luma, luma]


# --- reading ---------------------------------------------------------------------------


def test_batches_depend_only_on_seed_and_index_and_equal_the_source(main_folder, tmp_path):
    dataset = _build(main_folder, tmp_path, "dataset.labels=folders")
    np.testing.assert_array_equal(dataset.batch(3, 7, 16), _build(main_folder, tmp_path).batch(3, 7, 16))
    assert not np.array_equal(dataset.batch(3, 7, 16), dataset.batch(4, 7, 16))
    order = images._epoch_order(3, 1, dataset.num_examples)
    per_epoch = dataset.num_examples // 16
    expected = [dataset.source[int(i)] for i in order[:16]]
    batch, labels = dataset.labelled_batch(3, per_epoch, 16)  # the first batch of epoch 1
    np.testing.assert_array_equal(batch, np.stack([e["image"] for e in expected]).astype(np.float32) / 127.5 - 1)
    assert labels.tolist() == [e["label"] for e in expected]
    reference, reference_labels = dataset.examples(10, 5, labels=True)
    assert reference.shape == (5, 16, 16, 3) and reference_labels is not None and len(reference_labels) == 5
    import pickle

    np.testing.assert_array_equal(pickle.loads(pickle.dumps(dataset)).batch(3, 7, 16), dataset.batch(3, 7, 16))


def test_grains_worker_processes_read_the_same_batches(main_folder, tmp_path):
    """The dataset travels to grain's worker processes (dataset.workers) and reads there as here."""
    import jax

    from gan_jax import feed, parallel

    dataset = _build(main_folder, tmp_path, "dataset.labels=folders")
    one_device = parallel.DataParallel(tuple(jax.local_devices()[:1]))

    def read(workers):
        return list(feed.device_batches(dataset, [0, 5], 3, [1, 2], 1, 8, one_device, labels=True, workers=workers))

    for ours, theirs in zip(read(0), read(2), strict=True):
        np.testing.assert_array_equal(ours["images"], theirs["images"])
        np.testing.assert_array_equal(ours["labels"], theirs["labels"])


# --- processes: concurrent preparation, a kill -9 mid-preparation ----------------------

_CHILD = """
import hashlib, logging, sys, time
from gan_jax.config import compose
logging.basicConfig(level=logging.INFO)
from gan_jax.data import folder
slow = float(sys.argv[3])
if slow:  # the test's own slowing-down, so that a kill lands mid-preparation
    convert = folder.convert
    folder.convert = lambda data, setup: (time.sleep(slow), convert(data, setup))[1]
cfg = compose(["dataset=folder", f"dataset.path={sys.argv[1]}", f"dataset.cache_dir={sys.argv[2]}",
               "dataset.resolution=16", "dataset.max_bad_files=1"]).dataset
print("ready", flush=True)
dataset = folder.build(cfg)
print(hashlib.sha256(dataset.batch(0, 0, 64).tobytes()).hexdigest(), flush=True)
"""


def _child(source: Path, cache: Path, slow: float = 0.0) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(source), str(cache), str(slow)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_two_processes_at_once_prepare_once_and_read_the_same(main_folder, tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir()
    copy = folder.prepared_copy(
        folder.list_images(str(main_folder)), _cfg(main_folder, cache, "dataset.max_bad_files=1")
    )
    with rundir.file_lock(copy.lock):  # both children find the copy missing and wait for the lock
        children = [_child(main_folder, cache, slow=0.01) for _ in range(2)]  # preparing takes a second or more
        for child in children:
            assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        time.sleep(1.0)
    outputs = [child.communicate(timeout=120) for child in children]
    assert [child.returncode for child in children] == [0, 0], outputs
    logs = "".join(err for _, err in outputs)
    assert logs.count("preparing 241 images") == 1 and logs.count("reusing the prepared copy") == 1, logs
    assert outputs[0][0] == outputs[1][0]  # the same batch
    assert sorted(p.name for p in cache.iterdir()) == sorted([copy.lock.name, copy.path.name])


def test_a_kill_mid_preparation_leaves_nothing_that_is_read_later(main_folder, tmp_path, caplog):
    cache = tmp_path / "cache"
    copy = folder.prepared_copy(
        folder.list_images(str(main_folder)), _cfg(main_folder, cache, "dataset.max_bad_files=1")
    )
    child = _child(main_folder, cache, slow=0.02)  # about 2.5 s of preparation on 2 threads
    deadline = time.monotonic() + 60
    while not any((t / folder.RECORDS_FILE).exists() for t in copy.temporaries()) and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.3)
    child.send_signal(signal.SIGKILL)
    child.communicate(timeout=30)
    assert child.returncode == -signal.SIGKILL
    assert not copy.path.exists() and copy.temporaries()  # killed mid-way: only the temporary directory
    caplog.set_level(logging.INFO, logger="gan_jax.data.folder")
    assert _build(main_folder, cache).num_examples == COUNT
    assert "left by an interrupted preparation" in _messages(caplog) and "preparing 241 images" in _messages(caplog)
    assert copy.path.is_dir() and not copy.temporaries()


# --- training on a folder --------------------------------------------------------------

# A tiny class-conditional ResNet (tests/test_resnet.py's), on the main folder's three class folders.
TINY_CONDITIONAL = [
    "experiment=fashion_mnist_conditional",
    "dataset=folder",
    "dataset.resolution=28",
    "dataset.channels=1",
    "dataset.labels=folders",
    "dataset.max_bad_files=1",
    "model.num_classes=3",
    "logger=none",
    "train.progress_bar=false",
    "model.generator.width=4",
    "model.discriminator.width=4",
    "model.latent_dim=8",
    "train.batch_size=8",
    "train.steps=2",
    "train.log_every=1",
    "eval.every=2",
    "train.sample_every=2",
    "train.checkpoint_every=2",
    "eval.features=fashion_mnist_classifier",
    "eval.num_samples=30",
    "eval.batch_size=30",
    "eval.reference_num_samples=64",
    "train.ema_decay=null",
]


@pytest.fixture(scope="module")
def folder_run(main_folder, tmp_path_factory):
    from gan_jax import loop

    run_dir = tmp_path_factory.mktemp("folder_run")
    cache = tmp_path_factory.mktemp("folder_cache")
    cfg = compose_config(TINY_CONDITIONAL + [f"dataset.path={main_folder}", f"dataset.cache_dir={cache}"])
    return run_dir, loop.run(cfg, run_dir)


def test_a_conditional_model_trains_on_a_folder_through_the_loop(folder_run):
    run_dir, summary = folder_run
    assert summary["status"] == "finished"
    train = [r for r in metrics_rows(run_dir) if "d_loss" in r]
    assert len(train) == 2 and all(np.isfinite(r["d_loss"]) for r in train)
    assert np.isfinite(summary["eval"]["fid"])
    reference = summary["eval_provenance"]["reference"]
    assert reference["dataset"] == "folder" and reference["split"] == "test" and reference["num_real"] == 64


def test_the_runs_provenance_names_the_folders_resize_filter(folder_run):
    _, summary = folder_run
    assert summary["eval_provenance"]["reference"]["data"]["resize"] == "lanczos"
    assert summary["data_provenance"]["resize"] == "lanczos" and summary["data_provenance"]["split"] == "train"


def test_a_run_is_not_continued_on_a_folder_that_changed(folder_run):
    """The checkpoint keeps the prepared images' hash; a resume on other images is refused."""
    from types import SimpleNamespace

    from gan_jax import loop
    from gan_jax.checkpoint import Checkpoints

    run_dir, summary = folder_run
    checkpoints = Checkpoints(run_dir, keep=3, read_only=True)
    meta = checkpoints.meta(checkpoints.latest_step())
    checkpoints.close()
    assert meta["images_sha256"] == summary["data_provenance"]["images_sha256"]
    same = SimpleNamespace(data=SimpleNamespace(provenance={"images_sha256": meta["images_sha256"]}))
    loop._check_same_images(same, meta, run_dir, 2)
    edited = SimpleNamespace(data=SimpleNamespace(provenance={"images_sha256": "0" * 64}))
    with pytest.raises(ConfigError, match=r"dataset.path: .* step 2 was trained on other images .* the folder changed"):
        loop._check_same_images(edited, meta, run_dir, 2)


def test_a_home_relative_path_and_an_unwritable_cache_are_handled(main_folder, tmp_path, monkeypatch):
    """dataset.path=~/x as typed (the shell leaves ~ after '=' alone; gan-train quotes it for
    Hydra), and a cache directory that cannot be made named as dataset.cache_dir."""
    from gan_jax import overrides

    assert overrides.quote_slices(["dataset.path=~/shoes"]) == ["dataset.path='~/shoes'"]
    monkeypatch.setenv("HOME", str(main_folder.parent))
    given = compose_config(["dataset=folder", *overrides.quote_slices([f"dataset.path=~/{main_folder.name}"])])
    assert folder.list_images(given.dataset.path).root == main_folder.resolve()
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    with pytest.raises(DataError, match=r"dataset.cache_dir: cannot write the prepared copy's directory"):
        _build(main_folder, blocker / "cache")
