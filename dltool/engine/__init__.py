"""dltool's engine: tensors, autograd, nn, optim and data, with PyTorch's API.

``import dltool.engine as torch`` and PyTorch code for the implemented subset runs unchanged.
"""

from dltool.engine import autograd, host_memory, optim
from dltool.engine.autograd import enable_grad, inference_mode, is_grad_enabled, no_grad, set_grad_enabled
from dltool.engine.backend import (
    Generator,
    default_generator,
    device,
    get_rng_state,
    initial_seed,
    manual_seed,
    seed,
    set_rng_state,
)
from dltool.engine.creation import (
    arange,
    as_tensor,
    bernoulli,
    empty,
    empty_like,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    multinomial,
    normal,
    ones,
    ones_like,
    rand,
    rand_like,
    randint,
    randint_like,
    randn,
    randn_like,
    randperm,
    tensor,
    zeros,
    zeros_like,
)
from dltool.engine.dtypes import (
    bool,
    double,
    float,
    float16,
    float32,
    float64,
    get_default_dtype,
    half,
    int,
    int8,
    int16,
    int32,
    int64,
    long,
    set_default_dtype,
    short,
    uint8,
)
from dltool.engine.ops.elementwise import (
    abs,
    absolute,
    add,
    addcdiv,
    addcmul,
    allclose,
    bitwise_and,
    bitwise_not,
    bitwise_or,
    bitwise_xor,
    ceil,
    clamp,
    clamp_max,
    clamp_min,
    clip,
    clone,
    cos,
    div,
    divide,
    eq,
    equal,
    exp,
    expm1,
    floor,
    fmax,
    fmin,
    ge,
    greater,
    greater_equal,
    gt,
    isclose,
    isfinite,
    isinf,
    isnan,
    le,
    lerp,
    less,
    less_equal,
    log,
    log1p,
    log2,
    log10,
    logical_and,
    logical_not,
    logical_or,
    logical_xor,
    lt,
    masked_fill,
    maximum,
    minimum,
    mul,
    multiply,
    ne,
    neg,
    negative,
    not_equal,
    pow,
    reciprocal,
    relu,
    remainder,
    round,
    rsqrt,
    rsub,
    sigmoid,
    sign,
    sin,
    sqrt,
    square,
    sub,
    subtract,
    tanh,
    true_divide,
    trunc,
    where,
)
from dltool.engine.ops.index import (
    argsort,
    gather,
    index_select,
    masked_select,
    nonzero,
    scatter,
    scatter_add,
    sort,
    take,
    topk,
)
from dltool.engine.ops.linalg import addmm, bmm, dot, ger, matmul, mm, outer
from dltool.engine.ops.reduce import (
    all,
    amax,
    amin,
    any,
    argmax,
    argmin,
    count_nonzero,
    log_softmax,
    logsumexp,
    max,
    mean,
    min,
    norm,
    prod,
    softmax,
    std,
    sum,
    var,
    var_mean,
)
from dltool.engine.ops.shape import (
    broadcast_to,
    cat,
    chunk,
    concat,
    concatenate,
    flatten,
    flip,
    hstack,
    movedim,
    narrow,
    permute,
    reshape,
    split,
    squeeze,
    stack,
    swapaxes,
    swapdims,
    t,
    transpose,
    unbind,
    unflatten,
    unsqueeze,
    vstack,
)
from dltool.engine.serialization import load, save
from dltool.engine.tensor import Tensor

# isort: split
# NOTE: the data package builds on Tensor and the ops, so it is imported after them
# nn builds on everything above; importing it earlier would be circular
from dltool.engine import nn, utils


class cuda:  # noqa: N801 - PyTorch's namespace
    """``dltool.engine.cuda.is_available()``, as ``torch.cuda``."""

    from dltool.engine.backend import cuda_is_available as is_available  # noqa: F401

    @staticmethod
    def manual_seed_all(seed_value: "int") -> None:
        """Seeds the one generator dltool draws from (samples are drawn on the host)."""
        manual_seed(seed_value)


def is_tensor(obj: object) -> "bool":
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> "int":  # noqa: A002
    return input.numel()

host_memory.tune_malloc()
