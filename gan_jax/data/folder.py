"""dataset=folder: a researcher's own images, from a folder or a .zip file.

    gan-train dataset=folder dataset.path=~/faces dataset.resolution=64
    gan-train dataset=folder dataset.path=faces.zip dataset.labels=json model.conditioning=projection ...

The PNG, JPEG and WebP files under `dataset.path` (recursively, sorted by their relative
path; hidden files and folders, those whose name starts with a dot, and macOS's __MACOSX
are left out) are prepared once: each is decoded, converted to `dataset.channels`
(grey to RGB or colour to L; alpha dropped), made square (`dataset.crop`: `center` crops
the centre square, `pad` pads with black to a square, `none` takes square images only)
and resized to resolution x resolution with PIL's `dataset.resize` filter (lanczos, as
NVIDIA's dataset_tool). The prepared uint8 images are stored, one array_record record each
(a 16-byte header, then the raw H x W x C bytes: a read is a reshape, no decoding), in
`dataset.cache_dir` (null: $GAN_JAX_CACHE_DIR/folders, else ~/.cache/gan_jax/folders),
in a directory named by a hash of the source's listing and every preparation setting:

- a directory's listing is each file's relative path, size and mtime (a stat per file at
  start, no reading); a .zip's is each member's name, size and CRC-32 (the zip's own
  checksums of the contents). dataset.json's bytes count too when `dataset.labels=json`.
  The sha256 of every file's bytes is computed while preparing and recorded
  (`content_sha256`) with the prepared copy;
- the copy is written into a temporary directory and renamed into place, under a lock:
  two processes preparing the same folder prepare it once, and a kill leaves no half
  copy that a later run would read (its temporary directory is removed by the next
  preparation). A second run with the same files and settings logs that it reuses the copy.

A file that does not decode is skipped with a warning; more than `dataset.max_bad_files`
of them stop the preparation, naming them. Labels (`dataset.labels`): `none`; `json`,
dataset.json at the root in dataset_tool's layout {"labels": [["dir/img.png", 3], ...]}
(`"labels": null`: unlabelled); `folders`, the sorted names of the first-level folders
holding images are classes 0..K-1.

Splits (`dataset.split`): `train` (every prepared image but the holdout), `holdout` (the
`dataset.holdout` images, a count or a fraction, chosen by the sha256 of their paths, so
adding files moves few of them), each sliceable as in TFDS (`train[:10%]`,
`train[100:200]`), and `test`: the holdout when there is one, else the whole folder
(what evaluation compares with: eval.reference_split is `test` by default).

The dataset is an `ImageDataset` (gan_jax/data/images.py) over the prepared records:
batches from (seed, index), `examples()` and `labelled_batch` as for a TFDS dataset. Its
`provenance` says what the images are (files, filter, crop, hashes, skipped files).
"""

from __future__ import annotations

import collections
import concurrent.futures
import hashlib
import io
import json
import logging
import os
import re
import secrets
import shutil
import struct
import threading
import time
import zipfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import PIL
from PIL import Image

from gan_jax import rundir
from gan_jax.data.base import DatasetPart, register
from gan_jax.data.images import DataError, ImageDataset
from gan_jax.metrics.resizing import PIL_FILTERS
from gan_jax.schema import MISSING, at_least, one_of, rule

log = logging.getLogger(__name__)

EXTENSIONS = (".png", ".jpg", ".jpeg", ".webp")
RESIZE_FILTERS = {name: PIL_FILTERS[name] for name in ("lanczos", "bicubic", "bilinear", "box", "nearest")}
CROPS = ("center", "pad", "none")
LABELS = ("none", "json", "folders")
SPLITS = ("train", "holdout", "test")
LABELS_FILE = "dataset.json"  # NVIDIA's dataset_tool layout
CACHE_ENV = "GAN_JAX_CACHE_DIR"  # the project's cache; prepared folders go to its folders/
FORMAT_VERSION = 1  # of the prepared copy; a new layout is prepared again
RECORDS_FILE = "images.array_record"
META_FILE = "meta.json"
HEADER = struct.Struct("<4i")  # height, width, channels, label (-1: none), then the uint8 pixels
WRITER_OPTIONS = "group_size:1,uncompressed"  # one record per chunk: random access; raw: read = reshape
MAX_NAMED = 20  # files named in one message
LOG_EVERY_S = 10.0  # progress lines when there is no terminal for a bar


