"""``dtorch.nn``: modules, parameters, layers, ``functional``, ``init`` and ``utils``, with
PyTorch's names (``import dtorch.nn as nn``)."""

from . import (
    functional,
    init,
    parallel,  # noqa: E402
    utils,
)
from .modules import *  # noqa: F403
from .modules import Module
from .parameter import Buffer, Parameter
