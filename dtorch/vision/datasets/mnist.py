"""MNIST and Fashion-MNIST from their IDX files (raw or gzipped), laid out as torchvision does:
``root/<ClassName>/raw/train-images-idx3-ubyte[.gz]`` and so on."""

import gzip
import os

import numpy as np

from ..._tensor import Tensor
from .utils import check_integrity, download_url, extract_archive
from .vision import _LabelledSplit

__all__ = ["MNIST", "FashionMNIST", "read_idx"]

_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path):
    """Read an IDX file (``path``, or ``path + '.gz'`` when only the gzipped one exists)."""
    if not os.path.exists(path) and os.path.exists(path + ".gz"):
        path = path + ".gz"
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] not in _IDX_TYPES:
        raise RuntimeError(f"{path} is not an IDX file (bad magic number {data[:4]!r})")
    ndim = data[3]
    header = 4 + 4 * ndim
    shape = tuple(int(d) for d in np.frombuffer(data, dtype=">i4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_TYPES[data[2]])
    expected = header + int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if len(data) != expected:
        raise RuntimeError(f"{path}: the IDX header announces shape {shape} ({expected} bytes) "
                           f"but the file has {len(data)} bytes")
    arr = np.frombuffer(data, dtype=dtype, offset=header).reshape(shape)
    return arr.astype(dtype.newbyteorder("="))


class MNIST(_LabelledSplit):
    """The MNIST handwritten digits: 60,000 training and 10,000 test images, 28x28, 10 classes.

    Args:
        root: directory holding ``MNIST/raw/`` (created by ``download``).
        train: the training set (else the test set).
        transform: applied to the image, a ``(28, 28)`` uint8 NumPy array.
        target_transform: applied to the label (an int).
        download: fetch the four ``.gz`` files from ``mirrors`` (MD5-checked) if missing.

    Attributes ``data`` (uint8 tensor N x 28 x 28) and ``targets`` (int64 tensor N) hold the
    whole split, as in torchvision.

    Example:
        >>> ds = MNIST("data", train=True, download=True, transform=transforms.ToTensor())
        >>> img, label = ds[0]          # img: float tensor 1 x 28 x 28 in [0, 1]
    """

    mirrors = ["https://ossci-datasets.s3.amazonaws.com/mnist/",
               "http://yann.lecun.com/exdb/mnist/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "f68b3c2dcbeaaa9fbdd348bbdeb94873"),
        ("train-labels-idx1-ubyte.gz", "d53e105ee54ea40749a09fcbcd1e9432"),
        ("t10k-images-idx3-ubyte.gz", "9fb629c4189551a2d022fa330f9573f3"),
        ("t10k-labels-idx1-ubyte.gz", "ec29112dd5afa0611ce80d1b7f02629c"),
    ]
    classes = ["0 - zero", "1 - one", "2 - two", "3 - three", "4 - four", "5 - five", "6 - six",
               "7 - seven", "8 - eight", "9 - nine"]

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_exists():
            raise RuntimeError("Dataset not found. You can use download=True to download it")
        prefix = "train" if train else "t10k"
        images = read_idx(os.path.join(self.raw_folder, f"{prefix}-images-idx3-ubyte"))
        labels = read_idx(os.path.join(self.raw_folder, f"{prefix}-labels-idx1-ubyte"))
        if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
            raise RuntimeError(f"{type(self).__name__}: images {images.shape} and labels "
                               f"{labels.shape} do not match")
        self.data = Tensor._wrap(np.ascontiguousarray(images, dtype=np.uint8))
        self.targets = Tensor._wrap(labels.astype(np.int64))

    @property
    def raw_folder(self):
        return os.path.join(self.root, type(self).__name__, "raw")

    @property
    def class_to_idx(self):
        return {c: i for i, c in enumerate(self.classes)}

    def _files(self):
        prefix = "train" if self.train else "t10k"
        return [f"{prefix}-images-idx3-ubyte", f"{prefix}-labels-idx1-ubyte"]

    def _check_exists(self):
        return all(os.path.isfile(os.path.join(self.raw_folder, f)) or
                   os.path.isfile(os.path.join(self.raw_folder, f + ".gz"))
                   for f in self._files())

    def download(self):
        """Fetch every resource (trying each mirror in turn), verify and gunzip it."""
        if self._check_exists() and all(
                os.path.isfile(os.path.join(self.raw_folder, f[:-3])) for f, _ in self.resources):
            return
        os.makedirs(self.raw_folder, exist_ok=True)
        for filename, md5 in self.resources:
            target = os.path.join(self.raw_folder, filename)
            if not check_integrity(target, md5):
                errors = []
                for mirror in self.mirrors:
                    try:
                        download_url(f"{mirror}{filename}", self.raw_folder, filename, md5)
                        break
                    except RuntimeError as e:
                        errors.append(str(e))
                else:
                    raise RuntimeError(f"Error downloading {filename} from every mirror:\n"
                                       + "\n".join(errors))
            extract_archive(target, self.raw_folder)

    def _raw_item(self, index):
        return self.data._data[index], int(self.targets._data[index])


class FashionMNIST(MNIST):
    """Zalando's Fashion-MNIST: MNIST's format and sizes, 10 clothing classes
    (``root/FashionMNIST/raw/``)."""

    mirrors = ["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"]
    resources = [
        ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
        ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
        ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
        ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
    ]
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
               "Sneaker", "Bag", "Ankle boot"]
