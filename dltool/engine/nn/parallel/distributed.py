"""``DistributedDataParallel``: one model replica per process, gradients averaged in buckets.

How a step goes, as in PyTorch's reducer (``_Reducer`` here, which owns the buckets and the state
of each backward pass, while the Module broadcasts and runs the forward): once backward has
accumulated a parameter's gradient into ``.grad``, the parameter's post-accumulate-grad hook puts
it, divided by the world size, into its slot of a flat bucket (about ``bucket_cap_mb`` each, filled
in reverse parameter order, the order backward produces gradients); when a bucket is full its
non-blocking all-reduce starts, while backward goes on with the layers below. Buckets start in
index order on every rank, as MPI's ordering of collectives requires. The hook that completes the
last bucket waits for all of them (the engine has no end-of-backward callback, PyTorch's
``queue_callback``) and copies the averages back into ``.grad``.

With ``gradient_as_bucket_view=True`` the slot is the gradient: ``.grad`` becomes a view of the
bucket, backward accumulates into it in place, the hook only divides it, and nothing is copied
back. A ``.grad`` set to None (``zero_grad()``'s default) is copied into its slot once more and
made the view again, as PyTorch does.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Iterator
from typing import Any

import numpy as np

from dltool.engine import backend
from dltool.engine import distributed as dist
from dltool.engine.autograd import is_grad_enabled
from dltool.engine.autograd.engine import _in_order
from dltool.engine.autograd.function import AccumulateGrad
from dltool.engine.nn.modules.module import Module
from dltool.engine.tensor import Tensor
from dltool.engine.utils._structure import leaves

_MB = 1024 * 1024
_UNUSED_PARAMETERS = (
    "Expected to have finished reduction in the prior iteration before starting a new one. This "
    "error indicates that your module has parameters that were not used in producing loss "
    "({names}); dltool's DistributedDataParallel needs every parameter to get a gradient in every "
    "synchronized backward pass."
)


class _Bucket:
    """A flat gradient buffer for consecutive parameters of one dtype, and each one's view of it."""

    def __init__(self, params: list[tuple[str, Tensor]]) -> None:
        self.names = [name for name, _ in params]
        self.params = [param for _, param in params]
        sizes = [param.numel() for param in self.params]
        offsets = [sum(sizes[:i]) for i in range(len(sizes) + 1)]
        first = self.params[0]
        self.flat = first._xp().zeros(offsets[-1], dtype=first._data.dtype)
        self.views = [
            self.flat[start:end].reshape(param._data.shape)
            for start, end, param in zip(offsets[:-1], offsets[1:], self.params, strict=True)
        ]
        self.marked = [False] * len(self.params)
        self.ready = 0


