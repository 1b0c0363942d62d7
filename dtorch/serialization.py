"""``dtorch.save`` / ``dtorch.load``: checkpoints in a documented, code-free format.

File format (version 1)
-----------------------
A ZIP archive (entries stored uncompressed, ZIP64 when large) holding:

``dtorch/format``
    the text ``dtorch-checkpoint 1``.
``dtorch/data.json``
    UTF-8 JSON ``{"format": "dtorch-checkpoint", "version": 1, "byteorder": "little",
    "storages": [{"file": ..., "nbytes": ...}, ...], "object": VALUE}``.
``dtorch/storages/<k>``
    raw little-endian bytes of storage ``k``.

A VALUE is a JSON ``null``, ``true``/``false``, string, integer, finite float, an array (a Python
list), or an object with exactly one key naming its type:

=================  ==========================================================================
``{"$tuple": [V]}``        tuple            ``{"$dict": [[K, V], ...]}``   dict (any plain keys)
``{"$odict": [[K, V]]}``   OrderedDict      ``{"$bytes": "<base64>"}``     bytes
``{"$float": "nan"}``      nan/inf/-inf     ``{"$size": [ints]}``         dtorch.Size
``{"$dtype": "float32"}``  dtorch.dtype     ``{"$device": "cuda:0"}``      dtorch.device
``{"$npscalar": {"dtype", "hex"}}``         NumPy scalar
``{"$tensor": {...}}``     Tensor: ``storage`` (index or null when empty), ``offset`` (bytes),
                           ``shape``, ``strides`` (bytes), ``dtype``, ``device``,
                           ``requires_grad``, ``parameter`` (an ``nn.Parameter``)
``{"$ndarray": {...}}``    NumPy array: ``storage``, ``offset``, ``shape``, ``strides``, ``dtype``
=================  ==========================================================================

Tensors that view the same memory share one storage (so they share memory again after loading)
when the span they cover is at most twice their total size; otherwise each is stored on its own.

Safety: loading parses JSON and copies bytes; it never unpickles or imports anything named in the
file, so a crafted file cannot run code. PyTorch's pickle checkpoints are refused with a message.
Every view is bounds-checked against its storage, dtypes come from a fixed list, and each entry's
CRC-32 is verified. Saving to a path is atomic: the archive is written to a temporary file in the
same directory, flushed and fsync'ed, then renamed over the target (``os.replace``), so a crash
mid-save leaves the previous file intact.
"""

import base64
import io
import json
import math
import os
import struct
import sys
import uuid
import zipfile
import zlib
from collections import OrderedDict

import numpy as np

from . import _backend
from . import _dtype as D
from ._device import device as _device_cls
from ._tensor import Size, Tensor

__all__ = ["save", "load"]

FORMAT = "dtorch-checkpoint"
VERSION = 1
_PREFIX = "dtorch/"
_NP_DTYPES = {n: np.dtype(n) for n in (
    "bool", "uint8", "int8", "int16", "int32", "int64", "uint16", "uint32", "uint64", "float16",
    "float32", "float64", "complex64", "complex128")}
_SUPPORTED = ("None, bool, int, float, str, bytes, list, tuple, dict, OrderedDict, dtorch.Tensor, "
              "dtorch.Size, dtorch.dtype, dtorch.device, NumPy arrays and scalars")


