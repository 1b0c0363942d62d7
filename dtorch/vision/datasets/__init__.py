"""``dtorch.vision.datasets``: MNIST, FashionMNIST, CIFAR10 (torchvision's file layouts and
download sources) and Digits (scikit-learn's bundled 8x8 digits, offline)."""

from .cifar import CIFAR10
from .digits import Digits
from .mnist import MNIST, FashionMNIST
from .vision import VisionDataset

__all__ = ["CIFAR10", "Digits", "FashionMNIST", "MNIST", "VisionDataset"]