# --- the source's listing -----------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """The image files of a folder or .zip: relative POSIX paths, sorted, and what each one's
    key is made of ((size, mtime_ns) in a folder, (size, CRC-32) in a zip)."""

    root: Path
    kind: str  # "folder" or "zip"
    files: tuple[str, ...]
    stamps: tuple[tuple[int, int], ...]
    labels_file: bytes | None  # dataset.json's bytes, when it is there

    def reader(self) -> Callable[[str], bytes]:
        """A function reading one file's bytes; safe to call from several threads."""
        if self.kind == "folder":
            return lambda name: (self.root / name).read_bytes()
        local = threading.local()

        def read(name: str) -> bytes:
            if not hasattr(local, "zip"):
                local.zip = zipfile.ZipFile(self.root)
            return local.zip.read(name)

        return read


def _hidden(relative: str) -> bool:
    return any(part.startswith(".") or part == "__MACOSX" for part in relative.split("/"))


def _is_image(name: str) -> bool:
    return name.lower().endswith(EXTENSIONS) and not _hidden(name)


def list_images(path: str | None) -> Listing:
    """The listing of `dataset.path`: a folder (searched recursively) or a .zip file."""
    if path is None or not str(path).strip():
        raise DataError("dataset.path: not set; give the folder or .zip file of your images (dataset.path=DIR)")
    root = Path(path).expanduser().resolve()
    if root.is_dir():
        found: list[tuple[str, tuple[int, int]]] = []
        for directory, subdirectories, names in os.walk(root):
            subdirectories[:] = [d for d in subdirectories if not _hidden(d)]
            for name in names:
                full = Path(directory) / name
                relative = full.relative_to(root).as_posix()
                if _is_image(relative):
                    try:
                        stat = full.stat()
                        found.append((relative, (stat.st_size, stat.st_mtime_ns)))
                    except OSError:  # a dangling link, say: listed, and skipped as unreadable when read
                        found.append((relative, (-1, -1)))
        labels_path = root / LABELS_FILE
        labels_file = labels_path.read_bytes() if labels_path.is_file() else None
        kind = "folder"
    elif root.is_file() and zipfile.is_zipfile(root):
        with zipfile.ZipFile(root) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            found = [(m.filename, (m.file_size, m.CRC)) for m in members if _is_image(m.filename)]
            member_names = {m.filename for m in members}
            labels_file = archive.read(LABELS_FILE) if LABELS_FILE in member_names else None
        kind = "zip"
    elif root.exists():
        raise DataError(f"dataset.path={path}: neither a folder nor a .zip file")
    else:
        raise DataError(f"dataset.path={path}: no such folder or .zip file ({root})")
    if not found:
        raise DataError(
            f"dataset.path={path}: no images found in {root} (looked for {', '.join(EXTENSIONS)} files, "
            "recursively, case-insensitive, hidden files left out)"
        )
    found.sort()
    return Listing(root, kind, tuple(f for f, _ in found), tuple(s for _, s in found), labels_file)


# --- labels ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Labels:
    per_file: tuple[int, ...] | None  # each listed file's class; None: unlabelled
    num_classes: int
    classes: tuple[str, ...] | None = None  # the class folders' names (labels=folders)


def _named(items: Sequence[str]) -> str:
    shown = ", ".join(items[:MAX_NAMED])
    return shown + (f" and {len(items) - MAX_NAMED} more" if len(items) > MAX_NAMED else "")


