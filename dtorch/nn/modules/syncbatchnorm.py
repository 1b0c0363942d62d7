"""``SyncBatchNorm``: batch normalization whose training statistics span every rank of a process
group (math in ``nn.functional.syncbatchnorm``)."""

from ... import distributed as dist
from .. import functional as F
from ..functional.syncbatchnorm import sync_batch_norm
from .batchnorm import _BatchNorm

__all__ = ["SyncBatchNorm"]


class SyncBatchNorm(_BatchNorm):
    """Batch normalization over ``(N, C, *)`` with the statistics of the global batch: the
    shards of every rank of ``process_group`` together.

    ``y = (x - E[x]) / sqrt(Var[x] + eps) * gamma + beta``, where in training ``E[x]`` and the
    biased ``Var[x]`` are per channel over the batch and spatial dims of all ranks' inputs (the
    ranks may have different batch sizes), so N ranks give exactly what ``BatchNorm`` gives on
    the concatenated batch, forward and backward. The running estimates are updated with the
    global mean and unbiased variance (``momentum``, or a cumulative average when
    ``momentum=None``) and used in eval mode. The input gradient is the global one; the
    ``weight``/``bias`` gradients hold this rank's part (DDP then averages them, as in PyTorch).

    Synchronisation happens only in training mode within an initialised process group of more
    than one rank; otherwise (eval mode, ``dist`` not initialised, a world of one) the layer is
    plain ``BatchNorm``. Unlike PyTorch, CPU tensors are synchronised too (over MPI or threads).

    Contract: in training mode every rank of the group must run forward, and backward through
    the layer, the same number of times and in the same order (each is a collective).

    Args:
        num_features: C.
        eps: added to the variance. Default: 1e-5.
        momentum: running-average factor, or None for a cumulative average. Default: 0.1.
        affine: learnable ``weight`` (gamma) and ``bias`` (beta). Default: True.
        track_running_stats: keep running estimates (else batch statistics are used in eval
            mode too). Default: True.
        process_group: the ranks that share statistics. Default: the whole world.
        device, dtype: of the parameters and buffers.
        bias: learn ``bias`` (with ``affine``). Default: True.

    Shape:
        - Input: ``(N, C, *)``, at least 2D. Output: the same shape.

    Example::

        >>> model = nn.SyncBatchNorm.convert_sync_batchnorm(model)   # before wrapping in DDP
        >>> ddp = DistributedDataParallel(model)
    """

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, process_group=None, device=None, dtype=None, *,
                 bias=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device=device,
                         dtype=dtype, bias=bias)
        self.process_group = process_group

    def _check_input_dim(self, input):
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")

    def _world_to_sync(self):
        """The group to synchronise training statistics over, or None for plain batch norm."""
        if not self.training or not dist.is_initialized():
            return None
        group = self.process_group if self.process_group else dist.group.WORLD
        return group if dist.get_world_size(group) > 1 else None

    def forward(self, input):
        self._check_input_dim(input)
        if input.shape[1] == 0:
            raise ValueError("SyncBatchNorm number of input channels should be non-zero")
        factor = self._momentum_for_step()
        group = self._world_to_sync()
        if group is None:
            bn_training = self.training or (self.running_mean is None
                                            and self.running_var is None)
            use_buffers = not self.training or self.track_running_stats
            return F.batch_norm(input, self.running_mean if use_buffers else None,
                                self.running_var if use_buffers else None, self.weight,
                                self.bias, bn_training, factor, self.eps)
        return sync_batch_norm(input, self.running_mean if self.track_running_stats else None,
                               self.running_var if self.track_running_stats else None,
                               self.weight, self.bias, factor, self.eps, group)

    @classmethod
    def convert_sync_batchnorm(cls, module, process_group=None):
        """Replace every ``BatchNorm*d`` in ``module`` (recursively) by a ``SyncBatchNorm``
        sharing its parameters, buffers (running statistics, ``num_batches_tracked``) and
        training flag; the module structure is kept.

        Args:
            module: a model containing ``BatchNorm*d`` layers (or one such layer).
            process_group: the ranks that share statistics. Default: the whole world.

        Returns:
            ``module`` with its batch-norm layers converted, or a new ``SyncBatchNorm`` when
            ``module`` itself is one.

        Example::

            >>> net = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8))
            >>> net = nn.SyncBatchNorm.convert_sync_batchnorm(net)
            >>> type(net[1]).__name__
            'SyncBatchNorm'
        """
        out = module
        if isinstance(module, _BatchNorm):
            out = cls(module.num_features, module.eps, module.momentum, module.affine,
                      module.track_running_stats, process_group, bias=module.bias is not None)
            if module.affine:
                out.weight = module.weight
                out.bias = module.bias
            out.running_mean = module.running_mean
            out.running_var = module.running_var
            out.num_batches_tracked = module.num_batches_tracked
            out.training = module.training
            if hasattr(module, "qconfig"):
                out.qconfig = module.qconfig
        for name, child in module.named_children():
            out.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return out
