"""dtorch.save / dtorch.load: round trips, shared storage, map_location, atomic writes, corrupt
and malicious files (refused without running their payload)."""

import io
import json
import os
import pickle
import subprocess
import sys
import textwrap
import zipfile
from collections import OrderedDict

import numpy as np
import pytest

import dtorch
from dtorch import serialization


def _roundtrip(obj, **kw):
    buf = io.BytesIO()
    dtorch.save(obj, buf)
    buf.seek(0)
    return dtorch.load(buf, **kw)


def _same(a, b):
    assert type(a) is type(b), (type(a), type(b))
    if isinstance(a, dtorch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and a.requires_grad == b.requires_grad
        np.testing.assert_array_equal(a.detach().numpy(), b.detach().numpy())
    elif isinstance(a, np.ndarray):
        assert a.dtype == b.dtype
        np.testing.assert_array_equal(a, b)
    elif isinstance(a, dict):
        assert list(a) == list(b)
        for k in a:
            _same(a[k], b[k])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b):
            _same(x, y)
    elif isinstance(a, float) and a != a:
        assert b != b
    else:
        assert a == b


def test_plain_values_and_containers_roundtrip():
    obj = {"none": None, "t": True, "i": -(2**70), "f": 0.1, "inf": float("-inf"),
           "nan": float("nan"), "s": "héllo", "b": b"\x00\xff", "l": [1, [2, (3, "x")]],
           7: "int key", (1, 2): "tuple key", "od": OrderedDict([("z", 1), ("a", 2)]),
           "dt": dtorch.float16, "dev": dtorch.device("cuda:1"), "size": dtorch.Size([2, 3]),
           "np": np.arange(6, dtype=np.int16).reshape(2, 3), "npf": np.float32(2.5)}
    _same(obj, _roundtrip(obj))


def test_tensors_all_dtypes_and_requires_grad():
    ts = [dtorch.tensor([1.5, -2.0], dtype=d) for d in
          (dtorch.float16, dtorch.float32, dtorch.float64)]
    ts += [dtorch.tensor([1, -2, 3], dtype=d) for d in
           (dtorch.int8, dtorch.int16, dtorch.int32, dtorch.int64)]
    ts += [dtorch.tensor([0, 255], dtype=dtorch.uint8), dtorch.tensor([True, False]),
           dtorch.tensor(3.0), dtorch.zeros(0, 4), dtorch.randn(3, 4, requires_grad=True)]
    _same(ts, _roundtrip(ts))


def test_optimizer_like_state_dict_roundtrip():
    w = dtorch.randn(4, 3)
    state = {
        "state": {0: {"step": dtorch.tensor(10.0), "exp_avg": dtorch.randn(4, 3),
                      "exp_avg_sq": dtorch.rand(4, 3)},
                  1: {"step": 10, "momentum_buffer": None}},
        "param_groups": [{"lr": 1e-3, "betas": (0.9, 0.999), "eps": 1e-8, "weight_decay": 0,
                          "amsgrad": False, "maximize": False, "foreach": None,
                          "params": [0, 1]}],
    }
    model = OrderedDict([("fc.weight", w), ("fc.bias", dtorch.zeros(4)),
                         ("bn.num_batches_tracked", dtorch.tensor(5))])
    ckpt = {"model": model, "optimizer": state, "epoch": 3}
    _same(ckpt, _roundtrip(ckpt))


def test_views_share_storage_after_load():
    base = dtorch.arange(12.0).reshape(3, 4)
    obj = {"base": base, "row": base[1], "t": base.t(), "again": base}
    out = _roundtrip(obj)
    assert out["again"] is not None and out["t"].tolist() == base.t().tolist()
    out["base"][1, 2] = 100.0
    assert out["row"][2].item() == 100.0 and out["t"][2, 1].item() == 100.0
    assert out["again"][1, 2].item() == 100.0


def test_small_view_of_a_large_tensor_is_stored_alone():
    big = dtorch.zeros(100_000)
    buf = io.BytesIO()
    dtorch.save(big[:10], buf)
    assert len(buf.getvalue()) < 4096                # not the whole 400 kB storage
    buf.seek(0)
    assert dtorch.load(buf).shape == (10,)


