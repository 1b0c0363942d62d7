"""The layer classes of ``dtorch.nn``; each submodule holds one family."""

from .linear import Bilinear, Identity, Linear
from .module import Module, register_module_forward_hook, register_module_forward_pre_hook
