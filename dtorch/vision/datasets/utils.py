"""Downloading with checksums and resumption, archive extraction, and the restricted unpickler
used for CIFAR's python batches."""

import gzip
import hashlib
import http.client
import os
import pickle
import shutil
import tarfile
import urllib.error
import urllib.request

import numpy as np

__all__ = ["calculate_md5", "check_integrity", "download_url", "extract_archive",
           "download_and_extract_archive", "restricted_load"]

USER_AGENT = "dtorch-vision"
_CHUNK = 1 << 20


def calculate_md5(fpath, chunk_size=_CHUNK):
    md5 = hashlib.md5(usedforsecurity=False)
    with open(fpath, "rb") as f:
        for chunk in iter(lambda: f.read(chunk_size), b""):
            md5.update(chunk)
    return md5.hexdigest()


def check_integrity(fpath, md5=None):
    """True when ``fpath`` exists and (if given) its MD5 matches."""
    if not os.path.isfile(fpath):
        return False
    return md5 is None or calculate_md5(fpath) == md5


def _fetch(url, part, timeout):
    """Append ``url`` to ``part``, resuming from its current size with an HTTP Range request.
    A server that ignores the range (200) restarts the file; 416 means it is complete."""
    have = os.path.getsize(part) if os.path.exists(part) else 0
    headers = {"User-Agent": USER_AGENT}
    if have:
        headers["Range"] = f"bytes={have}-"
    req = urllib.request.Request(url, headers=headers)
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)  # noqa: S310 - http(s) URLs only
    except urllib.error.HTTPError as e:
        if e.code == 416 and have:
            return
        raise
    with resp:
        mode = "ab" if (have and resp.status == 206) else "wb"
        expected, got = resp.length, 0  # Content-Length of this response (None if unknown)
        with open(part, mode) as out:
            while True:
                chunk = resp.read(_CHUNK)
                if not chunk:
                    break
                out.write(chunk)
                got += len(chunk)
        if expected is not None and got < expected:
            # http.client returns b"" when the peer closes early; make it a retryable error
            raise http.client.IncompleteRead(b"", expected - got)


def download_url(url, root, filename=None, md5=None, max_attempts=3, timeout=60):
    """Download ``url`` to ``root/filename`` unless a file with the right MD5 is already there.

    The data goes to ``filename.part`` first: an interrupted transfer is resumed (HTTP Range)
    on the next attempt, and a finished file whose checksum does not match is deleted and
    downloaded again from scratch, once. Only a verified file is renamed to its final name.

    Raises:
        RuntimeError: the file could not be fetched, or its checksum stays wrong.
    """
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"download_url only fetches http(s) URLs, got {url!r}")
    root = os.path.expanduser(root)
    filename = filename or os.path.basename(url)
    fpath = os.path.join(root, filename)
    os.makedirs(root, exist_ok=True)
    if check_integrity(fpath, md5):
        return fpath
    part = fpath + ".part"
    restarted = False
    attempt = 0
    while True:
        attempt += 1
        try:
            _fetch(url, part, timeout)
        except (urllib.error.URLError, http.client.HTTPException, OSError) as e:
            if isinstance(e, urllib.error.HTTPError) or attempt >= max_attempts:
                raise RuntimeError(f"Error downloading {url} to {fpath}: {e}") from e
            continue  # connection cut: resume from what we have
        if md5 is None or calculate_md5(part) == md5:
            os.replace(part, fpath)
            return fpath
        os.remove(part)
        if restarted:
            raise RuntimeError(f"File {filename} downloaded from {url} is corrupted: its MD5 "
                               f"does not match {md5}")
        restarted, attempt = True, 0


def _safe_members(tar, dest):
    dest = os.path.realpath(dest)
    for m in tar.getmembers():
        target = os.path.realpath(os.path.join(dest, m.name))
        if os.path.commonpath([dest, target]) != dest or m.issym() or m.islnk() or m.isdev():
            raise RuntimeError(f"Refusing to extract {m.name!r}: it would leave {dest} or is a "
                               "link/device")
        yield m


def extract_archive(from_path, to_path=None, remove_finished=False):
    """Extract ``.tar``, ``.tar.gz``/``.tgz`` (members confined to ``to_path``) or a single
    ``.gz`` file. Returns ``to_path``."""
    to_path = to_path or os.path.dirname(from_path)
    if from_path.endswith((".tar.gz", ".tgz", ".tar")):
        with tarfile.open(from_path, "r:*") as tar:
            tar.extractall(to_path, members=_safe_members(tar, to_path))  # noqa: S202
    elif from_path.endswith(".gz"):
        out = os.path.join(to_path, os.path.basename(from_path)[:-3])
        with gzip.open(from_path, "rb") as src, open(out + ".tmp", "wb") as dst:
            shutil.copyfileobj(src, dst)
        os.replace(out + ".tmp", out)
    else:
        raise ValueError(f"Extraction of {from_path} not supported")
    if remove_finished:
        os.remove(from_path)
    return to_path


def download_and_extract_archive(url, download_root, extract_root=None, filename=None, md5=None,
                                 remove_finished=False):
    path = download_url(url, download_root, filename, md5)
    return extract_archive(path, extract_root or download_root, remove_finished)


# ----------------------------------------------------------------------------- restricted pickle
def _safe_dtype(*args):
    dt = np.dtype(*args)
    if dt.hasobject:
        raise pickle.UnpicklingError("object dtypes are not allowed in a dataset file")
    return dt


def _latin1_encode(s, encoding="latin1"):
    # Protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, 'latin1').
    if not isinstance(s, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("only latin-1 byte strings are allowed")
    return s.encode("latin1")


_reconstruct = np.empty(0).__reduce__()[0]  # numpy's _reconstruct, whatever module holds it
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): _safe_dtype,
    ("_codecs", "encode"): _latin1_encode,
}


class _RestrictedUnpickler(pickle.Unpickler):
    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise pickle.UnpicklingError(
                f"refusing to load global {module}.{name}: dataset files may hold only NumPy "
                "arrays, lists, dicts, bytes, str and int") from None


def _validate(obj, depth=0):
    if depth > 50:
        raise pickle.UnpicklingError("dataset file nests too deeply")
    if isinstance(obj, np.ndarray):
        if obj.dtype.hasobject or type(obj) is not np.ndarray:
            raise pickle.UnpicklingError("only plain numeric NumPy arrays are allowed")
    elif isinstance(obj, dict):
        for k, v in obj.items():
            _validate(k, depth + 1)
            _validate(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            _validate(v, depth + 1)
    elif type(obj) not in (str, bytes, int):
        raise pickle.UnpicklingError(f"{type(obj).__name__} values are not allowed in a dataset "
                                     "file (only NumPy arrays, lists, dicts, bytes, str, int)")


def restricted_load(f):
    """Unpickle a dataset file (e.g. CIFAR's python batches) admitting only NumPy arrays,
    lists, dicts, bytes, str and int; any other global or value raises
    ``pickle.UnpicklingError``, before anything is called."""
    obj = _RestrictedUnpickler(f, encoding="latin1").load()
    _validate(obj)
    return obj
