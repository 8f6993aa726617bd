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
    empty_strided,
    eye,
    from_numpy,
    full,
    full_like,
    linspace,
    logspace,
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
from dltool.engine.ops.assemble import (
    atleast_1d,
    atleast_2d,
    atleast_3d,
    block_diag,
    cartesian_prod,
    column_stack,
    dstack,
    hstack,
    meshgrid,
    repeat_interleave,
    row_stack,
    vstack,
)
from dltool.engine.ops.diagonal import (
    diag,
    diag_embed,
    diagonal,
    diagonal_scatter,
    tril,
    tril_indices,
    triu,
    triu_indices,
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
    float_power,
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
    scatter_add,
    sort,
    take,
    topk,
)
from dltool.engine.ops.linalg import (
    addbmm,
    addmm,
    addmv,
    addr,
    baddbmm,
    bmm,
    cross,
    dot,
    einsum,
    ger,
    kron,
    matmul,
    mm,
    outer,
    tensordot,
    trace,
)
from dltool.engine.ops.matrix import cholesky, det, inverse, logdet, pinverse, qr, slogdet, svd
from dltool.engine.ops.norm import cdist, dist
from dltool.engine.ops.piecewise import copysign, fmod, frac, heaviside, nan_to_num, signbit
from dltool.engine.ops.reduce import (
    all,
    amax,
    amin,
    aminmax,
    any,
    argmax,
    argmin,
    count_nonzero,
    log_softmax,
    logsumexp,
    max,
    mean,
    min,
    nanmean,
    nansum,
    norm,
    prod,
    softmax,
    std,
    std_mean,
    sum,
    var,
    var_mean,
)
from dltool.engine.ops.scan import cummax, cummin, cumprod, cumsum, diff, logcumsumexp
from dltool.engine.ops.scatter import index_add, index_copy, index_fill, scatter, scatter_reduce
from dltool.engine.ops.select import (
    bincount,
    bucketize,
    histc,
    kthvalue,
    median,
    mode,
    msort,
    nanmedian,
    searchsorted,
    unique,
    unique_consecutive,
)
from dltool.engine.ops.shape import (
    broadcast_to,
    cat,
    chunk,
    concat,
    concatenate,
    flatten,
    flip,
    fliplr,
    flipud,
    movedim,
    narrow,
    permute,
    reshape,
    roll,
    rot90,
    split,
    squeeze,
    stack,
    swapaxes,
    swapdims,
    t,
    tile,
    transpose,
    unbind,
    unflatten,
    unsqueeze,
)
from dltool.engine.ops.special import erf, erfc, erfinv, exp2, logaddexp, logaddexp2, xlogy
from dltool.engine.ops.trig import (
    acos,
    acosh,
    arccos,
    arccosh,
    arcsin,
    arcsinh,
    arctan,
    arctan2,
    arctanh,
    asin,
    asinh,
    atan,
    atan2,
    atanh,
    cosh,
    deg2rad,
    hypot,
    rad2deg,
    sinc,
    sinh,
    tan,
)
from dltool.engine.serialization import load, save
from dltool.engine.tensor import Tensor

# isort: split
# NOTE: the data package builds on Tensor and the ops, so it is imported after them
# nn builds on everything above; importing it earlier would be circular
from dltool.engine import distributed, linalg, nn, utils

# isort: split
# graph capture: a traced module is a Module, and ONNX export is written from a trace
from dltool.engine import jit, onnx
from dltool.engine.jit._compile import compile

# isort: split
# the device and environment shims; cuda holds the legacy CUDA tensor types, built on the ones below
from dltool.engine import accelerator, backends, cuda
from dltool.engine._environment import (
    are_deterministic_algorithms_enabled,
    get_printoptions,
    is_deterministic_algorithms_warn_only_enabled,
    set_printoptions,
    use_deterministic_algorithms,
)
from dltool.engine._tensor_types import (
    BoolTensor,
    ByteTensor,
    CharTensor,
    DoubleTensor,
    FloatTensor,
    HalfTensor,
    IntTensor,
    LongTensor,
    ShortTensor,
    layout,
    strided,
)
from dltool.engine._threads import get_num_threads, set_num_threads


def is_tensor(obj: object) -> "bool":
    return isinstance(obj, Tensor)


def numel(input: Tensor) -> "int":
    return input.numel()