def read_labels(listing: Listing, mode: str) -> Labels:
    """The classes of the listed files as `dataset.labels` says; a DataError names what is wrong."""
    if mode == "none":
        return Labels(None, 0)
    if mode == "folders":
        top = [f.split("/", 1)[0] if "/" in f else None for f in listing.files]
        loose = [f for f, folder in zip(listing.files, top, strict=True) if folder is None]
        if loose:
            raise DataError(
                f"dataset.labels=folders: {len(loose)} images of {listing.root} are not in a class folder "
                f"({_named(loose)}); move them into one, or set dataset.labels=none"
            )
        classes = tuple(sorted({t for t in top if t is not None}))
        index = {name: i for i, name in enumerate(classes)}
        return Labels(tuple(index[t] for t in top if t is not None), len(classes), classes)
    where = f"{listing.root}{'!' if listing.kind == 'zip' else '/'}{LABELS_FILE}"
    if listing.labels_file is None:
        raise DataError(
            f"dataset.labels=json: {where} does not exist; write it as "
            '{"labels": [["relative/path.png", class], ...]}, or set dataset.labels=folders or none'
        )
    try:
        entries = json.loads(listing.labels_file)["labels"]
    except (ValueError, KeyError, TypeError) as error:
        raise DataError(
            f"dataset.labels=json: {where} is not {{'labels': [[path, class], ...]}} ({type(error).__name__}: {error})"
        ) from None
    if entries is None:
        log.info('%s: "labels" is null, so the images are unlabelled', where)
        return Labels(None, 0)
    if not isinstance(entries, list):
        raise DataError(f'dataset.labels=json: {where}: "labels" must be a list of [path, class] or null')
    listed = set(listing.files)
    labels: dict[str, int] = {}
    for position, entry in enumerate(entries):
        if not (isinstance(entry, list) and len(entry) == 2 and isinstance(entry[0], str)):
            raise DataError(f"dataset.labels=json: {where}: entry {position} ({entry!r}) is not [path, class]")
        name, label = entry[0].replace("\\", "/").removeprefix("./"), entry[1]
        if isinstance(label, bool) or not isinstance(label, int) or label < 0:
            raise DataError(
                f"dataset.labels=json: {where}: entry {position} {entry!r}: the class must be an integer >= 0"
            )
        if name not in listed:
            raise DataError(
                f"dataset.labels=json: {where}: entry {position} {entry!r} names no image file of {listing.root}"
            )
        if labels.setdefault(name, label) != label:
            raise DataError(f"dataset.labels=json: {where}: {name} has two classes, {labels[name]} and {label}")
    unlabelled = [f for f in listing.files if f not in labels]
    if unlabelled:
        raise DataError(
            f"dataset.labels=json: {len(unlabelled)} images have no entry in {where}: {_named(unlabelled)}; "
            "label them, remove them, or set dataset.labels=none"
        )
    return Labels(tuple(labels[f] for f in listing.files), max(labels.values()) + 1)


# --- preparation ----------------------------------------------------------------------


def settings(cfg: Any) -> dict[str, Any]:
    """The settings the prepared images depend on (and so the cache key)."""
    return {
        "resolution": int(cfg.resolution),
        "resize": str(cfg.resize),
        "crop": str(cfg.crop),
        "channels": int(cfg.channels),
        "labels": str(cfg.labels),
    }


def cache_root(cfg: Any) -> Path:
    """dataset.cache_dir; null: $GAN_JAX_CACHE_DIR/folders, else ~/.cache/gan_jax/folders."""
    if cfg.cache_dir:
        return Path(cfg.cache_dir).expanduser().resolve()
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "gan_jax") / "folders"


@dataclass(frozen=True)
class PreparedCopy:
    """Where a listing prepared with some settings lives: `path` (whole or absent), its `lock`."""

    path: Path
    lock: Path
    key: str

    def temporaries(self) -> list[Path]:
        return sorted(self.path.parent.glob(f".{self.path.name}.tmp-*"))


