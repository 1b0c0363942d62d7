"""Optimizers and learning-rate schedulers, PyTorch's ``torch.optim``.

Every optimizer checks its hyperparameters in ``__init__``, keeps per-parameter buffers in
``optimizer.state[param]`` (dtorch tensors) and performs its update on the raw NumPy/CuPy arrays
in place, outside autograd, so a step costs no graph and few temporaries.
"""

from . import lr_scheduler
from .adadelta import Adadelta
from .adagrad import Adagrad
from .adam import Adam
from .adamax import Adamax
from .adamw import AdamW
from .lbfgs import LBFGS
from .nadam import NAdam
from .optimizer import (
    Optimizer,
    register_optimizer_step_post_hook,
    register_optimizer_step_pre_hook,
)
from .radam import RAdam
from .rmsprop import RMSprop
from .sgd import SGD

__all__ = ["Adadelta", "Adagrad", "Adam", "AdamW", "Adamax", "LBFGS", "NAdam", "Optimizer",
           "RAdam", "RMSprop", "SGD", "lr_scheduler", "register_optimizer_step_post_hook",
           "register_optimizer_step_pre_hook"]
