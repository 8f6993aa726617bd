"""``SyncBatchNorm``: batch normalization whose statistics span the batches of every rank."""

from __future__ import annotations

from typing import Any

from dltool.engine import distributed as dist
from dltool.engine.autograd.function import Function
from dltool.engine.nn.modules.batchnorm import _BatchNorm
from dltool.engine.nn.modules.module import Module
from dltool.engine.ops.normalization import _update_running_stats
from dltool.engine.tensor import Tensor


class _SyncBatchNorm(Function):
    """Per-channel statistics over every rank's batch: each rank's mean, variance and count are
    gathered and combined (Chan's parallel formula, as PyTorch's ``batch_norm_gather_stats``);
    backward all-reduces the two per-channel gradient sums."""

    @staticmethod
    def forward(ctx, x, weight, bias, axes, eps, group):
        xp, data = x._xp(), x._data
        shape = [1] * data.ndim
        shape[1] = data.shape[1]
        local = xp.concatenate(
            [data.mean(axis=axes), data.var(axis=axes), xp.full(1, data.size // data.shape[1], data.dtype)]
        )
        table = xp.empty((group.size, local.size), dtype=local.dtype)
        group.all_gather(local, table).wait()
        channels = data.shape[1]
        means, variances, counts = table[:, :channels], table[:, channels:-1], table[:, -1:]
        count = counts.sum()
        mean = (means * counts).sum(axis=0) / count
        var = ((variances + xp.square(means - mean)) * counts).sum(axis=0) / count
        invstd = 1.0 / xp.sqrt(var + eps)
        y = (data - mean.reshape(shape)) * invstd.reshape(shape)
        out = y if weight is None else y * weight._data.reshape(shape)
        if bias is not None:
            out = out + bias._data.reshape(shape)
        ctx.save_for_backward(weight)
        ctx.y, ctx.invstd, ctx.axes, ctx.count, ctx.group, ctx.shape = y, invstd, axes, count, group, shape
        stats = Tensor._make(mean), Tensor._make(var), Tensor._make(count)
        ctx.mark_non_differentiable(*stats)
        ctx.set_materialize_grads(False)
        return (out, *stats)

    @staticmethod
    def backward(ctx, grad_output, _mean, _var, _count):
        (weight,) = ctx.saved_tensors
        xp, grad, y, shape = grad_output._xp(), grad_output._data, ctx.y, ctx.shape
        sums = xp.concatenate([grad.sum(axis=ctx.axes), (grad * y).sum(axis=ctx.axes)])
        local_sum_g, local_sum_gy = sums[: y.shape[1]].copy(), sums[y.shape[1] :].copy()
        ctx.group.all_reduce(sums, dist.ReduceOp.SUM).wait()
        sum_g, sum_gy = sums[: y.shape[1]].reshape(shape), sums[y.shape[1] :].reshape(shape)
        scale = ctx.invstd if weight is None else ctx.invstd * weight._data
        x_grad = (grad - sum_g / ctx.count - y * (sum_gy / ctx.count)) * scale.reshape(shape)
        _, needs_weight, needs_bias, *_ = ctx.needs_input_grad
        # the parameters get this rank's share; DistributedDataParallel averages them over ranks
        weight_grad = Tensor._make(local_sum_gy) if needs_weight else None
        bias_grad = Tensor._make(local_sum_g) if needs_bias else None
        return Tensor._make(x_grad), weight_grad, bias_grad, None, None, None


class SyncBatchNorm(_BatchNorm):
    """Batch normalization over the whole global batch: every rank's samples, as PyTorch's.

    In training, inside an initialized process group of more than one rank, the per-channel mean
    and variance (and the running statistics) come from all ranks' batches together, so
    DistributedDataParallel on N ranks of batch B normalizes as one process with batch N x B. In
    evaluation, or in a group of one, it is ``BatchNorm``. Unlike PyTorch's it also runs on CPU
    tensors (the ``mpi`` backend).

    Example:
        >>> model = SyncBatchNorm.convert_sync_batchnorm(nn.Sequential(nn.Conv2d(1, 2, 3), nn.BatchNorm2d(2)))
        >>> type(model[1]).__name__
        'SyncBatchNorm'
    """

    _expected_dims = (2, 3, 4, 5)

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = True,
        track_running_stats: bool = True,
        process_group: Any = None,
        device: Any = None,
        dtype: Any = None,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype)
        self.process_group = process_group

    def forward(self, input: Tensor) -> Tensor:
        if input.ndim < 2:
            raise ValueError(f"expected at least 2D input (got {input.ndim}D input)")
        synced = self.training and dist.is_initialized() and dist.get_world_size(self.process_group) > 1
        if not synced:
            return super().forward(input)
        factor = self.momentum
        if self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
            factor = 1.0 / float(self.num_batches_tracked) if factor is None else factor
        group = dist.distributed_c10d._group(self.process_group)
        axes = (0,) + tuple(range(2, input.ndim))
        y, mean, var, count = _SyncBatchNorm.apply(input, self.weight, self.bias, axes, self.eps, group)
        if self.track_running_stats:
            _update_running_stats(
                self.running_mean, self.running_var, mean, var, int(count.item()), factor or 0.0
            )
        return y

    @classmethod
    def convert_sync_batchnorm(cls, module: Module, process_group: Any = None) -> Module:
        """``module`` with every BatchNorm layer replaced by a SyncBatchNorm holding its state."""
        if isinstance(module, _BatchNorm) and not isinstance(module, SyncBatchNorm):
            converted = cls(
                module.num_features,
                module.eps,
                module.momentum,
                module.affine,
                module.track_running_stats,
                process_group,
            )
            converted.load_state_dict(module.state_dict())
            converted.train(module.training)
            return converted
        for name, child in list(module.named_children()):
            module.add_module(name, cls.convert_sync_batchnorm(child, process_group))
        return module