def prepared_copy(listing: Listing, cfg: Any) -> PreparedCopy:
    """The prepared copy's place, named by the hash of the listing and the settings."""
    setup = settings(cfg)
    payload = {
        "format": FORMAT_VERSION,
        "kind": listing.kind,
        "files": [[name, *stamp] for name, stamp in zip(listing.files, listing.stamps, strict=True)],
        "settings": setup,
    }
    if cfg.labels == "json" and listing.labels_file is not None:
        payload["labels_file_sha256"] = hashlib.sha256(listing.labels_file).hexdigest()
    key = hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()
    stem = re.sub(r"[^\w.-]+", "_", listing.root.stem)[:40] or "images"
    name = f"{stem}-{setup['resolution']}px-{key[:16]}"
    root = cache_root(cfg)
    return PreparedCopy(root / name, root / f".{name}.lock", key)


@dataclass(frozen=True)
class Converted:
    name: str
    digest: bytes  # sha256 of the file's bytes
    image: np.ndarray | None = None  # uint8 [resolution, resolution, channels]
    bad: str | None = None  # why it does not decode
    size: tuple[int, int] | None = None  # (width, height), when not square under crop=none


def _to_channels(image: Image.Image, channels: int) -> Image.Image:
    if image.mode.startswith("I;16"):  # 16-bit grey: scaled to 8 bits (PIL's convert would clip)
        image = Image.fromarray(np.round(np.asarray(image, np.float64) / 257.0).astype(np.uint8), "L")
    elif image.mode in ("P", "PA"):  # palette (with transparency): through RGBA, so it converts faithfully
        image = image.convert("RGBA")
    target = "L" if channels == 1 else "RGB"
    return image if image.mode == target else image.convert(target)


def convert(data: bytes, setup: dict[str, Any]) -> np.ndarray | tuple[int, int]:
    """One file's bytes -> uint8 [resolution, resolution, channels]; (width, height) when
    it is not square and crop is none. Raises when it does not decode."""
    size = setup["resolution"]
    with Image.open(io.BytesIO(data)) as opened:
        opened.load()
        image = _to_channels(opened, setup["channels"])
        width, height = image.size
        if setup["crop"] == "center":  # NVIDIA dataset_tool's center-crop
            side = min(width, height)
            left, top = (width - side) // 2, (height - side) // 2
            image = image.crop((left, top, left + side, top + side))
        elif setup["crop"] == "pad":
            side = max(width, height)
            canvas = Image.new(image.mode, (side, side), 0)
            canvas.paste(image, ((side - width) // 2, (side - height) // 2))
            image = canvas
        elif width != height:
            return (width, height)
        if image.size != (size, size):
            image = image.resize((size, size), RESIZE_FILTERS[setup["resize"]])
        return np.asarray(image, np.uint8).reshape(size, size, setup["channels"])


def _convert_file(read: Callable[[str], bytes], setup: dict[str, Any], name: str) -> Converted:
    try:
        data = read(name)
    except OSError as error:
        return Converted(name, b"", bad=f"cannot be read: {error}")
    digest = hashlib.sha256(data).digest()
    try:
        converted = convert(data, setup)
    except Exception as error:  # noqa: BLE001 - PIL raises many kinds for a damaged file
        return Converted(name, digest, bad=f"{type(error).__name__}: {error}")
    if isinstance(converted, tuple):
        return Converted(name, digest, size=converted)
    return Converted(name, digest, image=converted)


def _in_order(function: Callable[[str], Converted], names: Sequence[str], workers: int) -> Iterator[Converted]:
    """function(name) for each name, in order, `workers` threads at a time (PIL decodes and
    resizes without the GIL), at most a few results ahead of the consumer."""
    if workers <= 1:
        yield from map(function, names)
        return
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix="gan_jax-folder") as pool:
        pending: collections.deque = collections.deque()
        todo = iter(names)
        for name in todo:
            pending.append(pool.submit(function, name))
            if len(pending) >= 4 * workers:
                break
        while pending:
            result = pending.popleft().result()
            following = next(todo, None)
            if following is not None:
                pending.append(pool.submit(function, following))
            yield result


def _workers() -> int:
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(8, available))


