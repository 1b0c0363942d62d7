"""``dtorch.vision``: image datasets and transforms (the parts of torchvision the examples use)."""

from . import datasets, transforms
