"""Which ops autocast changes, and how: PyTorch's autocast op lists, per device type.

Each op that appears here is decorated with :func:`dtorch.amp.autocast_mode.autocast_op` where
it is defined; the decorator reads its policy from these tables once, at import. Policies:

- ``LOWER``: floating inputs (not float64) are cast to the autocast dtype (float16): matmuls,
  linear, convolutions; the ops that are fast and safe in half precision.
- ``FP32``: floating inputs (not float64) are cast to float32: reductions, exponentials,
  normalisations and losses, which need float32's range. An explicit ``dtype=`` argument
  (``sum``, ``softmax``...) is respected instead.
- ``PROMOTE``: floating inputs are cast to the widest floating type among them, for ops that
  otherwise insist on equal dtypes (``dot``). Ops that already follow dtorch's type promotion
  (``cat``, ``stack``, ``atan2``, arithmetic) need no entry.
- ``BANNED``: the op raises, as ``binary_cross_entropy`` does under CUDA autocast.

The tables follow the "Autocast Op Reference" of PyTorch's AMP documentation, restricted to the
ops dtorch has. The CPU table was checked against PyTorch 2.13's CPU autocast op by op (output
dtypes for float16 and float32 inputs); the CUDA table follows the documented CUDA lists.
``bilinear`` is ``PROMOTE`` on both devices because dtorch computes it with ``einsum``, which
must not be lowered inside it.
"""

LOWER = "lower"
FP32 = "fp32"
PROMOTE = "promote"
BANNED = "banned"

_MATMUL_CONV = ("matmul mm bmm einsum linear prelu conv1d conv2d conv3d conv_transpose1d "
                "conv_transpose2d conv_transpose3d scaled_dot_product_attention")

_LOSSES = ("binary_cross_entropy_with_logits cosine_embedding_loss cross_entropy "
           "hinge_embedding_loss kl_div l1_loss margin_ranking_loss mse_loss "
           "multilabel_margin_loss multi_margin_loss nll_loss poisson_nll_loss smooth_l1_loss "
           "soft_margin_loss triplet_margin_loss")


def _table(**groups):
    return {name: policy for policy, names in groups.items() for name in names.split()}


POLICIES = {
    "cuda": _table(
        lower=_MATMUL_CONV + " mv",
        fp32="acos asin cosh sinh tan exp expm1 log log10 log1p log2 pow reciprocal rsqrt "
             "softplus softmax log_softmax softmin cumprod cumsum prod sum norm layer_norm "
             "group_norm normalize cosine_similarity pdist " + _LOSSES,
        promote="dot bilinear scatter_add",
        banned="binary_cross_entropy",
    ),
    "cpu": _table(
        lower=_MATMUL_CONV,
        fp32="prod avg_pool3d max_pool3d adaptive_avg_pool3d max_unpool2d max_unpool3d "
             "huber_loss binary_cross_entropy " + _LOSSES,
        promote="bilinear",
    ),
}

BCE_BANNED_MSG = (
    "torch.nn.functional.binary_cross_entropy and torch.nn.BCELoss are unsafe to autocast.\n"
    "Many models use a sigmoid layer right before the binary cross entropy layer.\n"
    "In this case, combine the two layers using "
    "torch.nn.functional.binary_cross_entropy_with_logits\n"
    "or torch.nn.BCEWithLogitsLoss.  binary_cross_entropy_with_logits and BCEWithLogits are\n"
    "safe to autocast.")


def policies_for(name):
    """``{device_type: policy}`` for the op ``name`` (empty when autocast leaves it alone)."""
    return {dev: table[name] for dev, table in POLICIES.items() if name in table}


def all_names():
    """Every op name that some device's table lists (the coverage test reads this)."""
    return sorted(set().union(*POLICIES.values()))
