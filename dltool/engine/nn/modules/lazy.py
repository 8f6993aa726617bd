"""``LazyModuleMixin``: layers whose input size is inferred from the first batch they see.

A lazy layer starts with ``UninitializedParameter`` weights (and ``UninitializedBuffer`` running
statistics). Its first forward infers the input size, gives every tensor its shape, initializes it
as the regular layer would, and turns the module into that layer (``cls_to_become``), as PyTorch's
lazy modules do. Loading a ``state_dict`` before that takes the shapes from the loaded tensors.

The tensors keep their identity when they materialize, so an SGD or Adam optimizer built before
the first forward updates them afterwards, as in PyTorch. Optimizers that size their state when
they are built (Adagrad) raise the uninitialized-parameter ``ValueError``. The usual pattern is a
dry run first: ``model(example_batch)``, then build the optimizer.
"""

from __future__ import annotations

import itertools
from typing import Any

from dltool.engine.autograd.grad_mode import no_grad
from dltool.engine.nn.parameter import is_lazy


class LazyModuleMixin:
    """Infers a layer's parameter shapes from its first input; mixed in before the regular layer class.

    A lazy class sets ``cls_to_become`` and implements ``initialize_parameters(input)``, which
    records the inferred size and calls ``_materialize`` with the shapes.

    Example:
        >>> layer = nn.LazyLinear(3)
        >>> y = layer(zeros(2, 5))
        >>> type(layer).__name__, tuple(layer.weight.shape)
        ('Linear', (3, 5))
    """

    cls_to_become: type | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._initialize_hook = self.register_forward_pre_hook(self._infer_parameters, with_kwargs=True)

    def has_uninitialized_params(self) -> bool:
        """Whether a parameter or buffer of this module still waits for its shape."""
        return any(is_lazy(t) for t in itertools.chain(self._parameters.values(), self._buffers.values()))

    def initialize_parameters(self, *args: Any, **kwargs: Any) -> None:
        """Infer the input size from the forward arguments and materialize the parameters."""
        raise NotImplementedError(f"initialize_parameters is not implemented for {type(self).__name__}")

    def reset_parameters(self) -> None:
        # the regular constructor resets its zero-size placeholders; that waits for the real shapes
        if not self.has_uninitialized_params() and all(
            p.numel() for p in self._parameters.values() if p is not None
        ):
            super().reset_parameters()

    def _materialize(self, shapes: dict[str, tuple]) -> None:
        """Give each uninitialized tensor named in ``shapes`` its shape, then initialize as the regular layer."""
        if not self.has_uninitialized_params():
            return
        with no_grad():
            for name, shape in shapes.items():
                value = getattr(self, name)
                if is_lazy(value):
                    value.materialize(shape)
            self.reset_parameters()

    def _infer_parameters(self, module: Any, args: tuple, kwargs: dict) -> None:
        """The forward pre-hook: materialize, then become ``cls_to_become`` for good."""
        self.initialize_parameters(*args, **kwargs)
        if self.has_uninitialized_params():
            raise RuntimeError(f"module {self._get_name()} has not been fully initialized")
        self._initialize_hook.remove()
        del self._initialize_hook
        if self.cls_to_become is not None:
            self.__class__ = self.cls_to_become

    def _load_state_dict_pre_hook(self, state_dict: dict[str, Any], prefix: str) -> None:
        """Give uninitialized tensors the shapes of the initialized ones ``state_dict`` holds for them."""
        for name, value in itertools.chain(self._parameters.items(), self._buffers.items()):
            key = prefix + name
            if is_lazy(value) and key in state_dict and not is_lazy(state_dict[key]):
                value.materialize(tuple(state_dict[key].shape))
