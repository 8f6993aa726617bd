"""Differentiable operations, one module per family; each op's backward sits beside its forward."""
