"""``VisionDataset``: the shared constructor and ``repr`` of the image datasets."""

import os

from ...utils.data import Dataset

__all__ = ["VisionDataset"]


class VisionDataset(Dataset):
    """Base of the image datasets: ``root`` plus optional ``transform`` (image) and
    ``target_transform`` (label)."""

    _repr_indent = 4

    def __init__(self, root, transform=None, target_transform=None):
        self.root = os.path.expanduser(os.fspath(root)) if root is not None else None
        self.transform = transform
        self.target_transform = target_transform

    def extra_repr(self):
        return ""

    def __repr__(self):
        lines = [f"Number of datapoints: {len(self)}"]
        if self.root is not None:
            lines.append(f"Root location: {self.root}")
        lines += [x for x in self.extra_repr().splitlines() if x]
        if self.transform is not None:
            lines.append(f"Transform: {self.transform!r}")
        if self.target_transform is not None:
            lines.append(f"Target transform: {self.target_transform!r}")
        pad = " " * self._repr_indent
        return "\n".join([f"Dataset {type(self).__name__}"] + [pad + x for x in lines])


class _LabelledSplit(VisionDataset):
    """Shared by the datasets that hold ``data`` (images) and ``targets`` (labels) of a
    ``train`` or test split: item access with the transforms, length and repr."""

    def __getitem__(self, index):
        img, target = self._raw_item(index)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def _raw_item(self, index):
        return self.data[index], self.targets[index]

    def __len__(self):
        return len(self.data)

    def extra_repr(self):
        return f"Split: {'Train' if self.train else 'Test'}"
