"""The seed-tutorial examples run end to end with short settings: LeNet (structure, parameter
count, gradients), the hand-written MNIST MLP (manual SGD then Adam, loss plot), the CIFAR-10
classifier (training, saved weights, overall and per-class accuracy) and training on the
available device. The datasets are tiny files in the official formats (tests/vision/_fixtures.py),
read from ``--data`` or downloaded from a local HTTP server on 127.0.0.1, never the internet."""

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import dtorch
from dtorch.vision import transforms as T
from dtorch.vision.datasets import CIFAR10, MNIST

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "vision"))
from _fixtures import _cifar_archive, _md5, _mnist_files, _serve_mnist, local_server  # noqa: E402

pytestmark = pytest.mark.timeout(180)

ROOT = Path(__file__).resolve().parents[2]
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
CLASSES = ("plane", "car", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")


def run_example(name, *args, timeout=150):
    """Run ``examples/<name>`` as a script (with this checkout's dtorch); return its stdout."""
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MPLBACKEND="Agg",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    proc = subprocess.run([sys.executable, str(ROOT / "examples" / name), *map(str, args)],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{name} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}"
    return proc.stdout


def load_example(name):
    """Import ``examples/<name>`` as a module (to call its ``main`` with patched datasets)."""
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}",
                                                  ROOT / "examples" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def server():
    """A local HTTP server on 127.0.0.1 to download the fixture datasets from."""
    with local_server() as srv:
        yield srv


def png_size(path):
    """(width, height) of a PNG file, after checking its signature and IHDR chunk."""
    data = Path(path).read_bytes()
    assert data[:8] == PNG_MAGIC and data[12:16] == b"IHDR", data[:16]
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# ----------------------------------------------------------------------------- LeNet
LENET_REPR = """Net(
  (conv1): Conv2d(1, 6, kernel_size=(5, 5), stride=(1, 1))
  (conv2): Conv2d(6, 16, kernel_size=(5, 5), stride=(1, 1))
  (fc1): Linear(in_features=400, out_features=120, bias=True)
  (fc2): Linear(in_features=120, out_features=84, bias=True)
  (fc3): Linear(in_features=84, out_features=10, bias=True)
)"""


def test_lenet_structure_parameters_gradients_and_sgd():
    out = run_example("lenet.py", "--steps", 10)
    assert out.startswith(LENET_REPR + "\n10\n")
    shapes = re.findall(r"dtorch\.Size\(\[([\d, ]*)\]\)", out)
    assert shapes == ["6, 1, 5, 5", "6", "16, 6, 5, 5", "16", "120, 400", "120", "84, 120",
                      "84", "10, 84", "10"]
    # weights + biases of conv 1->6 5x5, conv 6->16 5x5, fc 400->120->84->10
    count = (6 * 25 + 6) + (16 * 6 * 25 + 16) + (400 * 120 + 120) + (120 * 84 + 84) + (84 * 10 + 10)
    assert count == 61706 and f"number of parameters: {count}" in out
    assert "conv1.bias.grad before backward\nNone\nconv1.bias.grad after backward\ntensor([" in out
    after = out.split("conv1.bias.grad after backward\n")[1].split(")")[0]
    grad = [float(v) for v in re.findall(r"-?\d+\.\d+(?:e[-+]\d+)?", after)]
    assert len(grad) == 6 and any(g != 0.0 for g in grad)
    first = float(re.search(r"SGD step   1: loss (\S+)", out).group(1))
    final = float(out.split("final loss ")[1])
    assert final < 0.9 * first


# ----------------------------------------------------------------------------- MNIST MLP
def _write_mnist(root, seed=0):
    files, arrays = _mnist_files(seed)
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name, data in files.items():
        (raw / name).write_bytes(data)
    return arrays


def _phase_losses(out, name):
    m = re.search(rf"^{name}: mean loss of the first \d+ steps (\S+), of the last \d+ steps "
                  r"(\S+); test accuracy (\S+)$", out, re.M)
    assert m, out
    return float(m.group(1)), float(m.group(2)), float(m.group(3))


def test_mnist_mlp_manual_sgd_then_adam_and_loss_plot(tmp_path):
    _write_mnist(tmp_path)
    png = tmp_path / "plots" / "loss.png"
    out = run_example("mnist_mlp_manual.py", "--data", tmp_path, "--epochs", 40,
                      "--batch-size", 8, "--limit", 10, "--print-every", 20, "--out", png)
    assert "MNIST: 10 training images, 5 test images; 40 steps of 8 per phase" in out
    assert "manual SGD: step    40/40  loss" in out and "Adam: step    40/40  loss" in out
    for phase in ("manual SGD", "Adam"):
        first, last, acc = _phase_losses(out, phase)
        assert last < 0.5 * first, (phase, first, last)
        assert acc in {k / 5 for k in range(6)}  # a fraction of the 5 test images
    assert png_size(png) == (1000, 500)  # figsize (10, 5) at 100 dpi


