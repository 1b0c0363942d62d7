"""CIFAR-10 from the official python batches (``cifar-10-batches-py``), read with a restricted
unpickler that admits only NumPy arrays, lists, dicts, bytes, str and int."""

import os

import numpy as np

from .utils import check_integrity, download_and_extract_archive, restricted_load
from .vision import _LabelledSplit

__all__ = ["CIFAR10"]


class CIFAR10(_LabelledSplit):
    """CIFAR-10: 50,000 training and 10,000 test colour images, 32x32, 10 classes.

    Args:
        root: directory holding ``cifar-10-batches-py/`` (created by ``download``).
        train: the training set (``data_batch_1..5``) or the test set (``test_batch``).
        transform: applied to the image, a ``(32, 32, 3)`` uint8 NumPy array (HWC).
        target_transform: applied to the label (an int).
        download: fetch ``url`` (MD5-checked, resumable) and extract it if missing.

    Attributes: ``data`` (uint8 NumPy array N x 32 x 32 x 3), ``targets`` (list of int),
    ``classes`` and ``class_to_idx`` (from ``batches.meta``), as in torchvision.
    """

    base_folder = "cifar-10-batches-py"
    url = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
    filename = "cifar-10-python.tar.gz"
    tgz_md5 = "c58f30108f718f92721af3b95e74349a"
    train_list = [
        ["data_batch_1", "c99cafc152244af753f735de768cd75f"],
        ["data_batch_2", "d4bba439e000b95fd0a9bffe97cbabec"],
        ["data_batch_3", "54ebc095f3ab1f0389bbae665268c751"],
        ["data_batch_4", "634d18415352ddbe9b0ec5c4c09bd31a"],
        ["data_batch_5", "482c414d41f54cd18b22e5b47cb7c3cb"],
    ]
    test_list = [["test_batch", "40351d587109b95175f43aff81a1287e"]]
    meta = {"filename": "batches.meta", "key": "label_names",
            "md5": "5ff9c542aee3614f3951f8cda6e48888"}

    def __init__(self, root, train=True, transform=None, target_transform=None, download=False):
        super().__init__(root, transform=transform, target_transform=target_transform)
        self.train = train
        if download:
            self.download()
        if not self._check_integrity():
            raise RuntimeError("Dataset not found or corrupted. You can use download=True to "
                               "download it")
        data, self.targets = [], []
        for name, _ in (self.train_list if train else self.test_list):
            entry = self._load(name)
            data.append(np.asarray(entry["data"], dtype=np.uint8))
            labels = entry["labels"] if "labels" in entry else entry["fine_labels"]
            self.targets.extend(int(x) for x in labels)
        self.data = np.vstack(data).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1).copy()
        if len(self.data) != len(self.targets):
            raise RuntimeError(f"CIFAR batches hold {len(self.data)} images but "
                               f"{len(self.targets)} labels")
        meta = self._load(self.meta["filename"])
        self.classes = [c.decode() if isinstance(c, bytes) else c for c in meta[self.meta["key"]]]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def _load(self, name):
        path = os.path.join(self.root, self.base_folder, name)
        with open(path, "rb") as f:
            entry = restricted_load(f)
        if not isinstance(entry, dict):
            raise RuntimeError(f"{path}: expected a dict, found {type(entry).__name__}")
        return {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in entry.items()}

    def _check_integrity(self):
        for name, md5 in self.train_list + self.test_list + [
                [self.meta["filename"], self.meta["md5"]]]:
            if not check_integrity(os.path.join(self.root, self.base_folder, name), md5):
                return False
        return True

    def download(self):
        """Fetch and extract the archive unless the verified batches are already there."""
        if self._check_integrity():
            return
        download_and_extract_archive(self.url, self.root, filename=self.filename,
                                     md5=self.tgz_md5)
