"""``Tensor``: an n-dimensional array on numpy or cupy that records operations for autograd.

The storage is a numpy (CPU) or cupy (GPU) array; ops live in ``dltool.engine.ops`` and the
methods here only forward to them, so each op is written once.
"""

from __future__ import annotations

import math
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from dltool.engine import _environment, backend, dtypes
from dltool.engine.autograd import function as _function
from dltool.engine.autograd.function import AccumulateGrad, Node, RemovableHandle
from dltool.engine.autograd.grad_mode import state as _grad_state

OVERLAP_MESSAGE = (
    "unsupported operation: more than one element of the written-to tensor refers to a single "
    "memory location. Please clone() the tensor before performing the operation."
)


class Tensor:
    """A multi-dimensional array with autograd, mirroring ``torch.Tensor``.

    Build tensors with the factory functions (``tensor``, ``zeros``, ``randn``, ...).

    Example:
        >>> x = tensor([1.0, 2.0], requires_grad=True)
        >>> (x * x).sum().backward()
        >>> x.grad
        tensor([2., 4.])
    """

    __slots__ = ("_data", "_requires_grad", "grad_fn", "_output_nr", "_version_counter", "__dict__", "__weakref__")

    # Rarely set, so they live on the class until a tensor sets its own (keeps creation cheap).
    grad: Tensor | None = None
    _backward_hooks: list | None = None
    _post_accumulate_grad_hooks: list | None = None
    _accumulator: weakref.ref | None = None
    _view: tuple | None = None  # (root, root's grad_fn, base, view op, op args) for views

    # numpy defers to our reflected operators instead of converting us to an array
    __array_ufunc__ = None
    __array_priority__ = 1000

    def __init__(self, data: Any, requires_grad: bool = False) -> None:
        array = data._data if isinstance(data, Tensor) else data
        if not hasattr(array, "__array_namespace__") and not isinstance(array, np.ndarray):
            array = np.asarray(array, dtype=dtypes.infer_dtype(array))
        self._data = array
        self._requires_grad = False
        self.grad_fn: Node | None = None
        self._output_nr = 0
        self._version_counter = [0]
        if requires_grad:
            self.requires_grad = True

    @staticmethod
    def _make(
        array: Any,
        grad_fn: Node | None = None,
        output_nr: int = 0,
        version_counter: list | None = None,
    ) -> Tensor:
        """Wrap an array without checks (the engine's fast constructor)."""
        t = object.__new__(Tensor)
        t._data = array
        t._requires_grad = grad_fn is not None
        t.grad_fn = grad_fn
        t._output_nr = output_nr
        t._version_counter = [0] if version_counter is None else version_counter
        return t

    @staticmethod
    def _zeros_like_meta(meta: tuple) -> Tensor:
        shape, dtype, xp = meta
        return Tensor._make(xp.zeros(shape, dtype=dtype))

    def _meta(self) -> tuple:
        return self._data.shape, self._data.dtype, backend.array_module(self._data)

    def _xp(self) -> Any:
        return backend.array_module(self._data)

    def _grad_node(self) -> Node:
        """This tensor's place in the graph: its grad_fn, or its leaf accumulator."""
        view = self._view
        if view is not None and view[0].grad_fn is not view[1]:
            self._sync_view()
        if self.grad_fn is not None:
            return self.grad_fn
        node = self._accumulator() if self._accumulator is not None else None
        if node is None:
            node = AccumulateGrad(self)
            self._accumulator = weakref.ref(node)
        return node

    # ------------------------------------------------------------ attributes

    @property
    def data(self) -> Tensor:
        """The same storage without autograd history (in-place changes are not tracked)."""
        return Tensor._make(self._data)

    @data.setter
    def data(self, value: Tensor) -> None:
        self._data = value._data if isinstance(value, Tensor) else value
        self._view = None  # the new storage is nobody's view

    def _sync_view(self) -> None:
        """Replay this view and the views it comes from on their root's history.

        A view records ``(root, root's grad_fn, base, op, args)``; an in-place op on the root (or on
        any view of it) gives the root a new grad_fn, and its views follow here when next used.
        """
        chain = []
        tensor = self
        while tensor._view is not None:
            chain.append(tensor)
            tensor = tensor._view[2]
        previous, _grad_state.enabled = _grad_state.enabled, True
        try:
            for view in reversed(chain):
                _, _, base, op, args = view._view
                fresh = op.apply(base, *args)
                view.grad_fn, view._output_nr = fresh.grad_fn, fresh._output_nr
                view._requires_grad, view._view = fresh._requires_grad, fresh._view
        finally:
            _grad_state.enabled = previous

    @property
    def requires_grad(self) -> bool:
        view = self._view
        if view is not None and view[0].grad_fn is not view[1]:
            self._sync_view()
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value: bool) -> None:
        if self.grad_fn is not None and not value:
            raise RuntimeError(
                "you can only change requires_grad flags of leaf variables. If you want to use a "
                "computed variable in a subgraph that doesn't require differentiation use "
                "var_no_grad = var.detach()."
            )
        if value and self._data.dtype.kind != "f":
            raise RuntimeError(
                f"only Tensors of floating point dtype can require gradients, got {self.dtype}"
            )
        self._requires_grad = bool(value)

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        self.requires_grad = requires_grad
        return self

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    @property
    def _version(self) -> int:
        return self._version_counter[0]

    @property
    def shape(self) -> tuple[int, ...]:
        return self._data.shape

    def size(self, dim: int | None = None) -> Any:
        """The shape, or the length of one dimension."""
        if dim is None:
            return self._data.shape
        return self._data.shape[_wrap_dim(dim, self._data.ndim)]

    def dim(self) -> int:
        return self._data.ndim

    ndimension = dim

    @property
    def ndim(self) -> int:
        return self._data.ndim

    def numel(self) -> int:
        return int(self._data.size)

    nelement = numel

    @property
    def dtype(self) -> np.dtype:
        return self._data.dtype

    @property
    def device(self) -> backend.device:
        return backend.device_of(self._data)

    @property
    def is_cuda(self) -> bool:
        return self.device.type == "cuda"

    @property
    def is_floating_point_type(self) -> bool:
        return self._data.dtype.kind == "f"

    def is_floating_point(self) -> bool:
        return self._data.dtype.kind == "f"

    def element_size(self) -> int:
        return self._data.dtype.itemsize

    @property
    def itemsize(self) -> int:
        return self._data.dtype.itemsize

    # dltool's tensors are dense (strided) and live on the CPU or a CUDA GPU
    is_sparse = is_quantized = is_meta = is_mps = is_xpu = False

    @property
    def layout(self) -> Any:
        return _tensor_types.strided

    def is_complex(self) -> bool:
        return self._data.dtype.kind == "c"

    def stride(self, dim: int | None = None) -> Any:
        """The step between neighbours along each dimension, in elements, as PyTorch counts it.

        NOTE: the steps are numpy's, so a view that PyTorch would have copied instead (``flip``)
        shows its negative steps.
        """
        strides = tuple(step // self._data.itemsize for step in self._data.strides)
        if not self._data.size and not any(strides):  # numpy gives a new empty array no steps
            shape = [max(n, 1) for n in self._data.shape]
            strides = tuple(math.prod(shape[d + 1 :]) for d in range(len(shape)))
        if dim is None:
            return strides
        if not strides:
            raise IndexError(f"Dimension specified as {dim} but tensor has no dimensions")
        return strides[_wrap_dim(dim, len(strides))]

    def storage_offset(self) -> int:
        """How many elements into its storage this tensor starts (a slice's or a select's offset)."""
        root = self._data
        while isinstance(root.base, type(root)):
            root = root.base
        return (_address(self._data) - _address(root)) // self._data.itemsize

    def data_ptr(self) -> int:
        """The address of the first element (0 for an empty tensor, as in PyTorch)."""
        return _address(self._data) if self._data.size else 0

    @property
    def T(self) -> Tensor:
        return _shape.permute(self, tuple(reversed(range(self.ndim))))

    @property
    def mT(self) -> Tensor:
        return _shape.transpose(self, -2, -1)

    # ------------------------------------------------------------ conversion

    def item(self) -> Any:
        """The value of a one-element tensor as a Python number."""
        if self._data.size != 1:
            raise RuntimeError(
                f"a Tensor with {self._data.size} elements cannot be converted to Scalar"
            )
        return self._data.reshape(()).item()

    def tolist(self) -> Any:
        return self._data.tolist() if self.device.type == "cpu" else self.cpu().tolist()

    def numpy(self, force: bool = False) -> np.ndarray:
        """The storage as a numpy array (shared, not copied), for CPU tensors without grad."""
        if self._requires_grad and not force:
            raise RuntimeError(
                "Can't call numpy() on Tensor that requires grad. Use tensor.detach().numpy() instead."
            )
        if self.device.type != "cpu":
            if not force:
                raise TypeError(
                    f"can't convert {self.device} device type tensor to numpy. "
                    "Use Tensor.cpu() to copy the tensor to host memory first."
                )
            return backend.move(self._data, backend.CPU)
        return self._data

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        array = backend.move(self._data, backend.CPU)
        return array if dtype is None else array.astype(dtype)

    def to(self, *args: Any, **kwargs: Any) -> Tensor:
        """Move and/or cast: ``to(device)``, ``to(dtype)``, ``to(tensor)``, ``to(device, dtype)``."""
        device, dtype = _parse_to(args, kwargs)
        result = self
        if dtype is not None and dtype != self.dtype:
            result = _elementwise.cast(result, dtype)
        if device is not None and device != result.device:
            result = _elementwise.to_device(result, device)
        if kwargs.get("copy") and result is self:
            result = self.clone()
        return result

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self, device: int | None = None) -> Tensor:
        return self.to(backend.device("cuda", device))

    def type(self, dtype: Any = None, non_blocking: bool = False) -> Any:
        """PyTorch's type string (``"torch.FloatTensor"``), or a cast to a type string, legacy type or dtype."""
        if dtype is None:
            return _tensor_types.type_name(self)
        return _tensor_types.cast(self, dtype)

    def type_as(self, other: Tensor) -> Tensor:
        return self.to(other.dtype)

    def float(self) -> Tensor:
        return self.to(dtypes.float32)

    def double(self) -> Tensor:
        return self.to(dtypes.float64)

    def half(self) -> Tensor:
        return self.to(dtypes.float16)

    def long(self) -> Tensor:
        return self.to(dtypes.int64)

    def int(self) -> Tensor:
        return self.to(dtypes.int32)

    def bool(self) -> Tensor:
        return self.to(dtypes.bool)

    def byte(self) -> Tensor:
        return self.to(dtypes.uint8)

    def clone(self) -> Tensor:
        return _elementwise.clone(self)

    def contiguous(self) -> Tensor:
        """Self when already C-contiguous, else a contiguous copy (gradients flow through)."""
        if self._data.flags.c_contiguous:
            return self
        return _elementwise.clone(self)

    def is_contiguous(self) -> bool:
        return bool(self._data.flags.c_contiguous)

    def detach(self) -> Tensor:
        """The same storage and version counter, cut from the graph."""
        return Tensor._make(self._data, None, 0, self._version_counter)

    def detach_(self) -> Tensor:
        self.grad_fn = None
        self._requires_grad = False
        self._view = None
        return self

    # ------------------------------------------------------------ autograd

    def backward(
        self,
        gradient: Tensor | None = None,
        retain_graph: bool | None = None,
        create_graph: bool = False,
    ) -> None:
        """Accumulate the gradient of this tensor into the ``.grad`` of the leaves it came from."""
        _engine.backward(self, gradient, retain_graph, create_graph)

    def retain_grad(self) -> None:
        """Keep ``.grad`` for this non-leaf tensor after backward."""
        if self.grad_fn is None:
            if not self._requires_grad:
                raise RuntimeError("can't retain_grad on Tensor that has requires_grad=False")
            return
        self.grad_fn._retain_grad(self._output_nr, self)

    @property
    def retains_grad(self) -> bool:
        node = self.grad_fn
        return bool(node is not None and node._retains and self._output_nr in node._retains)

    def register_hook(self, hook: Callable[[Tensor], Tensor | None]) -> RemovableHandle:
        """``hook(grad)`` runs when this tensor's gradient is computed; it may return a new one."""
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            return self.grad_fn._add_tensor_prehook(self._output_nr, hook)
        if self._backward_hooks is None:
            self._backward_hooks = []
        self._backward_hooks.append(hook)
        return RemovableHandle(self._backward_hooks, hook)

    def register_post_accumulate_grad_hook(self, hook: Callable[[Tensor], None]) -> RemovableHandle:
        """``hook(self)`` runs once backward has accumulated this leaf's gradient into ``.grad``.

        The hook gets the tensor, not the gradient, and may read or change ``self.grad`` in place.

        Raises:
            RuntimeError: the tensor does not require grad, or it is not a leaf.
        """
        if not self._requires_grad:
            raise RuntimeError("cannot register a hook on a tensor that doesn't require gradient")
        if self.grad_fn is not None:
            raise RuntimeError("post accumulate grad hooks cannot be registered on non-leaf tensors")
        if self._post_accumulate_grad_hooks is None:
            self._post_accumulate_grad_hooks = []
        self._post_accumulate_grad_hooks.append(hook)
        return RemovableHandle(self._post_accumulate_grad_hooks, hook)

    # ------------------------------------------------------------ in-place

    def _inplace(self, op: Callable[..., Tensor], *args: Any, **kwargs: Any) -> Tensor:
        """Run ``op(self, *args)`` and write the result into this tensor's storage.

        With autograd on, the tensor moves in the graph to the new node, and a snapshot of its
        old value stands in for it, so backward still sees what the op saw.
        """
        if _grad_state.enabled and (self.requires_grad or _any_requires_grad(args)):
            view = self._view
            if self.grad_fn is None and self._requires_grad:
                raise RuntimeError(
                    "a leaf Variable that requires grad is being used in an in-place operation."
                )
            if view is not None and view[0].grad_fn is None and view[0]._requires_grad:
                raise RuntimeError(
                    "a view of a leaf Variable that requires grad is being used in an in-place operation."
                )
            old = Tensor._make(self._data.copy(), self.grad_fn, self._output_nr)
            result = op(old, *args, **kwargs)
            self._write(result)
            self.grad_fn, self._output_nr = result.grad_fn, result._output_nr
            self._requires_grad = result._requires_grad
            if view is not None:
                self._rebase_root(result)
        else:
            previous, _grad_state.enabled = _grad_state.enabled, False
            try:
                self._write(op(self, *args, **kwargs))
            finally:
                _grad_state.enabled = previous
        return self

    def _rebase_root(self, value: Tensor) -> None:
        """After ``value`` was written into this view, give its root the matching history."""
        tensor = self
        while tensor._view is not None:
            _, _, base, op, args = tensor._view
            value = op.put_back(base, value, *args)
            tensor = base
        tensor.grad_fn, tensor._output_nr = value.grad_fn, value._output_nr
        tensor._requires_grad = value._requires_grad

    def _write(self, result: Tensor) -> None:
        if result.shape != self.shape:
            raise RuntimeError(
                f"output with shape {list(self.shape)} doesn't match the broadcast shape "
                f"{list(result.shape)}"
            )
        if result.dtype.kind == "f" and self.dtype.kind != "f":
            raise RuntimeError(f"result type {result.dtype} can't be cast to the desired output type {self.dtype}")
        try:
            self._data[...] = result._data
        except ValueError:  # numpy marks broadcast views (expand) read-only
            raise RuntimeError(OVERLAP_MESSAGE) from None
        self._version_counter[0] += 1

    def copy_(self, src: Any, non_blocking: bool = False) -> Tensor:
        """Copy ``src`` (broadcast and cast as needed) into this tensor."""
        return self._inplace(_elementwise.overwrite, src)

    def fill_(self, value: Any) -> Tensor:
        if isinstance(value, Tensor) or (_grad_state.enabled and self.requires_grad):
            return self._inplace(_elementwise.overwrite, value)
        # outside autograd (a gradient zeroed in place, an init under no_grad): one pass, no temporaries
        try:
            self._data.fill(value)
        except ValueError:  # numpy marks broadcast views (expand) read-only
            raise RuntimeError(OVERLAP_MESSAGE) from None
        self._version_counter[0] += 1
        return self

    def zero_(self) -> Tensor:
        return self.fill_(0)

    def uniform_(self, a: float = 0.0, b: float = 1.0, *, generator: Any = None) -> Tensor:
        sample = backend.rng(generator).uniform(a, b, self.shape)
        return self._inplace(_elementwise.overwrite, self._from_host(sample))

    def normal_(self, mean: float = 0.0, std: float = 1.0, *, generator: Any = None) -> Tensor:
        sample = backend.rng(generator).normal(mean, std, self.shape)
        return self._inplace(_elementwise.overwrite, self._from_host(sample))

    def bernoulli_(self, p: float = 0.5, *, generator: Any = None) -> Tensor:
        sample = backend.rng(generator).random(self.shape) < p
        return self._inplace(_elementwise.overwrite, self._from_host(sample))

    def random_(self, low: int = 0, high: int | None = None, *, generator: Any = None) -> Tensor:
        if high is None:
            low, high = 0, low
        sample = backend.rng(generator).integers(low, high, self.shape)
        return self._inplace(_elementwise.overwrite, self._from_host(sample))

    def apply_(self, callable: Callable[[Any], Any]) -> Tensor:
        """Replace each element with ``callable`` of it (a Python number in and out), as PyTorch.

        One Python call per element, on CPU tensors only: for small tensors, not for hot paths.
        """
        if self.requires_grad:
            raise RuntimeError(
                "Can't call apply_() on Variable that requires grad. Use var.detach().apply_() instead."
            )
        if self.device.type != "cpu":
            raise TypeError("apply_ is only implemented on CPU tensors")
        values = np.asarray(np.frompyfunc(callable, 1, 1)(self._data), dtype=object)
        self._write(Tensor._make(values.astype(self.dtype)))
        return self

    def _from_host(self, array: np.ndarray) -> Tensor:
        """A host sample as a tensor of this tensor's dtype and device."""
        array = array.astype(self.dtype, copy=False)
        return Tensor._make(backend.move(array, self.device))

    def __setitem__(self, key: Any, value: Any) -> None:
        self._inplace(_index.index_put, key, value)

    # (operators, +=, and the in-place twins of the ops such as add_ are bound from the table
    # in ops/_methods.py)

    def __getitem__(self, key: Any) -> Tensor:
        return _index.getitem(self, key)

    def __len__(self) -> int:
        if self._data.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self._data.shape[0]

    def __iter__(self) -> Iterator[Tensor]:
        if self._data.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self._data.shape[0]))

    def __bool__(self) -> bool:
        if self._data.size != 1:
            raise RuntimeError(
                f"Boolean value of Tensor with more than one value is ambiguous ({self._data.size} values)"
            )
        return bool(self.item())

    def __float__(self) -> float:
        return float(self.item())

    def __int__(self) -> int:
        return int(self.item())

    def __index__(self) -> int:
        if self.dtype.kind not in "iu" or self._data.size != 1:
            raise TypeError("only integer tensors of a single element can be converted to an index")
        return int(self.item())

    def __repr__(self) -> str:
        return _format_tensor(self)

    def __format__(self, format_spec: str) -> str:
        # f"{loss:.3f}": a 0-d tensor formats as its number; any other, as an object (PyTorch's rule)
        if self._data.ndim == 0 and type(self) is Tensor:
            return self.item().__format__(format_spec)
        return object.__format__(self, format_spec)

    def __reduce_ex__(self, protocol: Any) -> Any:
        # DataLoader workers send tensors between processes; only the array and flag travel
        return (_rebuild, (backend.move(self._data, backend.CPU), self._requires_grad))