# ----------------------------------------------------------------------------- saving
class _Writer:
    """Turns an object into the JSON value tree and the list of storages to write."""

    def __init__(self):
        self.leaves = []      # (desc dict, host array) for every tensor/array, in order
        self.storages = []    # contiguous uint8 arrays

    def encode(self, obj, depth=0):
        if depth > 1000:
            raise ValueError("dtorch.save: object nesting is too deep (> 1000 levels)")
        if obj is None or isinstance(obj, (bool, str)):
            return obj
        if isinstance(obj, int) and type(obj) is int:
            return obj
        if type(obj) is float:
            return obj if math.isfinite(obj) else {"$float": repr(obj)}
        if isinstance(obj, Tensor):
            return {"$tensor": self._leaf(obj, tensor=True)}
        if isinstance(obj, np.ndarray):
            return {"$ndarray": self._leaf(obj, tensor=False)}
        if isinstance(obj, np.generic):
            name = obj.dtype.name
            if name not in _NP_DTYPES:
                raise TypeError(f"dtorch.save cannot store NumPy scalars of dtype {name}")
            return {"$npscalar": {"dtype": name, "hex": obj.astype(obj.dtype.newbyteorder("<"))
                                  .tobytes().hex()}}
        if isinstance(obj, D.dtype):
            return {"$dtype": obj.name}
        if isinstance(obj, _device_cls):
            return {"$device": str(obj)}
        if isinstance(obj, bytes):
            return {"$bytes": base64.b64encode(obj).decode("ascii")}
        if isinstance(obj, Size):
            return {"$size": [int(s) for s in obj]}
        if type(obj) is list:
            return [self.encode(v, depth + 1) for v in obj]
        if type(obj) is tuple:
            return {"$tuple": [self.encode(v, depth + 1) for v in obj]}
        if type(obj) in (dict, OrderedDict):
            items = [[self.encode(k, depth + 1), self.encode(v, depth + 1)]
                     for k, v in obj.items()]
            return {"$odict" if type(obj) is OrderedDict else "$dict": items}
        raise TypeError(f"dtorch.save cannot serialize an object of type "
                        f"{type(obj).__module__}.{type(obj).__qualname__}; supported: "
                        f"{_SUPPORTED} (nested freely)")

    def _leaf(self, obj, tensor):
        if tensor:
            arr = obj._data
            desc = {"dtype": obj.dtype.name, "device": str(obj.device),
                    "requires_grad": bool(obj.requires_grad),
                    "parameter": type(obj).__name__ == "Parameter"
                    and type(obj).__module__.startswith("dtorch.nn")}
            if _backend.is_cuda_array(arr):
                arr = np.ascontiguousarray(_backend.to_device(arr, None))
        else:
            arr = obj
            if arr.dtype.name not in _NP_DTYPES:
                raise TypeError(f"dtorch.save cannot store NumPy arrays of dtype {arr.dtype}")
            desc = {"dtype": arr.dtype.name}
        desc["shape"] = [int(s) for s in arr.shape]
        self.leaves.append((desc, arr))
        return desc

    def assign_storages(self):
        """Give every leaf a storage, sharing one between views of the same memory."""
        groups = {}
        for desc, arr in self.leaves:
            if arr.size == 0:
                desc.update(storage=None, offset=0, strides=[0] * arr.ndim)
                continue
            root = arr
            while isinstance(root.base, np.ndarray):
                root = root.base
            shareable = (sys.byteorder == "little" and arr.dtype.byteorder in "=|<"
                         and (root.flags.c_contiguous or root.flags.f_contiguous))
            key = id(root) if shareable else ("own", id(desc))
            groups.setdefault(key, (root if shareable else None, []))[1].append((desc, arr))
        for root, members in groups.values():
            spans = [_extent(a) for _, a in members]
            lo, hi = min(s[0] for s in spans), max(s[1] for s in spans)
            if root is not None and hi - lo <= 2 * sum(a.nbytes for _, a in members):
                base = _address(root)
                k = self._add(root.reshape(-1, order="A").view(np.uint8)[lo - base:hi - base])
                for desc, a in members:
                    desc.update(storage=k, offset=_address(a) - lo,
                                strides=[int(s) for s in a.strides])
                continue
            for desc, a in members:
                c = np.ascontiguousarray(a)
                if c.dtype.byteorder == ">" or (c.dtype.byteorder == "=" and
                                                sys.byteorder == "big"):
                    c = c.astype(c.dtype.newbyteorder("<"))
                desc.update(storage=self._add(c.reshape(-1).view(np.uint8)), offset=0,
                            strides=[int(s) for s in c.strides])

    def _add(self, u8):
        self.storages.append(u8)
        return len(self.storages) - 1


def _address(arr):
    return arr.__array_interface__["data"][0]


def _extent(arr):
    """Absolute ``[lo, hi)`` byte range an array touches."""
    lo = hi = _address(arr)
    for n, s in zip(arr.shape, arr.strides):
        if s < 0:
            lo += (n - 1) * s
        else:
            hi += (n - 1) * s
    return lo, hi + arr.itemsize