class _Reducer:
    """The buckets of one DDP model and the state of the backward pass that averages them (a
    plain object: per-step bookkeeping on the Module would go through ``Module.__setattr__``)."""

    __slots__ = ("group", "buckets", "as_view", "scale", "works", "next", "expect_backward", "uses")

    def __init__(self, group: Any, groups: list[list[tuple[str, Tensor]]], as_view: bool) -> None:
        self.group = group
        self.buckets = [_Bucket(params) for params in groups]
        self.as_view = as_view
        self.scale = 1.0 / group.size
        self.works: list[dist.Work] = []
        self.next = 0  # the first bucket whose all-reduce has not started
        self.expect_backward = False  # armed by the forward: the next backward syncs
        self.uses: tuple[Any, dist.Work] | None = None  # find_unused_parameters: per bucket slot
        for bucket in self.buckets:
            for slot, param in enumerate(bucket.params):
                param.register_post_accumulate_grad_hook(self._make_hook(bucket, slot))

    def _make_hook(self, bucket: _Bucket, slot: int) -> Any:
        view = bucket.views[slot]

        def hook(param: Tensor) -> None:
            if not self.expect_backward:
                return
            # the average's division rides on the copy into the bucket (in place where .grad is
            # the bucket's view already), and the bucket is then summed
            grad = param.grad._data
            param._xp().multiply(grad, self.scale, out=view)
            if grad is not view and self.as_view:
                param.grad = Tensor._make(view)
            self.mark_ready(bucket, slot)
            if self.next < len(self.buckets):
                self.progress()
            else:
                self.finish()

        return hook

    def mark_unused(self, reached: set[int]) -> None:
        """Start counting, over all ranks, the ranks that used each parameter (for the ones no rank
        used), then make the parameters outside ``reached`` ready with zero gradients.

        NOTE: the count goes first on every rank: marking may start buckets, and MPI matches
        collectives by the order in which the ranks start them.
        """
        used = [id(param) in reached for bucket in self.buckets for param in bucket.params]
        counts = backend.array_module(self.buckets[0].flat).asarray(used, dtype=np.int32)
        self.uses = counts, self.group.all_reduce(counts, dist.ReduceOp.SUM)
        unused = (not flag for flag in used)
        for bucket in self.buckets:
            for slot in range(len(bucket.params)):
                if next(unused):
                    bucket.views[slot][...] = 0
                    self.mark_ready(bucket, slot)
        if self.next == len(self.buckets):  # nothing here will get a gradient: no hook will finish
            self.finish()

    def mark_ready(self, bucket: _Bucket, slot: int) -> None:
        if bucket.marked[slot]:
            raise RuntimeError(
                f"Expected to mark a variable ready only once: {bucket.names[slot]} got a gradient "
                "although the forward's outputs do not depend on it (find_unused_parameters=True)"
            )
        bucket.marked[slot] = True
        bucket.ready += 1
        if bucket.ready == len(bucket.params):
            self.launch_ready()

    def launch_ready(self) -> None:
        """Start the all-reduce of each full bucket, in index order (the same order on every rank)."""
        buckets = self.buckets
        while self.next < len(buckets) and buckets[self.next].ready == len(buckets[self.next].params):
            self.works.append(self.group.all_reduce(buckets[self.next].flat, dist.ReduceOp.SUM))
            self.next += 1

    def progress(self) -> None:
        """Let the all-reduces in flight advance: MPI implementations without a progress thread
        (MPICH's default) move a non-blocking collective only inside MPI calls."""
        for work in self.works:
            work.is_completed()

    def finish(self) -> None:
        """Wait for every bucket; the averages are in ``.grad`` then (copied there unless it is a view)."""
        for work in self.works:
            work.wait()
        used = iter(self.used_anywhere())
        for bucket in self.buckets:
            for param, view in zip(bucket.params, bucket.views, strict=True):
                if not next(used):  # no rank's outputs depended on it: its .grad stays as it was
                    continue
                if param.grad is None:
                    param.grad = Tensor._make(view if self.as_view else view.copy())
                elif param.grad._data is not view:
                    param.grad._data[...] = view
            bucket.ready = 0
            bucket.marked = [False] * len(bucket.params)
        self.works, self.next, self.expect_backward, self.uses = [], 0, False, None

    def used_anywhere(self) -> Any:
        """Per bucket slot, whether some rank's outputs depended on the parameter (all True unless
        ``find_unused_parameters`` looked)."""
        if self.uses is None:
            return itertools.repeat(True)
        counts, work = self.uses
        work.wait()
        return (count > 0 for count in counts.tolist())

    def unready(self) -> list[str]:
        """The names of the parameters that have not had their gradient yet."""
        return [
            name
            for bucket in self.buckets
            for name, marked in zip(bucket.names, bucket.marked, strict=True)
            if not marked
        ]