def test_mnist_mlp_manual_downloads_from_a_mirror(server, monkeypatch, tmp_path, capsys):
    _serve_mnist(server, monkeypatch, MNIST)
    load_example("mnist_mlp_manual.py").main(
        ["--data", str(tmp_path), "--download", "--epochs", "3", "--batch-size", "4",
         "--print-every", "0", "--out", str(tmp_path / "loss.png")])
    out = capsys.readouterr().out
    assert "MNIST: 12 training images, 5 test images" in out
    assert sorted(path for path, _ in server.log) == sorted(
        f"/mnist/{name}" for name, _ in MNIST.resources)
    assert (tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte").is_file()
    assert png_size(tmp_path / "loss.png") == (1000, 500)


# ----------------------------------------------------------------------------- CIFAR-10
def _cifar_source(mode, tmp_path, monkeypatch, server):
    """Put the fixture CIFAR-10 where the example finds it: extracted under ``tmp_path`` (with
    bytes keys, as the official pickles) or as the archive on the local server; the dataset
    class's checksums are patched to match."""
    archive, members, _ = _cifar_archive(bytes_keys=mode == "files")
    monkeypatch.setattr(CIFAR10, "train_list", [[f"data_batch_{i}", _md5(members[
        f"data_batch_{i}"])] for i in range(1, 6)])
    monkeypatch.setattr(CIFAR10, "test_list", [["test_batch", _md5(members["test_batch"])]])
    monkeypatch.setattr(CIFAR10, "meta", {**CIFAR10.meta, "md5": _md5(members["batches.meta"])})
    if mode == "download":
        server.files["/cifar.tar.gz"] = archive
        monkeypatch.setattr(CIFAR10, "url", server.url + "/cifar.tar.gz")
        monkeypatch.setattr(CIFAR10, "tgz_md5", _md5(archive))
        return ["--download"]
    folder = tmp_path / CIFAR10.base_folder
    folder.mkdir()
    for name, data in members.items():
        (folder / name).write_bytes(data)
    return []


@pytest.mark.parametrize("mode,workers", [("files", 0), ("download", 1)])
def test_cifar10_classifier_trains_saves_and_reports_per_class(mode, workers, device, server,
                                                               monkeypatch, tmp_path, capsys):
    extra = _cifar_source(mode, tmp_path, monkeypatch, server)
    weights = tmp_path / "out" / "cifar_net.pth"
    example = load_example("cifar10_classifier.py")
    example.main(["--data", str(tmp_path), "--epochs", "8", "--log-every", "3", "--lr", "0.01",
                  "--workers", str(workers), "--out", str(weights), "--device", device, *extra])
    out = capsys.readouterr().out
    assert f"training on 10 images, testing on 3, device {device}" in out
    losses = [float(v) for v in re.findall(r"^\[\d, +3\] loss: (\S+)$", out, re.M)]
    assert len(losses) == 8 and losses[-1] < losses[0]
    assert "Finished Training" in out and weights.is_file()

    # the printed accuracies are those of the saved weights on the test set
    net = example.Net()
    net.load_state_dict(dtorch.load(str(weights)))
    test = CIFAR10(tmp_path, train=False, transform=T.Compose(
        [T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))]))
    images = dtorch.stack([test[i][0] for i in range(len(test))])
    with dtorch.no_grad():
        predicted = net(images).argmax(1).tolist()
    labels = test.targets
    right = sum(p == y for p, y in zip(predicted, labels))
    assert f"Accuracy of the network on the 3 test images: {100 * right // 3} %" in out
    assert "GroundTruth:  " + " ".join(f"{CLASSES[j]:5s}" for j in labels) in out
    assert "Predicted:    " + " ".join(f"{CLASSES[j]:5s}" for j in predicted) in out
    lines = re.findall(r"^Accuracy of +(\w+) : (.*)$", out, re.M)
    assert [name for name, _ in lines] == list(CLASSES)
    for k, (_, text) in enumerate(lines):
        seen = labels.count(k)
        hits = sum(p == y == k for p, y in zip(predicted, labels))
        expected = f"{100 * hits // seen:2d} % ({hits}/{seen})" if seen else "n/a (no test images)"
        assert text == expected


# ----------------------------------------------------------------------------- on the GPU
def test_train_on_gpu_picks_the_available_device_and_learns():
    pytest.importorskip("sklearn")
    out = run_example("train_on_gpu.py", "--epochs", 3)
    expected = "cuda:0" if dtorch.cuda.is_available() else "cpu"
    assert out.startswith(f"device: {expected} (dtorch.cuda.is_available() is ")
    assert f"parameters on {expected}" in out
    losses = [float(v) for v in re.findall(r"train loss (\S+)", out)]
    assert len(losses) == 3 and losses[2] < losses[0]
    acc = float(re.search(rf"test accuracy (\S+) on {expected}$", out, re.M).group(1))
    assert acc > 0.8


def test_train_on_gpu_device_can_be_forced(device):
    pytest.importorskip("sklearn")
    out = run_example("train_on_gpu.py", "--epochs", 1, "--device", device)
    assert out.startswith(f"device: {device} (forced with --device)")
    assert f"parameters on {device}" in out and re.search(rf"test accuracy \S+ on {device}$",
                                                           out, re.M)