def _write_archive(fh, obj):
    w = _Writer()
    value = w.encode(obj)
    w.assign_storages()
    meta = {"format": FORMAT, "version": VERSION, "byteorder": "little",
            "storages": [{"file": f"{_PREFIX}storages/{k}", "nbytes": int(s.nbytes)}
                         for k, s in enumerate(w.storages)],
            "object": value}
    with zipfile.ZipFile(fh, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(f"{_PREFIX}format", f"{FORMAT} {VERSION}\n")
        zf.writestr(f"{_PREFIX}data.json", json.dumps(meta, separators=(",", ":"),
                                                      allow_nan=False))
        for k, u8 in enumerate(w.storages):
            _write_storage(zf, f"{_PREFIX}storages/{k}", u8)


def _write_storage(zf, name, u8):
    with zf.open(name, "w", force_zip64=u8.nbytes > 2**31) as out:
        out.write(memoryview(u8))


def save(obj, f, pickle_module=None, pickle_protocol=None, _use_new_zipfile_serialization=True):
    """Save ``obj`` (tensors, state dicts, nested containers of plain values) to ``f``.

    Args:
        obj: None, bool, int, float, str, bytes, tensors, NumPy arrays, dtypes, devices, and
            lists/tuples/dicts/OrderedDicts of these, nested (module and optimizer state dicts).
        f: a path (written atomically: temporary file, fsync, rename) or a writable binary file
            object such as ``io.BytesIO``.

    The format is described in :mod:`dtorch.serialization`. ``pickle_module`` and
    ``pickle_protocol`` are accepted for PyTorch compatibility and must be left unset: nothing
    is pickled.

    Raises:
        TypeError: for an object of another type (the format holds data, never code).

    Example:
        >>> dtorch.save({"model": model.state_dict(), "epoch": 3}, "ckpt.pt")
    """
    if pickle_module is not None or pickle_protocol is not None:
        raise ValueError("dtorch.save never pickles; pickle_module/pickle_protocol must be None")
    if isinstance(f, (str, os.PathLike)):
        _atomic_write(os.fspath(f), lambda fh: _write_archive(fh, obj))
        return
    if not hasattr(f, "write"):
        raise TypeError(f"dtorch.save expects a path or a writable file object, got "
                        f"{type(f).__name__}")
    _write_archive(f, obj)
    if hasattr(f, "flush"):
        f.flush()


def _atomic_write(path, write):
    directory = os.path.dirname(os.path.abspath(path))
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{uuid.uuid4().hex[:12]}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o666)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


# ----------------------------------------------------------------------------- loading
def _corrupt(name, why):
    return RuntimeError(f"dtorch.load: {name} is not a valid dtorch checkpoint ({why}); the file "
                        "may be truncated or corrupt")