def _rebuild(array: np.ndarray, requires_grad: bool) -> Tensor:
    return Tensor(array, requires_grad=requires_grad)


def _any_requires_grad(args: tuple) -> bool:
    return any(isinstance(arg, Tensor) and arg.requires_grad for arg in args)


def _address(array: Any) -> int:
    """The address of an array's first element (numpy and cupy spell it differently)."""
    return array.ctypes.data if isinstance(array, np.ndarray) else array.data.ptr


def _wrap_dim(dim: int, ndim: int) -> int:
    """A dimension index made non-negative, with PyTorch's error for one out of range."""
    bound = max(ndim, 1)
    if not -bound <= dim < bound:
        raise IndexError(
            f"Dimension out of range (expected to be in range of [{-bound}, {bound - 1}], but got {dim})"
        )
    return dim % bound


def _parse_to(args: tuple, kwargs: dict) -> tuple[backend.device | None, np.dtype | None]:
    device = kwargs.get("device")
    dtype = kwargs.get("dtype")
    for arg in args:
        if isinstance(arg, Tensor):
            device, dtype = arg.device, arg.dtype
        elif isinstance(arg, (str, backend.device)):
            device = arg
        elif arg is not None:
            dtype = arg
    device = backend.device(device) if device is not None else None
    dtype = dtypes.to_dtype(dtype) if dtype is not None else None
    return device, dtype


