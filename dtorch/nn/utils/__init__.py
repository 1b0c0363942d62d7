"""``nn.utils``: gradient clipping, parameter/vector conversion and recurrent-sequence
helpers (``nn.utils.rnn``)."""

from . import (
    clip_grad,
    convert_parameters,
    rnn,  # noqa: E402
)
from .clip_grad import clip_grad_norm, clip_grad_norm_, clip_grad_value_, get_total_norm
from .convert_parameters import parameters_to_vector, vector_to_parameters
