"""Binds the op functions as ``Tensor`` methods, so each op is written once.

``x.exp()`` is ``elementwise.exp(x)``; the method shares the function's docstring.
"""

from __future__ import annotations

from dltool.engine.ops import elementwise, index, linalg, reduce, shape

_METHODS = {
    elementwise: (
        "abs absolute add addcdiv addcmul allclose bitwise_not ceil clamp clamp_max clamp_min clip "
        "cos div divide eq equal exp expm1 floor ge greater greater_equal gt isclose isfinite isinf "
        "isnan le lerp less less_equal log log10 log1p log2 logical_and logical_not logical_or "
        "logical_xor lt masked_fill maximum minimum mul multiply ne neg negative not_equal pow "
        "reciprocal relu remainder round rsqrt sigmoid sign sin sqrt square sub subtract tanh "
        "true_divide trunc"
    ),
    reduce: (
        "all amax amin any argmax argmin count_nonzero log_softmax logsumexp max mean min norm "
        "prod softmax std sum var"
    ),
    shape: (
        "broadcast_to chunk expand expand_as flatten flip movedim narrow permute repeat reshape "
        "reshape_as split squeeze swapaxes swapdims t transpose unbind unflatten unsqueeze view "
        "view_as"
    ),
    index: "argsort gather index_select masked_select nonzero scatter scatter_add sort take topk",
    linalg: "bmm dot matmul mm outer",
}


def bind_methods(cls: type) -> None:
    for module, names in _METHODS.items():
        for name in names.split():
            setattr(cls, name, getattr(module, name))
    cls.where = lambda self, condition, other: elementwise.where(condition, self, other)
    cls.__add__ = cls.__radd__ = elementwise.add
    cls.__sub__ = elementwise.sub
    cls.__mul__ = cls.__rmul__ = elementwise.mul
    cls.__truediv__ = elementwise.div
