"""Tensor methods about storage and kind (stride, data_ptr, layout, ...), apply_ and __format__, against PyTorch."""

import numpy as np
import pytest

import dltool.engine as dl

_VIEWS = {
    "transpose": lambda x: x.transpose(0, 2),
    "slice": lambda x: x[:, 1:, ::2],
    "select": lambda x: x[1],
    "permute": lambda x: x.permute(2, 0, 1),
    "narrow": lambda x: x.narrow(2, 1, 2),
    "view": lambda x: x.view(6, 4),
    "reshape": lambda x: x.reshape(4, 6),
    "ellipsis": lambda x: x[..., 0],
    "mT": lambda x: x.mT,
    "T": lambda x: x[0].T,
    "unsqueeze": lambda x: x.unsqueeze(1),
    "expand": lambda x: x[:, :1].expand(2, 3, 4),
    "detach": lambda x: x.detach(),
    "unbind": lambda x: x.unbind(1)[2],
    "chunk": lambda x: x.chunk(2, dim=2)[1],
    "split": lambda x: x.split(1, dim=1)[1],
    "flatten": lambda x: x.flatten(),
}


def _raises(fn):
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


@pytest.mark.parametrize("view", _VIEWS.values(), ids=_VIEWS.keys())
def test_views_share_storage_with_pytorchs_strides_and_offsets(view):
    torch = pytest.importorskip("torch")
    x, expected_x = dl.arange(24.0).reshape(2, 3, 4), torch.arange(24.0).reshape(2, 3, 4)
    y, expected = view(x), view(expected_x)
    assert y.stride() == expected.stride()
    assert y.storage_offset() == expected.storage_offset()
    assert y.data_ptr() - x.data_ptr() == expected.data_ptr() - expected_x.data_ptr()
    assert [y.stride(d) for d in range(-y.ndim, y.ndim)] == [
        expected.stride(d) for d in range(-y.ndim, y.ndim)
    ]


def test_copies_start_new_storage():
    torch = pytest.importorskip("torch")
    x, expected = dl.arange(24.0).reshape(2, 3, 4), torch.arange(24.0).reshape(2, 3, 4)
    copy, expected_copy = x.transpose(0, 1).contiguous(), expected.transpose(0, 1).contiguous()
    assert (
        copy.stride() == expected_copy.stride()
        and copy.storage_offset() == expected_copy.storage_offset() == 0
    )
    assert copy.data_ptr() != x.data_ptr() and x.clone().data_ptr() != x.data_ptr()


def test_stride_pointer_and_size_edge_cases_as_pytorch():
    torch = pytest.importorskip("torch")
    for lib in (dl, torch):
        assert lib.empty(0).data_ptr() == 0
        assert lib.tensor(3.0).stride() == () and lib.tensor(3.0).storage_offset() == 0
    for shape in [(0,), (0, 3), (3, 0), (2, 0, 4)]:
        assert dl.empty(*shape).stride() == torch.empty(*shape).stride(), shape
    assert dl.ones(4, 3)[:, :0].stride() == torch.ones(4, 3)[:, :0].stride()
    assert _raises(lambda: dl.tensor(3.0).stride(0)) == _raises(lambda: torch.tensor(3.0).stride(0))
    assert _raises(lambda: dl.ones(2, 3).stride(2)) == _raises(lambda: torch.ones(2, 3).stride(2))
    x = dl.ones(4)
    assert x.data_ptr() == x.numpy().ctypes.data and x[2:].data_ptr() == x.data_ptr() + 2 * x.element_size()
    for dtype in ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "bool"):
        expected = torch.ones(1, dtype=getattr(torch, dtype)).element_size()
        assert dl.ones(1, dtype=getattr(dl, dtype)).element_size() == expected, dtype


