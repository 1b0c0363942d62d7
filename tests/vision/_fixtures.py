"""Small files in the official dataset formats (MNIST IDX, gzipped; CIFAR-10 python batches) and
a local HTTP server on 127.0.0.1 to download them from: shared by the vision and example tests."""

import contextlib
import gzip
import hashlib
import http.server
import io
import pickle
import tarfile
import threading

import numpy as np


def _idx(arr):
    code = {np.uint8: 0x08, np.int32: 0x0C}[arr.dtype.type]
    header = bytes([0, 0, code, arr.ndim]) + np.asarray(arr.shape, ">i4").tobytes()
    return header + arr.astype(arr.dtype.newbyteorder(">")).tobytes()


def _md5(data):
    return hashlib.md5(data).hexdigest()


class _Handler(http.server.BaseHTTPRequestHandler):
    """Serves ``server.files``; honours ``Range``; cuts a response short once for paths in
    ``server.cut_once``; records ``(path, range)`` per request."""

    def do_GET(self):  # noqa: N802 - http.server's API
        srv = self.server
        rng = self.headers.get("Range")
        srv.log.append((self.path, rng))
        data = srv.files.get(self.path)
        if data is None:
            self.send_error(404)
            return
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        if start >= len(data) and rng:
            self.send_response(416)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        body = data[start:]
        self.send_response(206 if rng else 200)
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.path in srv.cut_once:
            srv.cut_once.discard(self.path)
            self.wfile.write(body[: len(body) // 2])
            self.close_connection = True
            return
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@contextlib.contextmanager
def local_server():
    """An HTTP server on 127.0.0.1 (a free port) serving ``srv.files`` through ``_Handler``;
    ``srv.url`` is its base URL. Shut down on exit."""
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    srv.files, srv.log, srv.cut_once = {}, [], set()
    srv.url = f"http://127.0.0.1:{srv.server_address[1]}"
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield srv
    finally:
        srv.shutdown()
        srv.server_close()


def _mnist_files(seed):
    rng = np.random.default_rng(seed)
    out, arrays = {}, {}
    for prefix, n in (("train", 12), ("t10k", 5)):
        images = rng.integers(0, 256, (n, 28, 28), dtype=np.uint8)
        labels = rng.integers(0, 10, n, dtype=np.uint8)
        arrays[prefix] = (images, labels)
        out[f"{prefix}-images-idx3-ubyte.gz"] = gzip.compress(_idx(images))
        out[f"{prefix}-labels-idx1-ubyte.gz"] = gzip.compress(_idx(labels))
    return out, arrays


def _serve_mnist(server, monkeypatch, cls, seed=0, mirror="/mnist/"):
    files, arrays = _mnist_files(seed)
    for name, data in files.items():
        server.files[mirror + name] = data
    monkeypatch.setattr(cls, "mirrors", [server.url + mirror])
    monkeypatch.setattr(cls, "resources", [(n, _md5(d)) for n, d in files.items()])
    return files, arrays


def _cifar_archive(seed=0, bytes_keys=False):
    """CIFAR-10's python batches (2 images per training batch, 3 test images) in a ``.tar.gz``;
    returns ``(archive, {member: pickled bytes}, {batch: (data, labels)})``. With ``bytes_keys``
    the dict keys and strings are bytes, as the official (Python 2) pickles read with
    ``encoding="bytes"`` hold them."""
    s = (lambda v: v.encode()) if bytes_keys else (lambda v: v)
    rng = np.random.default_rng(seed)
    members, batches = {}, {}
    for name, n in [(f"data_batch_{i}", 2) for i in range(1, 6)] + [("test_batch", 3)]:
        data = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
        labels = rng.integers(0, 10, n).tolist()
        batches[name] = (data, labels)
        members[name] = pickle.dumps({s("batch_label"): s(f"{name} of 6"), s("labels"): labels,
                                      s("data"): data,
                                      s("filenames"): [s(f"img{i}.png") for i in range(n)]},
                                     protocol=2)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship",
             "truck"]
    members["batches.meta"] = pickle.dumps({s("num_cases_per_batch"): 2,
                                            s("label_names"): [s(c) for c in names],
                                            s("num_vis"): 3072}, protocol=2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(f"cifar-10-batches-py/{name}")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue(), members, batches