def test_save_to_path_and_format_is_documented_json(tmp_path):
    path = tmp_path / "ckpt.pt"
    dtorch.save({"w": dtorch.ones(2, 2)}, path)
    with zipfile.ZipFile(path) as zf:
        meta = json.loads(zf.read("dtorch/data.json"))
        assert meta["format"] == "dtorch-checkpoint" and meta["version"] == 1
        desc = meta["object"]["$dict"][0][1]["$tensor"]
        assert desc["dtype"] == "float32" and desc["shape"] == [2, 2]
        assert desc["device"] == "cpu" and desc["requires_grad"] is False
        assert zf.read("dtorch/storages/0") == np.ones(4, np.float32).tobytes()
    assert dtorch.load(str(path))["w"].tolist() == [[1.0, 1.0], [1.0, 1.0]]
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]  # no temp files left


def test_unsupported_object_is_refused_at_save():
    with pytest.raises(TypeError, match="cannot serialize an object of type"):
        dtorch.save({"f": lambda: 0}, io.BytesIO())


def test_map_location_variants():
    t = dtorch.arange(3.0)
    assert _roundtrip(t, map_location="cpu").device == dtorch.device("cpu")
    assert _roundtrip(t, map_location=dtorch.device("cpu")).tolist() == [0.0, 1.0, 2.0]
    assert _roundtrip(t, map_location={"cuda:0": "cpu"}).device.type == "cpu"
    seen = []

    def fn(tensor, location):
        seen.append(location)
        return tensor * 2
    assert _roundtrip(t, map_location=fn).tolist() == [0.0, 2.0, 4.0] and seen == ["cpu"]
    if not dtorch.cuda.is_available():
        with pytest.raises(RuntimeError, match="map_location=dtorch.device"):
            _roundtrip(t, map_location="cuda:0")


@pytest.mark.cuda
@pytest.mark.skipif(not dtorch.cuda.is_available(), reason="needs CuPy and a GPU")
def test_map_location_moves_between_cpu_and_cuda():
    t = dtorch.arange(4.0, device="cuda")
    buf = io.BytesIO()
    dtorch.save({"t": t}, buf)
    buf.seek(0)
    assert dtorch.load(buf)["t"].device == dtorch.device("cuda:0")
    buf.seek(0)
    cpu = dtorch.load(buf, map_location="cpu")["t"]
    assert cpu.device.type == "cpu" and cpu.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert _roundtrip(cpu, map_location="cuda:0").is_cuda