def test_kind_properties_as_pytorch():
    torch = pytest.importorskip("torch")
    for value in ([1.0, 2.0], [1, 2], [True]):
        x, expected = dl.tensor(value), torch.tensor(value)
        for name in ("is_xpu", "is_mps", "is_sparse", "is_quantized", "is_meta", "is_cuda"):
            assert getattr(x, name) is getattr(expected, name) is False, name
        assert x.is_complex() is expected.is_complex() is False
        assert repr(x.layout) == repr(expected.layout) == "torch.strided"
    assert dl.ones(2).layout is dl.strided and isinstance(dl.strided, dl.layout)


# ---------------------------------------------------------------- apply_


@pytest.mark.parametrize(
    ("value", "fn"),
    [
        ([1.0, -2.5, 4.0], lambda v: v * v + 1),
        ([[1, 2], [3, 4]], lambda v: v * 1.5),  # a float back into an int tensor truncates
        ([True, False], lambda v: not v),
        ([0.25, 4.0], lambda v: isinstance(v, float)),  # callable gets a Python number
    ],
)
def test_apply_as_pytorch(value, fn):
    torch = pytest.importorskip("torch")
    x, expected = dl.tensor(value), torch.tensor(value)
    before = x._version
    assert x.apply_(fn) is x and expected.apply_(fn) is expected
    assert x.tolist() == expected.tolist() and x.dtype == dl.tensor(value).dtype
    assert x._version == before + 1


def test_apply_writes_through_views_and_refuses_grad():
    torch = pytest.importorskip("torch")
    x = dl.zeros(2, 3)
    x[:, 1].apply_(lambda v: v + 7)
    assert x.tolist() == [[0.0, 7.0, 0.0]] * 2
    leaf, expected_leaf = dl.ones(2, requires_grad=True), torch.ones(2, requires_grad=True)
    assert _raises(lambda: leaf.apply_(abs)) == _raises(lambda: expected_leaf.apply_(abs))
    assert leaf.detach().apply_(lambda v: v * 3).tolist() == [3.0, 3.0]


@pytest.mark.gpu
@pytest.mark.skipif(not dl.cuda.is_available(), reason="needs cupy and a GPU")
def test_apply_is_cpu_only_and_gpu_pointers():
    x = dl.ones(4, device="cuda")
    with pytest.raises(TypeError, match="apply_ is only implemented on CPU tensors"):
        x.apply_(abs)
    assert x[1:].data_ptr() == x.data_ptr() + x.element_size() and x[1:].storage_offset() == 1
    assert x.reshape(2, 2).t().stride() == (1, 2)


# ---------------------------------------------------------------- __format__


@pytest.mark.parametrize(
    ("value", "spec"),
    [(0.123456, ".3f"), (0.123456, ""), (0.1, ">12"), (1.5, "e"), (7, "d"), (7, ".2f"), (3, "5"), (True, "")],
)
def test_format_of_a_0d_tensor_is_its_numbers(value, spec):
    torch = pytest.importorskip("torch")
    assert format(dl.tensor(value), spec) == format(torch.tensor(value), spec)
    assert f"{dl.tensor(value, requires_grad=isinstance(value, float)):{spec}}" == format(
        torch.tensor(value), spec
    )


@pytest.mark.parametrize("value", [[0.5], [0.5, 1.0], [[0.5]]])
def test_format_of_other_tensors_as_pytorch(value):
    torch = pytest.importorskip("torch")
    assert f"{dl.tensor(value)}" == repr(dl.tensor(value)) and f"{torch.tensor(value)}" == repr(
        torch.tensor(value)
    )
    assert _raises(lambda: format(dl.tensor(value), ".3f")) == _raises(
        lambda: format(torch.tensor(value), ".3f")
    )


def test_format_of_a_parameter_is_its_repr():
    torch = pytest.importorskip("torch")
    p = dl.nn.Parameter(dl.tensor(1.5))
    assert f"{p}" == repr(p)
    assert _raises(lambda: format(p, ".2f")) == _raises(
        lambda: format(torch.nn.Parameter(torch.tensor(1.5)), ".2f")
    )
    assert np.isclose(float(f"{p.detach():.2f}"), 1.5)
