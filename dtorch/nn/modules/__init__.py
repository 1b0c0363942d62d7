"""The layer classes of ``dtorch.nn``; each submodule holds one family."""

from .activation import *  # noqa: F403
from .linear import Bilinear, Identity, Linear
from .loss import *  # noqa: F403
from .module import Module, register_module_forward_hook, register_module_forward_pre_hook
from .rnn import *  # noqa: F403
