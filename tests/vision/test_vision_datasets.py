"""Vision datasets on small files generated here in the official formats, downloaded from a local
HTTP server on 127.0.0.1 (never the internet): checksums, resume, restart, mirrors, the restricted
CIFAR unpickler, and the offline Digits dataset."""

import gzip
import io
import os
import pickle
import tarfile

import numpy as np
import pytest
from _fixtures import _cifar_archive, _idx, _md5, _mnist_files, _serve_mnist, local_server

import dtorch
from dtorch.vision import transforms as T
from dtorch.vision.datasets import CIFAR10, MNIST, Digits, FashionMNIST
from dtorch.vision.datasets.utils import download_url, extract_archive, restricted_load

pytestmark = pytest.mark.timeout(60)


# ----------------------------------------------------------------------------- fixtures
@pytest.fixture
def server():
    with local_server() as srv:
        yield srv


# ----------------------------------------------------------------------------- MNIST
@pytest.mark.parametrize("cls", [MNIST, FashionMNIST])
def test_mnist_download_and_read(cls, server, monkeypatch, tmp_path):
    _, arrays = _serve_mnist(server, monkeypatch, cls)
    ds = cls(tmp_path, train=True, download=True)
    images, labels = arrays["train"]
    assert len(ds) == 12 and ds.data.dtype == dtorch.uint8 and ds.targets.dtype == dtorch.int64
    img, target = ds[3]
    np.testing.assert_array_equal(img, images[3])
    assert target == int(labels[3])
    assert os.path.isfile(tmp_path / cls.__name__ / "raw" / "train-images-idx3-ubyte")
    test = cls(tmp_path, train=False, transform=T.ToTensor(), target_transform=lambda y: y + 100)
    x, y = test[0]
    assert x.shape == (1, 28, 28) and x.dtype == dtorch.float32
    np.testing.assert_allclose(x.numpy()[0], arrays["t10k"][0][0] / 255.0, rtol=1e-6)
    assert y == int(arrays["t10k"][1][0]) + 100
    n_requests = len(server.log)
    cls(tmp_path, train=True, download=True)  # already there: nothing fetched
    assert len(server.log) == n_requests == 4


def test_mnist_reads_gzipped_files_directly_and_reports_missing(tmp_path):
    files, arrays = _mnist_files(1)
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    with pytest.raises(RuntimeError, match="Dataset not found"):
        MNIST(tmp_path)
    for name, data in files.items():
        (raw / name).write_bytes(data)
    ds = MNIST(tmp_path, train=False)
    np.testing.assert_array_equal(ds.data.numpy(), arrays["t10k"][0])
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(_idx(np.zeros(4, np.uint8))))
    with pytest.raises(RuntimeError, match="do not match"):
        MNIST(tmp_path, train=False)


def test_mirror_fallback(server, monkeypatch, tmp_path):
    files, _ = _serve_mnist(server, monkeypatch, MNIST, mirror="/good/")
    monkeypatch.setattr(MNIST, "mirrors", [server.url + "/missing/", server.url + "/good/"])
    assert len(MNIST(tmp_path, download=True)) == 12
    assert any(p.startswith("/missing/") for p, _ in server.log)


# ----------------------------------------------------------------------------- download
def test_download_resumes_an_interrupted_transfer(server, tmp_path):
    data = os.urandom(300_000)
    server.files["/f.bin"] = data
    server.cut_once.add("/f.bin")
    path = download_url(server.url + "/f.bin", tmp_path, md5=_md5(data))
    assert open(path, "rb").read() == data
    assert server.log[0] == ("/f.bin", None)
    assert server.log[1][1] == f"bytes={len(data) // 2}-"     # picked up where it stopped
    assert sorted(os.listdir(tmp_path)) == ["f.bin"]


def test_download_restarts_cleanly_after_a_corrupt_partial_file(server, tmp_path):
    data = os.urandom(50_000)
    server.files["/f.bin"] = data
    (tmp_path / "f.bin.part").write_bytes(b"junk" * 100)         # stale garbage from a past run
    download_url(server.url + "/f.bin", tmp_path, md5=_md5(data))
    assert (tmp_path / "f.bin").read_bytes() == data
    assert [r for _, r in server.log] == ["bytes=400-", None]     # resume, mismatch, restart