def _record(image: np.ndarray, label: int) -> bytes:
    return HEADER.pack(*image.shape, label) + image.tobytes()


class _Progress:
    """A tqdm bar on a terminal; elsewhere (a job's log) a line every LOG_EVERY_S seconds."""

    def __init__(self, total: int, description: str):
        from tqdm import tqdm

        self.bar = tqdm(total=total, desc=description, unit="img", disable=None, mininterval=1.0)
        self.total, self.done = total, 0
        self.started = self.logged = time.perf_counter()

    def update(self) -> None:
        self.done += 1
        self.bar.update()
        now = time.perf_counter()
        if self.bar.disable and now - self.logged >= LOG_EVERY_S and self.done < self.total:
            self.logged = now
            log.info(
                "prepared %d of %d images (%.0f images/s)", self.done, self.total, self.done / (now - self.started)
            )

    def close(self) -> None:
        self.bar.close()


def _bad_files_message(skipped: Sequence[Sequence[str]], limit: int, root: Path) -> str:
    named = [f"{name} ({why})" for name, why in skipped]
    return (
        f"{len(skipped)} files of {root} do not decode, more than dataset.max_bad_files={limit}: "
        f"{_named(named)}; repair or remove them, or set dataset.max_bad_files={len(skipped)} to skip them"
    )


def _write(listing: Listing, labels: Labels, cfg: Any, copy: PreparedCopy, into: Path) -> dict[str, Any]:
    """Prepares every listed file into `into` (a temporary directory); returns the metadata."""
    from array_record.python.array_record_module import ArrayRecordWriter

    setup = settings(cfg)
    started = time.perf_counter()
    read = listing.reader()
    content, images_hash = hashlib.sha256(), hashlib.sha256()
    files: list[str] = []
    kept_labels: list[int] = []
    skipped: list[list[str]] = []
    not_square: list[str] = []
    index = {name: i for i, name in enumerate(listing.files)}
    progress = _Progress(len(listing.files), f"preparing {listing.root.name}")
    writer = ArrayRecordWriter(str(into / RECORDS_FILE), WRITER_OPTIONS)
    try:
        for done in _in_order(lambda name: _convert_file(read, setup, name), listing.files, _workers()):
            progress.update()
            content.update(done.name.encode() + b"\0" + done.digest)
            if done.bad is not None:
                log.warning("dataset.path=%s: skipping %s: %s", cfg.path, done.name, done.bad)
                skipped.append([done.name, done.bad])
                if len(skipped) > cfg.max_bad_files + 50:  # clearly not a few stray files: stop here
                    break
                continue
            if done.size is not None:
                not_square.append(f"{done.name} ({done.size[0]}x{done.size[1]})")
                continue
            assert done.image is not None
            label = -1 if labels.per_file is None else labels.per_file[index[done.name]]
            record = _record(done.image, label)
            writer.write(record)
            images_hash.update(record)
            files.append(done.name)
            kept_labels.append(label)
    finally:
        writer.close()
        progress.close()
    if not_square:
        raise DataError(
            f"dataset.crop=none: {len(not_square)} images of {listing.root} are not square: {_named(not_square)}; "
            "set dataset.crop=center (the centre square) or dataset.crop=pad (padded with black to a square)"
        )
    if len(skipped) > cfg.max_bad_files:
        raise DataError(_bad_files_message(skipped, cfg.max_bad_files, listing.root))
    if not files:
        raise DataError(f"dataset.path={cfg.path}: none of the {len(listing.files)} images of {listing.root} decodes")
    seconds = time.perf_counter() - started
    meta = {
        "format": FORMAT_VERSION,
        "key": copy.key,
        "source": {"path": str(listing.root), "kind": listing.kind, "num_files": len(listing.files)},
        "settings": setup,
        "files": files,
        "labels": None if labels.per_file is None else kept_labels,
        "num_classes": labels.num_classes,
        "classes": None if labels.classes is None else list(labels.classes),
        "skipped": skipped,
        "content_sha256": content.hexdigest(),
        "images_sha256": images_hash.hexdigest(),
        "pillow": PIL.__version__,
        "prepared_at": time.strftime("%Y-%m-%d %H:%M:%S"),
        "seconds": round(seconds, 3),
    }
    (into / META_FILE).write_text(json.dumps(meta) + "\n")
    log.info(
        "prepared %d images of %s in %.1f s (%.0f images/s)%s",
        len(files),
        listing.root,
        seconds,
        len(listing.files) / max(seconds, 1e-9),
        f"; {len(skipped)} skipped (they do not decode)" if skipped else "",
    )
    return meta