def _format_tensor(t: Tensor) -> str:
    array = backend.move(t._data, backend.CPU)
    prefix = "tensor("
    options = _environment.array2string_options(array)
    if array.dtype.kind == "f" and array.size and np.isfinite(array).all() and (array == np.round(array)).all():
        body = np.array2string(array, separator=", ", prefix=prefix, floatmode="unique", **options)
    elif array.dtype.kind == "f":
        body = np.array2string(array, separator=", ", prefix=prefix, floatmode="fixed", **options)
    else:
        body = np.array2string(array, separator=", ", prefix=prefix, **options)
    extras = []
    if t.device.type != "cpu":
        extras.append(f"device='{t.device}'")
    if array.size == 0:
        body = "[]"
        if array.ndim > 1:
            extras.append(f"size={tuple(array.shape)}")
    # PyTorch names the dtype unless the values imply it (an empty list implies the float one)
    implied = (dtypes.get_default_dtype(),) if array.size == 0 else (dtypes.get_default_dtype(), dtypes.int64, dtypes.bool)
    if array.dtype not in implied:
        extras.append(f"dtype={array.dtype}")
    if t.grad_fn is not None:
        extras.append(f"grad_fn=<{t.grad_fn.name()}>")
    elif t._requires_grad:
        extras.append("requires_grad=True")
    return prefix + body + "".join(", " + e for e in extras) + ")"


# Bound at the end: the op modules and the autograd Function import Tensor from this module.
_function._Tensor = Tensor
from dltool.engine import _tensor_types  # noqa: E402
from dltool.engine.autograd import engine as _engine  # noqa: E402
from dltool.engine.ops import elementwise as _elementwise  # noqa: E402
from dltool.engine.ops import index as _index  # noqa: E402
from dltool.engine.ops import shape as _shape  # noqa: E402
from dltool.engine.ops._methods import bind_methods  # noqa: E402

bind_methods(Tensor)
