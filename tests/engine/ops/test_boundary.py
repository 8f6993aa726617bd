"""``out=`` as PyTorch has it: resizing, dtype casts, autograd refusal, tuples of outputs."""

import inspect

import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine.ops._boundary import type_name


def test_out_is_written_and_returned():
    out = dl.zeros(3)
    result = dl.tan(dl.tensor([0.0, 0.5, 1.0]), out=out)
    assert result is out and np.allclose(out.numpy(), np.tan([0.0, 0.5, 1.0]))
    assert out._version == 1


def test_out_of_another_shape_is_resized_with_pytorchs_warning():
    out = dl.zeros(2)
    with pytest.warns(
        UserWarning, match=r"An output with one or more elements was resized since it had shape \[2\]"
    ):
        dl.sinh(dl.ones(2, 3), out=out)
    assert out.shape == (2, 3)
    empty = dl.empty(0)
    dl.sinh(dl.ones(4), out=empty)  # an empty out is resized silently
    assert empty.shape == (4,)


def test_out_keeps_its_dtype_and_refuses_float_into_integer():
    out = dl.empty(2, dtype=dl.float64)
    dl.erf(dl.tensor([0.5, 1.0]), out=out)
    assert out.dtype == dl.float64
    with pytest.raises(
        RuntimeError, match="result type float32 can't be cast to the desired output type int64"
    ):
        dl.erf(dl.tensor([0.5, 1.0]), out=dl.empty(2, dtype=dl.int64))


def test_out_refuses_inputs_that_require_grad():
    x = dl.ones(2, requires_grad=True)
    with pytest.raises(
        RuntimeError,
        match=r"sinh\(\): functions with out=... arguments don't support automatic differentiation",
    ):
        dl.sinh(x, out=dl.empty(2))
    with dl.no_grad():
        out = dl.sinh(x, out=dl.empty(2))
    assert not out.requires_grad


def test_tuple_results_go_into_a_tuple_of_outputs():
    a = dl.tensor([[2.0, 1.0], [1.0, 3.0]])
    values, vectors = dl.empty(2), dl.empty(2, 2)
    result = dl.linalg.eigh(a, out=(values, vectors))
    assert result.eigenvalues is values and result.eigenvectors is vectors
    np.testing.assert_allclose(values.numpy(), np.linalg.eigvalsh(a.numpy()), rtol=1e-6)
    with pytest.raises(TypeError, match="must be a tuple of 2 Tensors"):
        dl.linalg.eigh(a, out=values)
    with pytest.raises(TypeError, match=r"tan\(\): argument 'out' must be Tensor, not list"):
        dl.tan(a, out=[values])


def test_signatures_show_out_as_keyword_only():
    parameter = inspect.signature(dl.atan2).parameters["out"]
    assert parameter.kind is inspect.Parameter.KEYWORD_ONLY and parameter.default is None
    assert list(inspect.signature(dl.linalg.svd).parameters) == ["A", "full_matrices", "out"]


def test_type_names_are_pytorchs():
    assert [type_name(t) for t in (dl.float32, dl.int64, dl.bool, dl.float16)] == [
        "Float",
        "Long",
        "Bool",
        "Half",
    ]
