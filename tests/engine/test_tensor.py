import numpy as np
import pytest

import dltool.engine as dl


def test_shape_attributes():
    x = dl.zeros(2, 3, 4)
    assert x.shape == x.size() == (2, 3, 4)
    assert x.size(1) == 3 and x.size(-1) == 4
    assert x.dim() == x.ndim == 3 and x.numel() == 24 and len(x) == 2
    assert dl.tensor(5.0).dim() == 0 and dl.tensor(5.0).numel() == 1
    assert x.dtype == dl.float32 and x.device == dl.device("cpu") and str(x.device) == "cpu"
    assert not x.is_cuda and x.is_floating_point() and not dl.tensor([1]).is_floating_point()
    assert x.element_size() == 4


def test_T_reverses_dims_of_a_matrix():
    x = dl.arange(6).reshape(2, 3)
    assert x.T.shape == (3, 2) and x.T.tolist() == [[0, 3], [1, 4], [2, 5]]


def test_item_tolist_numpy():
    assert dl.tensor([[2.5]]).item() == 2.5 and isinstance(dl.tensor(3).item(), int)
    assert dl.tensor([[1, 2], [3, 4]]).tolist() == [[1, 2], [3, 4]]
    array = dl.tensor([1.0, 2.0]).numpy()
    assert isinstance(array, np.ndarray) and array.dtype == np.float32
    x = dl.ones(2)
    x.numpy()[0] = 5.0  # numpy() shares memory
    assert x[0].item() == 5.0
    assert float(dl.tensor(1.5)) == 1.5 and int(dl.tensor(2)) == 2 and bool(dl.tensor([True]))
    assert np.asarray(dl.ones(2)).tolist() == [1.0, 1.0]


def test_clone_contiguous_detach():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    c = x.clone()
    assert c.grad_fn.name() == "CloneBackward0" and not np.shares_memory(
        c.detach().numpy(), x.detach().numpy()
    )
    t = dl.ones(2, 3).t()
    assert not t.is_contiguous() and t.contiguous().is_contiguous()
    assert x.contiguous() is x
    d = x.detach()
    assert not d.requires_grad and d.grad_fn is None
    d[0] = 10.0  # detach shares data
    assert x[0].item() == 10.0


@pytest.mark.parametrize(
    "method,dtype",
    [
        ("float", dl.float32),
        ("double", dl.float64),
        ("half", dl.float16),
        ("long", dl.int64),
        ("int", dl.int32),
        ("bool", dl.bool),
    ],
)
def test_dtype_conversion_methods(method, dtype):
    x = dl.tensor([0.0, 1.5])
    assert getattr(x, method)().dtype == dtype


def test_to_dtype_device_and_tensor():
    x = dl.tensor([1.5, 2.0])
    assert x.to(dl.float64).dtype == dl.float64
    assert x.to("cpu") is x and x.cpu() is x
    assert x.to("cpu", dl.int64).tolist() == [1, 2]
    assert x.to(dtype=dl.float16).dtype == dl.float16
    assert x.to(dl.zeros(1, dtype=dl.int32)).dtype == dl.int32
    assert x.type_as(dl.tensor([1])).dtype == dl.int64
    assert x.to(dl.float32) is x and x.to(dl.float32, copy=True) is not x


def test_cuda_without_gpu_is_a_clear_error():
    if dl.cuda.is_available():
        pytest.skip("a GPU is present")
    for call in (
        lambda: dl.ones(2).cuda(),
        lambda: dl.ones(2).to("cuda"),
        lambda: dl.zeros(2, device="cuda"),
    ):
        with pytest.raises(RuntimeError, match="CUDA is not available.*dltool\\[gpu\\]"):
            call()


def test_repr_matches_pytorch():
    x = dl.tensor([5.0], requires_grad=True)
    assert repr(x * 2) == "tensor([10.], grad_fn=<MulBackward0>)"
    assert repr(x) == "tensor([5.], requires_grad=True)"
    assert repr(x.sum()) == "tensor(5., grad_fn=<SumBackward0>)"
    assert repr(dl.tensor([1, 2])) == "tensor([1, 2])"
    assert repr(dl.tensor([1.5, 2.25])) == "tensor([1.5000, 2.2500])"
    assert repr(dl.tensor([[1.0, 2.0], [3.0, 4.0]])) == "tensor([[1., 2.],\n        [3., 4.]])"
    assert repr(dl.tensor([1.0], dtype=dl.float64)) == "tensor([1.], dtype=float64)"
    assert repr(dl.zeros(0)) == "tensor([])"
    assert repr(dl.zeros(0, 3)) == "tensor([], size=(0, 3))"
    assert repr(dl.zeros(0, dtype=dl.int64)) == "tensor([], dtype=int64)"
    assert str(dl.tensor(3.0)) == "tensor(3.)"


def test_data_get_and_set():
    x = dl.tensor([1.0, 2.0], requires_grad=True)
    data = x.data
    assert not data.requires_grad and data.grad_fn is None
    data[0] = 7.0  # shares storage and is invisible to autograd
    assert x[0].item() == 7.0
    x.data = dl.tensor([3.0, 4.0])
    assert x.tolist() == [3.0, 4.0] and x.requires_grad and x.is_leaf
    (x * x).sum().backward()
    assert x.grad.tolist() == [6.0, 8.0]