def _source(path: Path) -> Any:
    from array_record.python.array_record_data_source import ArrayRecordDataSource

    return ArrayRecordDataSource([str(path / RECORDS_FILE)])


def _read_back(copy: PreparedCopy) -> dict[str, Any] | None:
    """The copy's metadata when the copy is whole and readable, else None (with the reason logged)."""
    try:
        meta = json.loads((copy.path / META_FILE).read_text())
        records = _source(copy.path)
        if meta["format"] != FORMAT_VERSION or meta["key"] != copy.key or len(records) != len(meta["files"]):
            raise ValueError("its metadata and records disagree")
        records[0], records[len(records) - 1]  # noqa: B018 - reading them is the check
        return meta
    except Exception as error:  # noqa: BLE001 - any failure to read means the same thing
        log.warning("%s is damaged (%s: %s); preparing it again", copy.path, type(error).__name__, error)
        return None


def prepare(listing: Listing, labels: Labels, cfg: Any) -> tuple[PreparedCopy, dict[str, Any]]:
    """The prepared copy of `listing` with cfg's settings (and its metadata): reused when it
    exists, else written, once across processes, through a temporary directory and a rename."""
    copy = prepared_copy(listing, cfg)
    try:
        copy.path.parent.mkdir(parents=True, exist_ok=True)
        copy.lock.touch(exist_ok=True)
    except OSError as error:
        raise DataError(
            f"dataset.cache_dir: cannot write the prepared copy's directory {copy.path.parent} ({error.strerror}); "
            "set dataset.cache_dir (or $GAN_JAX_CACHE_DIR) to a writable directory"
        ) from None
    with rundir.file_lock(copy.lock):
        if copy.path.exists():
            meta = _read_back(copy)
            if meta is not None:
                log.info(
                    "dataset.path=%s: reusing the prepared copy %s (%d images, prepared %s)",
                    cfg.path,
                    copy.path,
                    len(meta["files"]),
                    meta["prepared_at"],
                )
                return copy, meta
            shutil.rmtree(copy.path, ignore_errors=True)
        for stale in copy.temporaries():  # left by a process killed while preparing
            log.info("removing %s, left by an interrupted preparation", stale)
            shutil.rmtree(stale, ignore_errors=True)
        log.info(
            "dataset.path=%s: preparing %d images (%s) into %s, once",
            cfg.path,
            len(listing.files),
            ", ".join(f"{k}={v}" for k, v in settings(cfg).items()),
            copy.path,
        )
        temporary = copy.path.with_name(f".{copy.path.name}.tmp-{os.getpid()}-{secrets.token_hex(4)}")
        temporary.mkdir()
        try:
            meta = _write(listing, labels, cfg, copy, temporary)
            for written in (temporary / RECORDS_FILE, temporary / META_FILE):
                with open(written, "rb") as handle:
                    os.fsync(handle.fileno())
            temporary.rename(copy.path)
        except BaseException:
            shutil.rmtree(temporary, ignore_errors=True)
            raise
    return copy, meta


# --- splits ---------------------------------------------------------------------------

_SPLIT = re.compile(r"^(?P<name>\w+)(?:\[(?P<start>[^:\]]*):(?P<stop>[^:\]]*)\])?$")
_BOUND = re.compile(r"^-?(\d+(\.\d*)?|\.\d+)%?$")