class _Reader:
    def __init__(self, zf, fh, meta, name, map_location):
        self.zf, self.fh, self.name, self.map_location = zf, fh, name, map_location
        self.specs = meta.get("storages")
        if not isinstance(self.specs, list):
            raise _corrupt(name, "'storages' is missing")
        self.cache = {}

    def storage(self, k):
        if not isinstance(k, int) or isinstance(k, bool) or not 0 <= k < len(self.specs):
            raise _corrupt(self.name, f"storage index {k!r} out of range")
        if k not in self.cache:
            spec = self.specs[k]
            try:
                entry, nbytes = spec["file"], spec["nbytes"]
                info = self.zf.getinfo(entry)
            except (KeyError, TypeError):
                raise _corrupt(self.name, f"storage {k} is missing from the archive") from None
            if not isinstance(nbytes, int) or info.file_size != nbytes:
                raise _corrupt(self.name, f"storage {k} holds {info.file_size} bytes, "
                                          f"expected {nbytes}")
            self.cache[k] = np.frombuffer(self._read(info), dtype=np.uint8)
        return self.cache[k]

    def _read(self, info):
        buf = bytearray(info.file_size)
        if info.compress_type == zipfile.ZIP_STORED and self.fh is not None:
            # Fast path: one read straight into the buffer, then the CRC check zipfile would do.
            self.fh.seek(info.header_offset)
            header = self.fh.read(30)
            if len(header) != 30 or header[:4] != b"PK\x03\x04":
                raise _corrupt(self.name, f"bad local header for {info.filename}")
            name_len, extra_len = struct.unpack("<HH", header[26:30])
            self.fh.seek(info.header_offset + 30 + name_len + extra_len)
            n = self.fh.readinto(buf)
            if n != len(buf):
                raise _corrupt(self.name, f"{info.filename} is cut short")
            if zlib.crc32(buf) != info.CRC:
                raise _corrupt(self.name, f"CRC-32 mismatch in {info.filename}")
            return buf
        with self.zf.open(info) as r:
            view, pos = memoryview(buf), 0
            while pos < len(buf):
                n = r.readinto(view[pos:])
                if not n:
                    raise _corrupt(self.name, f"{info.filename} is cut short")
                pos += n
        return buf

    def decode(self, v, depth=0):
        if depth > 1000:
            raise _corrupt(self.name, "nesting deeper than 1000 levels")
        if v is None or isinstance(v, (bool, int, float, str)):
            return v
        if isinstance(v, list):
            return [self.decode(x, depth + 1) for x in v]
        if not isinstance(v, dict) or len(v) != 1:
            raise _corrupt(self.name, f"unexpected JSON value {str(v)[:80]}")
        (tag, body), = v.items()
        if tag == "$tuple":
            return tuple(self.decode(x, depth + 1) for x in _expect(body, list, self.name))
        if tag in ("$dict", "$odict"):
            out = OrderedDict() if tag == "$odict" else {}
            for pair in _expect(body, list, self.name):
                if not isinstance(pair, list) or len(pair) != 2:
                    raise _corrupt(self.name, "malformed dict item")
                out[self.decode(pair[0], depth + 1)] = self.decode(pair[1], depth + 1)
            return out
        if tag == "$float" and body in ("nan", "inf", "-inf"):
            return float(body)
        if tag == "$bytes":
            return base64.b64decode(_expect(body, str, self.name), validate=True)
        if tag == "$size":
            return Size(int(x) for x in _expect(body, list, self.name))
        if tag == "$dtype" and body in D._NAMES:
            return D._NAMES[body]
        if tag == "$device":
            return _device_cls(_expect(body, str, self.name))
        if tag == "$npscalar":
            body = _expect(body, dict, self.name)
            dt = _np_dtype(body.get("dtype"), self.name)
            raw = bytes.fromhex(body.get("hex", ""))
            if len(raw) != dt.itemsize:
                raise _corrupt(self.name, "bad NumPy scalar")
            return np.frombuffer(raw, dtype=dt.newbyteorder("<"))[0].astype(dt)
        if tag == "$ndarray":
            return self._array(_expect(body, dict, self.name), _np_dtype(body.get("dtype"),
                                                                          self.name))
        if tag == "$tensor":
            return self._tensor(_expect(body, dict, self.name))
        raise _corrupt(self.name, f"unknown tag {tag!r}")

    def _array(self, d, dt):
        shape, strides, off = d.get("shape"), d.get("strides"), d.get("offset")
        if not (_int_list(shape) and _int_list(strides) and len(shape) == len(strides)
                and isinstance(off, int) and all(s >= 0 for s in shape)):
            raise _corrupt(self.name, "malformed array description")
        if d.get("storage") is None:
            if math.prod(shape) != 0:
                raise _corrupt(self.name, "non-empty array without storage")
            return np.empty(shape, dtype=dt)
        buf = self.storage(d["storage"])
        lo, hi = off, off + dt.itemsize
        for n, s in zip(shape, strides):
            if s < 0:
                lo += (n - 1) * s
            else:
                hi += (n - 1) * s
        if math.prod(shape) and (lo < 0 or hi > buf.nbytes):
            raise _corrupt(self.name, f"array view [{lo}, {hi}) exceeds its storage of "
                                      f"{buf.nbytes} bytes")
        return np.ndarray(shape, dtype=dt, buffer=buf, offset=off, strides=strides)

    def _tensor(self, d):
        name = d.get("dtype")
        if name not in D._NAMES:
            raise _corrupt(self.name, f"unsupported tensor dtype {name!r}")
        arr = self._array(d, D._NAMES[name].np)
        location = d.get("device", "cpu")
        if not isinstance(location, str):
            raise _corrupt(self.name, "bad device")
        t = Tensor._wrap(arr)
        t = _place(t, location, self.map_location)
        if d.get("requires_grad"):
            t.requires_grad_(True)
        if d.get("parameter"):
            from . import nn

            t = nn.Parameter(t, requires_grad=bool(d.get("requires_grad")))
        return t


def _expect(v, typ, name):
    if not isinstance(v, typ):
        raise _corrupt(name, f"expected a JSON {typ.__name__}, got {type(v).__name__}")
    return v


def _int_list(v):
    return isinstance(v, list) and all(isinstance(x, int) and not isinstance(x, bool) for x in v)


def _np_dtype(name, fname):
    if name not in _NP_DTYPES:
        raise _corrupt(fname, f"unsupported dtype {name!r}")
    return _NP_DTYPES[name]