PROMOTION = [
    (lambda: dl.tensor([1, 2]) + 1.5, dl.float32),
    (lambda: dl.tensor([1, 2]) * 2, dl.int64),
    (lambda: dl.tensor([True]) + True, dl.bool),
    (lambda: dl.tensor([True]) + 1, dl.int64),
    (lambda: dl.tensor([1.0], dtype=dl.float16) * 2.0, dl.float16),
    (lambda: dl.tensor([1.0], dtype=dl.float16) + dl.tensor([1.0]), dl.float32),
    (lambda: dl.tensor([1.0]) + dl.tensor([1.0], dtype=dl.float64), dl.float64),
    (lambda: dl.tensor([1.0]) + dl.tensor(1.0, dtype=dl.float64), dl.float32),  # 0-dim never widens
    (lambda: dl.tensor([1], dtype=dl.int32) + dl.tensor(1), dl.int32),
    (lambda: dl.tensor([1], dtype=dl.int32) + dl.tensor([1]), dl.int64),
    (lambda: dl.tensor([1], dtype=dl.int32) + dl.tensor(1.0, dtype=dl.float64), dl.float64),
    (lambda: dl.tensor([1], dtype=dl.int32) + np.float64(1.0), dl.float32),
    (lambda: dl.tensor([3]) / 2, dl.float32),
    (lambda: dl.tensor([1]).exp(), dl.float32),
    (lambda: dl.tensor([1.0], dtype=dl.float64) + np.float32(1.0), dl.float64),
]


@pytest.mark.parametrize("expr,dtype", PROMOTION)
def test_type_promotion(expr, dtype):
    assert expr().dtype == dtype


def test_default_dtype_can_change():
    try:
        dl.set_default_dtype(dl.float64)
        assert dl.tensor([1.0]).dtype == dl.zeros(1).dtype == dl.rand(1).dtype == dl.float64
    finally:
        dl.set_default_dtype(dl.float32)
    with pytest.raises(TypeError, match="only floating-point types"):
        dl.set_default_dtype(dl.int64)


def test_reflected_and_unary_operators():
    x = dl.tensor([2.0, 4.0])
    assert (1 + x).tolist() == [3.0, 5.0] and (1 - x).tolist() == [-1.0, -3.0]
    assert (2 * x).tolist() == [4.0, 8.0] and (8 / x).tolist() == [4.0, 2.0]
    assert (2**x).tolist() == [4.0, 16.0] and (x**2).tolist() == [4.0, 16.0]
    assert (9 // x).tolist() == [4.0, 2.0] and (9 % x).tolist() == [1.0, 1.0]
    assert (-x).tolist() == [-2.0, -4.0] and (+x) is x and abs(-x).tolist() == [2.0, 4.0]
    assert (np.ones(2) @ dl.eye(2, dtype=dl.float64)).tolist() == [1.0, 1.0]
    assert (x == 2.0).tolist() == [True, False] and (x != 2.0).tolist() == [False, True]
    assert (x >= 4).tolist() == [False, True] and (x < 3).tolist() == [True, False]


@pytest.mark.parametrize(
    "call,error,message",
    [
        (lambda: dl.ones(2).item(), RuntimeError, "a Tensor with 2 elements cannot be converted to Scalar"),
        (
            lambda: bool(dl.ones(2)),
            RuntimeError,
            "Boolean value of Tensor with more than one value is ambiguous",
        ),
        (
            lambda: dl.ones(2, 3) + dl.ones(3, 2),
            RuntimeError,
            r"The size of tensor a \(3\) must match the size of tensor b \(2\) at non-singleton dimension 1",
        ),
        (
            lambda: dl.tensor([1]).requires_grad_(),
            RuntimeError,
            "only Tensors of floating point dtype can require gradients",
        ),
        (
            lambda: dl.tensor([1.0], requires_grad=True).numpy(),
            RuntimeError,
            "Use tensor.detach\\(\\).numpy\\(\\) instead",
        ),
        (lambda: dl.tensor("abc"), TypeError, "can't convert str to a tensor"),
        (lambda: dl.tensor([1.0], dtype="complex64"), TypeError, "unsupported dtype: complex64"),
        (lambda: dl.ones(2).to("gpu"), RuntimeError, "Expected one of cpu, cuda device type"),
        (lambda: dl.ones(2).size(2), IndexError, "Dimension out of range"),
        (lambda: len(dl.tensor(1.0)), TypeError, "len\\(\\) of a 0-d tensor"),
        (lambda: dl.tensor([1]) ** -1, RuntimeError, "Integers to negative integer powers are not allowed"),
        (
            lambda: dl.div(dl.ones(1), 2, rounding_mode="round"),
            ValueError,
            "rounding_mode to be one of None, 'trunc', or 'floor'",
        ),
        (lambda: dl.ones(2).add_(dl.ones(3)), RuntimeError, "must match the size of tensor b"),
        (
            lambda: dl.ones(2).add_(dl.ones(3, 2)),
            RuntimeError,
            r"output with shape \[2\] doesn't match the broadcast shape \[3, 2\]",
        ),
        (
            lambda: dl.tensor([1, 2]).add_(0.5),
            RuntimeError,
            "result type float32 can't be cast to the desired output type int64",
        ),
    ],
)
def test_errors_read_like_pytorch(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_tensors_survive_pickling_for_worker_processes():
    import pickle

    x = dl.tensor([1.0, 2.0], requires_grad=True)
    y = pickle.loads(pickle.dumps(x))
    assert y.tolist() == [1.0, 2.0] and y.requires_grad and y.is_leaf