def test_download_checksum_mismatch_raises_and_leaves_nothing(server, tmp_path):
    server.files["/f.bin"] = b"abc"
    with pytest.raises(RuntimeError, match="corrupted"):
        download_url(server.url + "/f.bin", tmp_path, md5="0" * 32)
    assert os.listdir(tmp_path) == []
    with pytest.raises(RuntimeError, match="404"):
        download_url(server.url + "/nope.bin", tmp_path)


def test_tar_extraction_refuses_paths_outside_the_target(tmp_path):
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as tar:
        info = tarfile.TarInfo("../escaped.txt")
        info.size = 2
        tar.addfile(info, io.BytesIO(b"hi"))
    (tmp_path / "out").mkdir()
    with pytest.raises(RuntimeError, match="Refusing to extract"):
        extract_archive(str(evil), str(tmp_path / "out"))
    assert not (tmp_path / "escaped.txt").exists()


# ----------------------------------------------------------------------------- CIFAR-10
def test_cifar10_download_and_read(server, monkeypatch, tmp_path):
    archive, members, batches = _cifar_archive()
    server.files["/cifar.tar.gz"] = archive
    monkeypatch.setattr(CIFAR10, "url", server.url + "/cifar.tar.gz")
    monkeypatch.setattr(CIFAR10, "tgz_md5", _md5(archive))
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", _md5(members[
        f"data_batch_{i}"])] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(members["test_batch"])]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(members["batches.meta"])})
    with pytest.raises(RuntimeError, match="Dataset not found or corrupted"):
        CIFAR10(tmp_path)
    ds = CIFAR10(tmp_path, train=True, download=True)
    assert len(ds) == 10 and ds.data.shape == (10, 32, 32, 3) and ds.classes[3] == "cat"
    img, label = ds[2]                      # batch 2, first image: CHW planes -> HWC
    data, labels = batches["data_batch_2"]
    np.testing.assert_array_equal(img, data[0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert label == labels[0]
    test = CIFAR10(tmp_path, train=False, transform=T.ToTensor())
    assert len(test) == 3 and test[0][0].shape == (3, 32, 32)


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_restricted_unpickler_refuses_code_and_foreign_values(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"data": np.zeros(3, np.uint8), "labels": [_Evil(str(marker))]},
                        protocol=2)
    with pytest.raises(pickle.UnpicklingError, match="refusing to load global"):
        restricted_load(io.BytesIO(evil))
    assert not marker.exists()
    with pytest.raises(pickle.UnpicklingError, match="float values are not allowed"):
        restricted_load(io.BytesIO(pickle.dumps({"labels": [1.5]}, protocol=2)))
    with pytest.raises(pickle.UnpicklingError, match="object dtypes are not allowed|plain"):
        restricted_load(io.BytesIO(pickle.dumps(np.array(["a", 1], dtype=object), protocol=2)))
    ok = restricted_load(io.BytesIO(pickle.dumps({"data": np.arange(4, dtype=np.uint8),
                                                  "labels": [1, 2], "b": b"x"}, protocol=4)))
    assert ok["labels"] == [1, 2] and ok["data"].tolist() == [0, 1, 2, 3]


# ----------------------------------------------------------------------------- Digits
def test_digits_fixed_split_and_pipeline():
    pytest.importorskip("sklearn")
    train, test = Digits(train=True), Digits(train=False)
    assert (len(train), len(test)) == (1437, 360)
    img, label = test[0]
    assert img.shape == (8, 8) and img.dtype == np.uint8 and 0 <= label <= 9
    assert train.data.max() == 255
    pipe = Digits(train=False, transform=T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))]))
    x, _ = pipe[0]
    assert x.shape == (1, 8, 8) and -1.0 <= x.min().item() and x.max().item() <= 1.0
