"""PyTorch state dicts (`.pth`) to and from NumPy, without executing pickled code.

Reading: `torch.load(weights_only=True)` when torch is importable; otherwise a restricted
unpickler that resolves only the names a tensor state dict uses (OrderedDict, the tensor
rebuild functions, the storage types) and refuses everything else, reading either of
PyTorch's formats itself: the zip archive (PyTorch >= 1.6: `NAME/data.pkl` + one
`NAME/data/KEY` record per storage) or the legacy stream (magic number, protocol, system
info, the pickle, its storage keys, then each storage as int64 element count + raw bytes).

Writing (`save_state_dict`): the zip format with contiguous little-endian tensors, pickled
by hand (protocol 2), so that tests and tools can make weight files without torch;
`torch.load(weights_only=True)` reads them.
"""

from __future__ import annotations

import io
import pickle
import struct
import zipfile
from collections import OrderedDict
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

# PyTorch storage class names -> NumPy dtypes (little-endian).
STORAGE_DTYPES = {
    "FloatStorage": "<f4",
    "DoubleStorage": "<f8",
    "HalfStorage": "<f2",
    "BFloat16Storage": "<u2",
    "LongStorage": "<i8",
    "IntStorage": "<i4",
    "ShortStorage": "<i2",
    "CharStorage": "i1",
    "ByteStorage": "u1",
    "BoolStorage": "?",
}
_STORAGE_NAMES = {np.dtype(v).str: k for k, v in STORAGE_DTYPES.items() if k != "BFloat16Storage"}
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


class StateDictError(ValueError):
    """The file is not a PyTorch tensor state dict this reader accepts; the message says why."""


def load_state_dict(path: str | Path) -> OrderedDict[str, np.ndarray]:
    """{name: array} from a `.pth` file; torch's safe loader if installed, else the restricted reader."""
    try:
        import torch
    except ImportError:
        return read_state_dict(path)
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many kinds; all mean "not loadable"
        raise StateDictError(f"{path}: torch.load(weights_only=True) refused it: {error}") from None
    if not isinstance(loaded, dict):
        raise StateDictError(f"{path}: holds a {type(loaded).__name__}, not a state dict")
    return OrderedDict(
        (k, v.detach().cpu().numpy() if hasattr(v, "detach") else np.asarray(v)) for k, v in loaded.items()
    )


def read_state_dict(path: str | Path) -> OrderedDict[str, np.ndarray]:
    """{name: array} from a `.pth` file, by the restricted reader (no torch, no arbitrary code)."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        result = _read_zip(path)
    else:
        with open(path, "rb") as handle:
            result = _read_legacy(handle, path)
    if not isinstance(result, dict):
        raise StateDictError(f"{path}: holds a {type(result).__name__}, not a state dict")
    return OrderedDict(result)


class _Storage:
    """A storage's location in the file, resolved to bytes once all are known."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: np.ndarray | None = None


class _Tensor:
    def __init__(self, storage: _Storage, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def array(self) -> np.ndarray:
        data = self.storage.data
        if data is None:
            raise StateDictError(f"storage {self.storage.key!r} has no data in the file")
        if 0 in self.size:
            return np.zeros(self.size, data.dtype)
        last = self.offset + sum((n - 1) * st for n, st in zip(self.size, self.stride, strict=True))
        if self.offset < 0 or last >= len(data):
            raise StateDictError(f"a tensor of shape {self.size} reads past its storage {self.storage.key!r}")
        view = np.lib.stride_tricks.as_strided(
            data[self.offset :], shape=self.size, strides=[st * data.dtype.itemsize for st in self.stride]
        )
        return np.array(view, order="C")


def _rebuild_tensor(storage, offset, size, stride, requires_grad=False, backward_hooks=None, metadata=None):
    return _Tensor(storage, offset, size, stride)


def _rebuild_parameter(tensor, requires_grad=False, backward_hooks=None, *args):
    return tensor


class _StorageType:
    def __init__(self, name: str):
        self.dtype = np.dtype(STORAGE_DTYPES[name])


class _RestrictedUnpickler(pickle.Unpickler):
    ALLOWED = {
        ("collections", "OrderedDict"): OrderedDict,
        ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor,
        ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    }

    def __init__(self, file: BinaryIO, storages: dict[str, _Storage], where: Path):
        super().__init__(file)
        self.storages, self.where = storages, where

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in self.ALLOWED:
            return self.ALLOWED[(module, name)]
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageType(name)
        raise StateDictError(
            f"{self.where}: refusing to load {module}.{name}: a tensor state dict names "
            f"only OrderedDict, torch._utils._rebuild_tensor_v2 and torch storage types"
        )

    def persistent_load(self, saved_id: Any) -> _Storage:
        if not (isinstance(saved_id, tuple) and saved_id and saved_id[0] in ("storage", b"storage")):
            raise StateDictError(f"{self.where}: unexpected persistent id {saved_id!r:.80}")
        storage_type, key, _location, numel = saved_id[1:5]
        if not isinstance(storage_type, _StorageType):
            raise StateDictError(f"{self.where}: storage {key!r} has no storage type")
        if len(saved_id) > 5 and saved_id[5] is not None:
            raise StateDictError(f"{self.where}: storage views are not supported (storage {key!r})")
        key = key.decode() if isinstance(key, bytes) else str(key)
        if key not in self.storages:
            self.storages[key] = _Storage(key, storage_type.dtype, int(numel))
        return self.storages[key]


def _resolve(obj: Any) -> Any:
    if isinstance(obj, _Tensor):
        return obj.array()
    if isinstance(obj, dict):
        return OrderedDict((k, _resolve(v)) for k, v in obj.items())
    return obj


def _read_zip(path: Path) -> Any:
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
        pickles = [n for n in names if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise StateDictError(f"{path}: a zip file without one NAME/data.pkl: not a PyTorch checkpoint")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = archive.read(prefix + "byteorder").decode().strip() if prefix + "byteorder" in names else "little"
        if byteorder != "little":
            raise StateDictError(f"{path}: big-endian tensors are not supported")
        storages: dict[str, _Storage] = {}
        try:
            result = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), storages, path).load()
        except StateDictError:
            raise
        except Exception as error:  # noqa: BLE001 - any malformed pickle
            raise StateDictError(f"{path}: damaged data.pkl ({type(error).__name__}: {error})") from None
        for key, storage in storages.items():
            record = f"{prefix}data/{key}"
            if record not in names:
                raise StateDictError(f"{path}: record {record} is missing")
            raw = archive.read(record)
            storage.data = np.frombuffer(raw, dtype=storage.dtype, count=storage.numel)
    return _resolve(result)


