"""``Identity``, ``Linear`` and ``LazyLinear``."""

from __future__ import annotations

import math
from typing import Any

from dltool.engine.creation import empty
from dltool.engine.nn import functional as F
from dltool.engine.nn import init
from dltool.engine.nn.modules.lazy import LazyModuleMixin
from dltool.engine.nn.modules.module import Module
from dltool.engine.nn.parameter import Parameter, UninitializedParameter
from dltool.engine.tensor import Tensor


class Identity(Module):
    """Returns its input; accepts and ignores any constructor arguments, as PyTorch's does."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__()

    def forward(self, input: Tensor) -> Tensor:
        return input


class Linear(Module):
    """``y = x W^T + b`` with ``W`` of shape ``(out_features, in_features)``, initialized as PyTorch's."""

    def __init__(self, in_features: int, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__()
        self.in_features = in_features
        self.out_features = out_features
        self.weight = Parameter(empty((out_features, in_features), device=device, dtype=dtype))
        if bias:
            self.bias = Parameter(empty(out_features, device=device, dtype=dtype))
        else:
            self.register_parameter("bias", None)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        reset_linear_parameters(self)

    def forward(self, input: Tensor) -> Tensor:
        return F.linear(input, self.weight, self.bias)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}"


class LazyLinear(LazyModuleMixin, Linear):
    """A ``Linear`` whose ``in_features`` is inferred from the last dim of its first input.

    ``weight`` and ``bias`` are ``UninitializedParameter`` until then; the first forward initializes
    them as ``Linear`` does and turns the module into a ``Linear`` (see ``LazyModuleMixin``).
    """

    cls_to_become = Linear

    def __init__(self, out_features: int, bias: bool = True, device: Any = None, dtype: Any = None) -> None:
        super().__init__(0, 0, False)
        self.out_features = out_features
        self.weight = UninitializedParameter(device=device, dtype=dtype)
        if bias:
            self.bias = UninitializedParameter(device=device, dtype=dtype)

    def initialize_parameters(self, input: Tensor) -> None:
        self.in_features = input.shape[-1]
        self._materialize({"weight": (self.out_features, self.in_features), "bias": (self.out_features,)})


def reset_linear_parameters(module: Module) -> None:
    """PyTorch's default init of Linear and conv layers.

    The weight gets ``kaiming_uniform_(a=sqrt(5))``, that is ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``,
    and the bias the same bounds.
    """
    init.kaiming_uniform_(module.weight, a=math.sqrt(5))
    if module.bias is not None:
        fan_in, _ = init._calculate_fan_in_and_fan_out(module.weight)
        bound = 1 / math.sqrt(fan_in) if fan_in > 0 else 0
        init.uniform_(module.bias, -bound, bound)