class DistributedDataParallel(Module):
    """Runs ``module`` in every process and averages its gradients over the process group.

    At construction the parameters and buffers of rank 0 are broadcast to the others; during
    ``backward()`` gradients are all-reduced (averaged) in buckets that overlap the rest of the
    backward pass. With ``broadcast_buffers=True`` each training forward first copies rank 0's
    buffers (e.g. BatchNorm running statistics) to every rank, as PyTorch does.

    ``module`` is registered as ``self.module``, so ``state_dict()`` keys start with ``module.``
    exactly as PyTorch's do (a checkpoint saved from a DDP model loads into one, and PyTorch code
    that strips the prefix keeps working); save ``model.module.state_dict()`` for keys that load
    into the bare model. dltool's trainer does the latter, so its checkpoints are the same with one
    process or many.

    With ``find_unused_parameters=True`` each training forward walks the graph of its outputs, as
    PyTorch's does: a parameter it does not reach adds zeros to the average at once, and one that no
    rank reached keeps its ``.grad`` as it was. Without it every parameter that requires grad must
    receive a gradient in each synchronized backward pass (a clear error names the others).

    Differs from PyTorch: ``device_ids`` / ``output_device`` are accepted and unused (the module
    already sits on its device), and an unused parameter adds zeros even where its ``.grad`` holds
    a value from before (PyTorch adds that value).

    Args:
        module: the model, identical on every rank.
        device_ids: kept for PyTorch's signature.
        output_device: kept for PyTorch's signature.
        dim: kept for PyTorch's signature.
        broadcast_buffers: copy rank 0's buffers to all ranks at each training forward.
        init_sync: broadcast rank 0's parameters and buffers at construction.
        process_group: the group (only the default group exists).
        bucket_cap_mb: the size of a gradient bucket in MiB (PyTorch's default, 25).
        find_unused_parameters: look for parameters that the forward's outputs do not depend on
            (a graph walk per training forward); needed where control flow skips parameters.
        check_reduction: deprecated in PyTorch; ignored.
        gradient_as_bucket_view: make each ``.grad`` a view of its all-reduce bucket, which saves
            a copy of the gradients per step and their memory; ``.grad`` then keeps its identity
            across steps, and a ``.grad`` set to None is copied in once per step.

    Raises:
        ValueError: the process group is not initialized.
        RuntimeError: the ranks hold different models.
    """

    def __init__(
        self,
        module: Module,
        device_ids: Any = None,
        output_device: Any = None,
        dim: int = 0,
        broadcast_buffers: bool = True,
        init_sync: bool = True,
        process_group: Any = None,
        bucket_cap_mb: float | None = None,
        find_unused_parameters: bool = False,
        check_reduction: bool = False,
        gradient_as_bucket_view: bool = False,
    ) -> None:
        super().__init__()
        self.module = module
        self.find_unused_parameters = find_unused_parameters
        self.broadcast_buffers = broadcast_buffers
        self.gradient_as_bucket_view = gradient_as_bucket_view
        self.require_backward_grad_sync = True
        self._group = dist.distributed_c10d._group(process_group)
        named = [(name, param) for name, param in module.named_parameters() if param.requires_grad]
        self._check_same_model(named)
        # where the buffers live, found once as PyTorch's DDP does; each forward reads them there,
        # so a buffer replaced later (a lazy module's, a loaded one) is the one broadcast
        self._buffer_slots = [(owner._buffers, name) for owner in module.modules() for name in owner._buffers]
        if init_sync:
            self._broadcast([param for _, param in module.named_parameters()] + list(module.buffers()))
        cap = int((25 if bucket_cap_mb is None else bucket_cap_mb) * _MB)
        self._reducer = _Reducer(self._group, _bucket_groups(named[::-1], cap), gradient_as_bucket_view)

    def forward(self, *inputs: Any, **kwargs: Any) -> Any:
        self._pre_forward()
        outputs = self.module(*inputs, **kwargs)
        if self.find_unused_parameters and self._reducer.expect_backward and self._reducer.buckets:
            self._reducer.mark_unused(_reached_leaves(outputs))
        return outputs

    def _pre_forward(self) -> None:
        """Rank 0's buffers, and gradient hooks armed for the next backward (when it will sync).

        A caller that runs ``module`` through its own methods (dltool's trainer calls a task's
        ``training_step``) calls this instead of ``forward``.
        """
        reducer = self._reducer
        if reducer.expect_backward and any(bucket.ready for bucket in reducer.buckets):
            raise RuntimeError(_UNUSED_PARAMETERS.format(names=", ".join(reducer.unready())))
        sync = is_grad_enabled() and self.require_backward_grad_sync
        if sync and self.broadcast_buffers:
            self._broadcast(
                [b for b in (store.get(name) for store, name in self._buffer_slots) if b is not None]
            )
        reducer.expect_backward = sync and self._group.size > 1

    @contextlib.contextmanager
    def no_sync(self) -> Iterator[None]:
        """Accumulate gradients locally inside the block; the first backward after it averages them."""
        previous, self.require_backward_grad_sync = self.require_backward_grad_sync, False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous

    # ------------------------------------------------------------------ construction

    def _check_same_model(self, named: list[tuple[str, Tensor]]) -> None:
        shapes = hash(tuple(tuple(param.shape) for _, param in named))
        mine = [len(named), sum(param.numel() for _, param in named), shapes]
        table = self._group.control_allgather(np.asarray(mine, dtype=np.int64))
        if (table != table[0]).any():
            raise RuntimeError(
                "DDP expects same model across all ranks, but the ranks' parameters differ "
                f"(count, elements per rank: {table[:, :2].tolist()})"
            )

    def _broadcast(self, tensors: list[Tensor]) -> None:
        if self._group.size == 1:
            return
        for work in [self._group.broadcast(tensor._data, 0) for tensor in tensors]:
            work.wait()


def _reached_leaves(outputs: Any) -> set[int]:
    """The ids of the leaf tensors whose gradient the tensors in ``outputs`` (nested in tuples,
    lists and dicts) depend on: the accumulating nodes that backward from them would reach."""
    roots = [(t._grad_node(), t._output_nr, None) for t in leaves(outputs, Tensor) if t.requires_grad]
    return {id(node.variable) for node in _in_order(roots) if type(node) is AccumulateGrad}


def _bucket_groups(named: list[tuple[str, Tensor]], cap: int) -> list[list[tuple[str, Tensor]]]:
    """Split parameters, in the given order, into runs of one dtype of at most ``cap`` bytes each."""
    groups: list[list[tuple[str, Tensor]]] = []
    size = 0
    for name, param in named:
        nbytes = param._data.nbytes
        if not groups or size + nbytes > cap or groups[-1][0][1].dtype != param.dtype:
            groups.append([])
            size = 0
        groups[-1].append((name, param))
        size += nbytes
    return groups