def test_interrupted_save_keeps_the_previous_file(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.pt"
    dtorch.save({"epoch": 1, "w": dtorch.ones(1000)}, path)
    before = path.read_bytes()
    real = serialization._write_storage

    def crash(zf, name, u8):
        real(zf, name, u8[: len(u8) // 2])           # half the bytes hit the disk, then...
        raise OSError("disk on fire")
    monkeypatch.setattr(serialization, "_write_storage", crash)
    with pytest.raises(OSError, match="disk on fire"):
        dtorch.save({"epoch": 2, "w": dtorch.zeros(1000)}, path)
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pt"]
    assert dtorch.load(path)["epoch"] == 1


def test_killed_process_mid_save_keeps_the_previous_file(tmp_path):
    path = tmp_path / "ckpt.pt"
    dtorch.save({"epoch": 1}, path)
    script = textwrap.dedent(f"""
        import os, sys
        sys.path.insert(0, {os.getcwd()!r})
        import dtorch
        from dtorch import serialization
        def die(zf, name, u8):
            os._exit(9)
        serialization._write_storage = die
        dtorch.save({{"epoch": 2, "w": dtorch.ones(10)}}, {str(path)!r})
    """)
    proc = subprocess.run([sys.executable, "-c", script], timeout=60)
    assert proc.returncode == 9
    assert dtorch.load(path) == {"epoch": 1}


def test_truncated_and_corrupt_files_raise_clear_errors(tmp_path):
    buf = io.BytesIO()
    dtorch.save({"w": dtorch.randn(256)}, buf)
    data = buf.getvalue()
    for bad in (data[: len(data) // 2], data[:-30], b"", b"garbage" * 10):
        with pytest.raises(RuntimeError, match="not a valid dtorch checkpoint"):
            dtorch.load(io.BytesIO(bad))
    # flip one byte inside the tensor data: the CRC check catches it
    storage_at = data.index(b"dtorch/storages/0") + len("dtorch/storages/0") + 40
    flipped = bytearray(data)
    flipped[storage_at] ^= 0xFF
    path = tmp_path / "flipped.pt"
    path.write_bytes(bytes(flipped))
    with pytest.raises(RuntimeError, match="CRC-32 mismatch|not a valid"):
        dtorch.load(path)


def _zip(entries):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    buf.seek(0)
    return buf


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_malicious_files_are_refused_without_running_the_payload(tmp_path):
    marker = tmp_path / "pwned"
    evil = pickle.dumps({"w": _Payload(str(marker))})
    # a raw pickle (legacy torch.save format)
    with pytest.raises(RuntimeError, match="pickle"):
        dtorch.load(io.BytesIO(evil))
    # a PyTorch-style zip checkpoint whose data.pkl carries the payload
    with pytest.raises(RuntimeError, match="PyTorch .*checkpoint"):
        dtorch.load(_zip({"archive/data.pkl": evil, "archive/version": b"3"}))
    # our own layout with unknown tags / bad dtypes / out-of-bounds views
    def meta(obj, storages=()):
        return json.dumps({"format": "dtorch-checkpoint", "version": 1, "byteorder": "little",
                           "storages": list(storages), "object": obj})
    bad = [
        meta({"$class": ["os", "system"]}),
        meta({"$ndarray": {"storage": None, "offset": 0, "shape": [1], "strides": [8],
                           "dtype": "object"}}),
        meta({"$tensor": {"storage": 0, "offset": 0, "shape": [1000], "strides": [4],
                          "dtype": "float32", "device": "cpu"}},
             [{"file": "dtorch/storages/0", "nbytes": 8}]),
        meta({"$tensor": {"storage": 0, "offset": 8, "shape": [2], "strides": [-8],
                          "dtype": "float64", "device": "cpu"}},
             [{"file": "dtorch/storages/0", "nbytes": 8}]),
    ]
    for m in bad:
        with pytest.raises(RuntimeError, match="not a valid dtorch checkpoint"):
            dtorch.load(_zip({"dtorch/data.json": m, "dtorch/storages/0": b"\0" * 8}))
    assert not marker.exists()


def test_file_object_without_seek_is_supported():
    class OneWay(io.RawIOBase):
        def __init__(self, data):
            self._b = io.BytesIO(data)

        def readable(self):
            return True

        def readinto(self, b):
            return self._b.readinto(b)

    buf = io.BytesIO()
    dtorch.save([dtorch.ones(3)], buf)
    assert dtorch.load(io.BufferedReader(OneWay(buf.getvalue())))[0].tolist() == [1.0] * 3


def test_module_and_optimizer_state_roundtrip_resumes_training_exactly(tmp_path):
    from dtorch import nn, optim

    def make():
        dtorch.manual_seed(0)
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
        return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    def step(model, opt, x):
        opt.zero_grad()
        model(x).pow(2).mean().backward()
        opt.step()

    x = dtorch.randn(8, 3)
    model, opt = make()
    step(model, opt, x)
    path = tmp_path / "ckpt.pt"
    dtorch.save({"model": model.state_dict(), "opt": opt.state_dict()}, path)
    step(model, opt, x)                                 # the run that was not interrupted

    model2, opt2 = make()
    ckpt = dtorch.load(path)
    model2.load_state_dict(ckpt["model"])
    opt2.load_state_dict(ckpt["opt"])
    step(model2, opt2, x)                               # the resumed run
    for a, b in zip(model.state_dict().values(), model2.state_dict().values()):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    saved_param = dtorch.load(_buf(model[0].weight))
    assert type(saved_param) is nn.Parameter and saved_param.requires_grad


def _buf(obj):
    buf = io.BytesIO()
    dtorch.save(obj, buf)
    buf.seek(0)
    return buf