def holdout_count(holdout: float, total: int) -> int:
    """dataset.holdout as a number of files: a fraction in [0, 1) of them, or a count."""
    if holdout >= 1:
        return int(holdout)
    return 0 if holdout <= 0 else max(1, int(round(holdout * total)))


def holdout_files(files: Sequence[str], count: int) -> set[str]:
    """The `count` files whose paths' sha256 are smallest: chosen by name alone, so adding or
    removing files moves few others between the splits."""
    ranked = sorted(files, key=lambda f: hashlib.sha256(f.encode()).digest())
    return set(ranked[:count])


def _bound(text: str, total: int, split: str) -> int | None:
    text = text.strip()
    if not text:
        return None
    if not _BOUND.match(text):
        raise DataError(f"dataset.split={split!r}: {text!r} is not an index or a percentage (e.g. train[:10%])")
    if text.endswith("%"):
        percent = float(text[:-1])
        if not -100 <= percent <= 100:
            raise DataError(f"dataset.split={split!r}: {text} is not a percentage in [-100%, 100%]")
        return int(round((percent + 100 if percent < 0 else percent) * total / 100))
    if "." in text:
        raise DataError(f"dataset.split={split!r}: {text} is not a whole number of images")
    value = int(text)
    if abs(value) > total:
        raise DataError(f"dataset.split={split!r}: {value} is out of range; the split has {total} images")
    return value + total if value < 0 else value


def split_indices(files: Sequence[str], split: str, holdout: float) -> tuple[np.ndarray, str]:
    """(the records of `split`, in the prepared order; what the split resolved to)."""
    match = _SPLIT.match(split.strip())
    if match is None or match["name"] not in SPLITS:
        raise DataError(
            f"dataset.split={split!r}: valid values are train, holdout (with dataset.holdout), test "
            "(the holdout, else every image), each optionally sliced as in TFDS: train[:10%], train[100:200]"
        )
    name = match["name"]
    count = holdout_count(holdout, len(files))
    if count >= len(files):
        raise DataError(
            f"dataset.holdout={holdout}: holds out {count} of the {len(files)} images, leaving none to train on"
        )
    held = holdout_files(files, count)
    if name == "holdout" and not held:
        raise DataError(
            f"dataset.split={split!r}: dataset.holdout is 0; set it to a count or a fraction of the images "
            "(e.g. dataset.holdout=0.1)"
        )
    if name == "test":
        name = "holdout" if held else "all"
    chosen = {
        "train": [i for i, f in enumerate(files) if f not in held],
        "holdout": [i for i, f in enumerate(files) if f in held],
        "all": list(range(len(files))),
    }[name]
    if match["start"] is not None:
        start, stop = _bound(match["start"], len(chosen), split), _bound(match["stop"], len(chosen), split)
        chosen = chosen[start:stop]
    if not chosen:
        raise DataError(f"dataset.split={split!r}: selects no images")
    resolved = name + (f"[{match['start']}:{match['stop']}]" if match["start"] is not None else "")
    return np.asarray(chosen, np.int64), resolved


# --- the dataset ----------------------------------------------------------------------


class FolderSource:
    """A split of a prepared copy as a random-access source: len(), [i] and
    __getitems__(indices) -> [{"image": uint8 [H, W, C], "label": int}] ("label" only when
    labelled), as TFDS's array_record data sources. Picklable (grain's worker processes)."""

    def __init__(self, path: Path, indices: np.ndarray):
        self.path = Path(path)
        self.indices = indices
        self._records = _source(self.path)

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]

    def __getitems__(self, indices: Iterable[int]) -> list[dict[str, Any]]:
        positions = [int(self.indices[i]) for i in indices]
        return [_example(record) for record in self._records.__getitems__(positions)]


def _example(record: bytes) -> dict[str, Any]:
    height, width, channels, label = HEADER.unpack_from(record)
    image = np.frombuffer(record, np.uint8, offset=HEADER.size).reshape(height, width, channels)
    return {"image": image} if label < 0 else {"image": image, "label": label}


