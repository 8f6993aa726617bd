"""Reverse-mode automatic differentiation over dynamic graphs, with PyTorch's API."""

from dltool.engine.autograd.engine import backward, grad
from dltool.engine.autograd.function import Function, Node, once_differentiable
from dltool.engine.autograd.grad_mode import (
    enable_grad,
    inference_mode,
    is_grad_enabled,
    no_grad,
    set_grad_enabled,
)
from dltool.engine.autograd.gradcheck import GradcheckError, gradcheck, gradgradcheck
from dltool.engine.autograd.variable import Variable

__all__ = [
    "Function", "GradcheckError", "Node", "Variable", "backward", "enable_grad", "grad", "gradcheck",
    "gradgradcheck", "inference_mode", "is_grad_enabled", "no_grad", "once_differentiable",
    "set_grad_enabled",
]
