"""scikit-learn's bundled 8x8 handwritten digits: a small image dataset that works offline."""

import numpy as np

from .vision import _LabelledSplit

__all__ = ["Digits"]

TRAIN_FRACTION = 0.8


class Digits(_LabelledSplit):
    """The UCI 8x8 digits shipped with scikit-learn (1,797 images, 10 classes); needs
    scikit-learn (an optional dependency) and no network.

    Split (fixed, no shuffling): the first ``floor(0.8 * 1797) = 1437`` samples are the training
    set, the last 360 the test set. Pixels (0..16 in the source) are scaled to uint8 0..255 so
    the MNIST pipeline (``ToTensor``, ``Normalize``) applies unchanged.

    Args:
        root: unused (nothing is stored on disk); accepted so the signature matches ``MNIST``.
        train: the training split (else the test split).
        transform: applied to the image, an ``(8, 8)`` uint8 NumPy array.
        target_transform: applied to the label (an int).
    """

    classes = [str(i) for i in range(10)]

    def __init__(self, root=None, train=True, transform=None, target_transform=None):
        super().__init__(root, transform=transform, target_transform=target_transform)
        try:
            from sklearn.datasets import load_digits
        except ImportError as e:
            raise RuntimeError("Digits needs scikit-learn: pip install scikit-learn") from e
        bunch = load_digits()
        images = np.round(bunch.images * (255.0 / 16.0)).astype(np.uint8)
        targets = bunch.target.astype(np.int64)
        cut = int(np.floor(TRAIN_FRACTION * len(images)))
        sl = slice(0, cut) if train else slice(cut, None)
        self.train = train
        self.data = np.ascontiguousarray(images[sl])
        self.targets = [int(t) for t in targets[sl]]