@dataclass(frozen=True)
class FolderDataset(ImageDataset):
    """An ImageDataset over a prepared folder; `provenance`: what its images are."""

    provenance: dict[str, Any] = field(default_factory=dict, compare=False)


def build(cfg: Any) -> FolderDataset:
    """Lists `dataset.path`, prepares it (or reuses its prepared copy) and opens `dataset.split`."""
    listing = list_images(cfg.path)
    labels = read_labels(listing, cfg.labels)
    copy, meta = prepare(listing, labels, cfg)
    if len(meta["skipped"]) > cfg.max_bad_files:
        raise DataError(_bad_files_message(meta["skipped"], cfg.max_bad_files, listing.root))
    indices, resolved = split_indices(meta["files"], cfg.split, cfg.holdout)
    if cfg.split.strip().startswith("test"):
        what = "the holdout" if resolved.startswith("holdout") else "every image (dataset.holdout is 0)"
        log.info("dataset.split=%s: a folder's test split is %s: %d images", cfg.split, what, len(indices))
    setup = meta["settings"]
    provenance = {
        "dataset": "folder",
        "path": meta["source"]["path"],
        "kind": meta["source"]["kind"],
        **setup,
        "split": cfg.split,
        "resolved_split": resolved,
        "num_examples": len(indices),
        "holdout": cfg.holdout,
        "num_holdout": holdout_count(cfg.holdout, len(meta["files"])),
        "num_files": meta["source"]["num_files"],
        "num_prepared": len(meta["files"]),
        "num_skipped": len(meta["skipped"]),
        "skipped": [name for name, _ in meta["skipped"]],
        "num_classes": meta["num_classes"],
        "classes": meta["classes"],
        "content_sha256": meta["content_sha256"],
        "images_sha256": meta["images_sha256"],
        "pillow": meta["pillow"],
        "prepared_copy": str(copy.path),
    }
    shape = (setup["resolution"], setup["resolution"], setup["channels"])
    return FolderDataset(
        "folder", shape, FolderSource(copy.path, indices), None, meta["num_classes"], provenance=provenance
    )


# --- schema and registration: dataset=folder -------------------------------------------


def _holdout_is_a_fraction_or_a_count(value: float) -> bool:
    return 0 <= value < 1 or (value >= 1 and float(value).is_integer())


@dataclass
class FolderDataConfig:
    """A folder (or .zip) of PNG / JPEG / WebP images, prepared once into array_record."""

    name: str = one_of(lambda: ("folder",))
    path: str | None = rule(
        MISSING, "the folder or .zip file of the images (dataset.path=DIR)", lambda v: v is not None and bool(v.strip())
    )
    split: str = MISSING  # train, holdout, test; sliced as in TFDS: train[:10%]
    resolution: int = at_least(1)  # the models see resolution x resolution images
    resize: str = one_of(lambda: tuple(RESIZE_FILTERS))  # PIL's filter; lanczos as NVIDIA's dataset_tool
    crop: str = one_of(lambda: CROPS)
    channels: int = rule(MISSING, "1 (grey) or 3 (RGB)", lambda v: v in (1, 3))
    labels: str = one_of(lambda: LABELS)
    holdout: float = rule(
        MISSING, "a fraction in [0, 1) of the images, or a whole number of them", _holdout_is_a_fraction_or_a_count
    )
    max_bad_files: int = at_least(0)  # files that do not decode, skipped; more stop the preparation
    cache_dir: str | None = MISSING  # null: $GAN_JAX_CACHE_DIR/folders, else ~/.cache/gan_jax/folders
    workers: int = at_least(0)  # processes that read batches (grain, gan_jax/feed.py); 0: a thread of training


register(
    DatasetPart(
        "folder",
        FolderDataConfig,
        build,
        image_size=lambda c: c.resolution,
        num_classes=None,
        image_size_key="resolution",
        channels=lambda c: c.channels,
    )
)