def _read_legacy(handle: BinaryIO, path: Path) -> Any:
    def header_pickle():  # plain numbers and a dict of ints/bools: nothing to resolve
        return _RestrictedUnpickler(handle, {}, path).load()

    try:
        magic, protocol = header_pickle(), header_pickle()
    except Exception:  # noqa: BLE001
        raise StateDictError(f"{path}: neither a zip archive nor PyTorch's legacy format") from None
    if magic != LEGACY_MAGIC_NUMBER or protocol != LEGACY_PROTOCOL_VERSION:
        raise StateDictError(f"{path}: not a PyTorch checkpoint (magic {magic!r}, protocol {protocol!r})")
    sys_info = header_pickle()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise StateDictError(f"{path}: big-endian tensors are not supported")
    storages: dict[str, _Storage] = {}
    result = _RestrictedUnpickler(handle, storages, path).load()
    keys = header_pickle()
    for key in keys:
        storage = storages[str(key)]
        (numel,) = struct.unpack("<q", handle.read(8))
        raw = handle.read(numel * storage.dtype.itemsize)
        if numel != storage.numel or len(raw) != numel * storage.dtype.itemsize:
            raise StateDictError(f"{path}: storage {key!r} is truncated or inconsistent")
        storage.data = np.frombuffer(raw, dtype=storage.dtype)
    return _resolve(result)


# --- writing ----------------------------------------------------------------------------


def _unicode(text: str) -> bytes:
    data = text.encode("utf-8")
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    if -(2**31) <= value < 2**31:
        return pickle.BININT + struct.pack("<i", value)
    return pickle.LONG1 + bytes([8]) + struct.pack("<q", value)


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _tuple(items: list[bytes]) -> bytes:
    return pickle.EMPTY_TUPLE if not items else pickle.MARK + b"".join(items) + pickle.TUPLE


def _state_dict_pickle(arrays: OrderedDict[str, np.ndarray]) -> bytes:
    empty_ordered_dict = _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE
    out = [pickle.PROTO + bytes([2]), empty_ordered_dict, pickle.MARK]
    for index, (name, array) in enumerate(arrays.items()):
        storage_id = (
            _tuple(
                [
                    _unicode("storage"),
                    _global("torch", _STORAGE_NAMES[array.dtype.str]),
                    _unicode(str(index)),
                    _unicode("cpu"),
                    _int(array.size),
                ]
            )
            + pickle.BINPERSID
        )
        strides = [s // array.itemsize for s in array.strides]
        out += [
            _unicode(name),
            _global("torch._utils", "_rebuild_tensor_v2"),
            _tuple(
                [
                    storage_id,
                    _int(0),
                    _tuple([_int(d) for d in array.shape]),
                    _tuple([_int(s) for s in strides]),
                    pickle.NEWFALSE,
                    empty_ordered_dict,
                ]
            ),
            pickle.REDUCE,
        ]
    out += [pickle.SETITEMS, pickle.STOP]
    return b"".join(out)


def save_state_dict(arrays: dict[str, np.ndarray], path: str | Path, archive_name: str = "archive") -> None:
    """Writes {name: array} as a PyTorch (zip format) state dict of CPU tensors, without torch."""
    prepared = OrderedDict()
    for name, array in arrays.items():
        array = np.asarray(array, order="C")
        array = array.astype(array.dtype.newbyteorder("<")) if array.dtype.byteorder == ">" else array
        if array.dtype.str not in _STORAGE_NAMES:
            raise StateDictError(f"{name}: dtype {array.dtype} has no PyTorch storage type here")
        prepared[name] = array
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED) as archive:
        archive.writestr(f"{archive_name}/data.pkl", _state_dict_pickle(prepared))
        archive.writestr(f"{archive_name}/byteorder", "little")
        for index, array in enumerate(prepared.values()):
            archive.writestr(f"{archive_name}/data/{index}", array.tobytes())
        archive.writestr(f"{archive_name}/version", "3\n")
