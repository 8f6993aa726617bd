"""``InstanceNorm1d/2d/3d``: each channel of each sample normalized over its own spatial dims."""

from __future__ import annotations

import warnings
from typing import Any

from dltool.engine.nn import functional as F
from dltool.engine.nn.modules.batchnorm import _BatchNorm
from dltool.engine.tensor import Tensor


class _InstanceNorm(_BatchNorm):
    """Batch norm's parameters and buffers, PyTorch's instance-norm defaults (no affine part, no
    running statistics) and its forward: an unbatched input (the lower of ``_expected_dims``) is
    taken as a batch of one."""

    def __init__(
        self,
        num_features: int,
        eps: float = 1e-5,
        momentum: float | None = 0.1,
        affine: bool = False,
        track_running_stats: bool = False,
        device: Any = None,
        dtype: Any = None,
        *,
        bias: bool = True,
    ) -> None:
        super().__init__(num_features, eps, momentum, affine, track_running_stats, device, dtype, bias=bias)

    def forward(self, input: Tensor) -> Tensor:
        unbatched, batched = self._expected_dims
        if input.ndim not in self._expected_dims:
            raise ValueError(f"expected {unbatched}D or {batched}D input (got {input.ndim}D input)")
        channel_dim = input.ndim - unbatched
        if input.shape[channel_dim] != self.num_features:
            if self.affine:
                raise ValueError(
                    f"expected input's size at dim={channel_dim} to match num_features ({self.num_features}), "
                    f"but got: {input.shape[channel_dim]}."
                )
            warnings.warn(
                f"input's size at dim={channel_dim} does not match num_features. You can silence this warning "
                "by not passing in num_features, which is not used because affine=False",
                stacklevel=2,
            )
        x = input if input.ndim == batched else input.unsqueeze(0)
        y = F.instance_norm(
            x,
            self.running_mean,
            self.running_var,
            self.weight,
            self.bias,
            self.training or not self.track_running_stats,
            0.0 if self.momentum is None else self.momentum,
            self.eps,
        )
        return y if input.ndim == batched else y.squeeze(0)


class InstanceNorm1d(_InstanceNorm):
    """Instance norm over ``(N, C, L)`` or unbatched ``(C, L)``."""

    _expected_dims = (2, 3)


class InstanceNorm2d(_InstanceNorm):
    """Instance norm over ``(N, C, H, W)`` or unbatched ``(C, H, W)``."""

    _expected_dims = (3, 4)


class InstanceNorm3d(_InstanceNorm):
    """Instance norm over ``(N, C, D, H, W)`` or unbatched ``(C, D, H, W)``."""

    _expected_dims = (4, 5)
