"""``nn.functional``: the stateless forms of the layers (``F.linear``, ``F.conv2d``,
``F.relu``...). Each submodule holds one family; this package re-exports them all."""

from .activation import *  # noqa: F403
from .attention import *  # noqa: F403
from .linear import bilinear, linear
from .loss import *  # noqa: F403
