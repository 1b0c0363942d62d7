"""``nn.functional``: the stateless forms of the layers (``F.linear``, ``F.conv2d``,
``F.relu``...). Each submodule holds one family; this package re-exports them all."""

from .linear import bilinear, linear