def _place(t, location, map_location):
    """Move a freshly loaded CPU tensor where ``map_location`` says (default: where it was)."""
    if callable(map_location) and not isinstance(map_location, _device_cls):
        out = map_location(t, location)
        if out is None:
            return _move(t, location)
        if isinstance(out, Tensor):
            return out
        return _move(t, str(out))
    if map_location is None:
        target = location
    elif isinstance(map_location, dict):
        target = map_location.get(location, location)
    else:
        target = map_location
    return _move(t, str(_device_cls(target) if not isinstance(target, _device_cls) else target))


def _move(t, target):
    dev = _device_cls(target)
    if dev.type == "cpu":
        return t
    if not _backend.cuda_available():
        raise RuntimeError("Attempting to deserialize object on a CUDA device but "
                           "dtorch.cuda.is_available() is False. If you are running on a "
                           "CPU-only machine, please use dtorch.load with "
                           "map_location=dtorch.device('cpu') to map your storages to the CPU.")
    return t.to(dev)


def load(f, map_location=None, pickle_module=None, *, weights_only=True, mmap=None, **kwargs):
    """Load an object saved with :func:`dtorch.save`.

    Args:
        f: a path or a readable binary file object (``io.BytesIO``).
        map_location: where tensors go: None (where they were saved), a device or string
            (``"cpu"``, ``"cuda:0"``), a dict mapping saved locations to new ones
            (``{"cuda:0": "cpu"}``), or a callable ``fn(tensor, location) -> tensor`` that gets
            each tensor on the CPU with its saved location string (return None for the default).
        weights_only: accepted for PyTorch compatibility; the format holds only data, so
            loading is always as safe as PyTorch's ``weights_only=True``.

    Raises:
        RuntimeError: truncated, corrupt or foreign files (including PyTorch pickle checkpoints,
            which are refused without being unpickled).
    """
    if pickle_module is not None:
        raise ValueError("dtorch.load never unpickles; pickle_module must be None")
    if isinstance(f, (str, os.PathLike)):
        name = repr(os.fspath(f))
        with open(f, "rb") as fh:
            return _load_from(fh, name, map_location)
    if not hasattr(f, "read"):
        raise TypeError(f"dtorch.load expects a path or a readable file object, got "
                        f"{type(f).__name__}")
    name = "the file object"
    if not (hasattr(f, "seekable") and f.seekable()):
        f = io.BytesIO(f.read())
    return _load_from(f, name, map_location)


def _load_from(fh, name, map_location):
    start = fh.tell()
    head = fh.read(4)
    fh.seek(start)
    if not head.startswith(b"PK"):
        if head[:1] == b"\x80":
            raise RuntimeError(f"dtorch.load: {name} is a Python pickle (e.g. a legacy PyTorch "
                               "checkpoint), not a dtorch checkpoint; dtorch never unpickles "
                               "files because a pickle can run arbitrary code")
        raise _corrupt(name, f"it does not start with a zip signature (first bytes {head!r})")
    try:
        zf = zipfile.ZipFile(fh)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError) as e:
        raise _corrupt(name, f"not a readable zip archive: {e}") from None
    with zf:
        names = set(zf.namelist())
        if f"{_PREFIX}data.json" not in names:
            if any(n.endswith("data.pkl") for n in names):
                raise RuntimeError(
                    f"dtorch.load: {name} is a PyTorch (pickle-based) checkpoint; dtorch never "
                    "unpickles files because a pickle can run arbitrary code. Convert it with "
                    "PyTorch: load it there and save plain tensors/state dicts with dtorch.save "
                    "after dtorch.from_dlpack / dtorch.tensor.")
            raise _corrupt(name, f"{_PREFIX}data.json is missing")
        try:
            meta = json.loads(zf.read(f"{_PREFIX}data.json").decode("utf-8"))
        except (zipfile.BadZipFile, UnicodeDecodeError, ValueError, OSError, EOFError) as e:
            raise _corrupt(name, f"unreadable description: {e}") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT:
            raise _corrupt(name, "wrong format marker")
        if meta.get("version") != VERSION:
            raise RuntimeError(f"dtorch.load: {name} has format version {meta.get('version')!r};"
                               f" this dtorch reads version {VERSION}")
        reader = _Reader(zf, fh, meta, name, map_location)
        try:
            return reader.decode(meta.get("object"))
        except (zipfile.BadZipFile, OSError, EOFError, ValueError, KeyError) as e:
            raise _corrupt(name, f"{type(e).__name__}: {e}") from None
