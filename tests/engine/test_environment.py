"""The device and environment shims that programs call first, against PyTorch's answers."""


import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import _environment

no_gpu = pytest.mark.skipif(dl.cuda.is_available(), reason="checks the answers on a machine without a GPU")
needs_gpu = pytest.mark.skipif(not dl.cuda.is_available(), reason="needs cupy and a GPU")


def _raises(fn):
    """The type and message of what ``fn()`` raises."""
    with pytest.raises(Exception) as info:
        fn()
    return type(info.value), str(info.value)


# ---------------------------------------------------------------- accelerator, cuda


def test_accelerator_agrees_with_cuda():
    assert dl.accelerator.is_available() == dl.cuda.is_available()
    assert dl.accelerator.device_count() == dl.cuda.device_count()
    found = dl.accelerator.current_accelerator(check_available=True)
    assert found == (dl.device("cuda") if dl.cuda.is_available() else None)


@no_gpu
def test_queries_without_gpu_answer_as_pytorch():
    torch = pytest.importorskip("torch")
    if torch.cuda.is_available():
        pytest.skip("PyTorch sees a GPU that dltool does not")
    assert dl.cuda.is_available() is torch.cuda.is_available() is False
    assert dl.cuda.device_count() == torch.cuda.device_count() == 0
    assert dl.accelerator.is_available() is torch.accelerator.is_available()
    assert dl.accelerator.device_count() == torch.accelerator.device_count()
    if not dl.backends.cuda.is_built():
        assert dl.accelerator.current_accelerator() is torch.accelerator.current_accelerator() is None
    for name in ("current_device_index", "synchronize"):
        expected = _raises(getattr(torch.accelerator, name))
        assert _raises(getattr(dl.accelerator, name)) == expected


@no_gpu
def test_cuda_without_gpu():
    dl.cuda.synchronize()  # a no-op without a GPU (PyTorch raises there)
    dl.cuda.empty_cache()
    with pytest.raises(RuntimeError, match="CUDA is not available"):
        dl.cuda.current_device()


def test_cuda_seeding_seeds_the_one_generator():
    dl.cuda.manual_seed_all(5)
    first = dl.rand(3).tolist()
    dl.cuda.manual_seed(5)
    assert dl.rand(3).tolist() == first


@pytest.mark.gpu
@needs_gpu
def test_cuda_queries_on_gpu():
    assert dl.cuda.device_count() >= 1 and dl.accelerator.device_count() == dl.cuda.device_count()
    assert dl.cuda.current_device() == dl.accelerator.current_device_index() == 0
    assert dl.accelerator.current_accelerator() == dl.device("cuda")
    x = dl.ones(1000, 1000, device="cuda") @ dl.ones(1000, 1000, device="cuda")
    dl.cuda.synchronize()
    dl.cuda.synchronize(0)
    dl.cuda.synchronize("cuda:0")
    dl.accelerator.synchronize()
    assert x[0, 0].item() == 1000.0
    dl.cuda.empty_cache()


# ---------------------------------------------------------------- backends


def test_backend_flags_default_as_pytorch():
    torch = pytest.importorskip("torch")
    for name in ("enabled", "benchmark", "deterministic", "allow_tf32"):
        assert getattr(dl.backends.cudnn, name) == getattr(torch.backends.cudnn, name), name
    for name in ("allow_tf32", "allow_fp16_reduced_precision_reduction"):
        assert getattr(dl.backends.cuda.matmul, name) == getattr(torch.backends.cuda.matmul, name), name
    assert dl.backends.mps.is_available() is torch.backends.mps.is_available() is False
    if not torch.cuda.is_available():
        assert dl.backends.cudnn.is_available() is torch.backends.cudnn.is_available()
        assert dl.backends.cudnn.version() is torch.backends.cudnn.version()


def test_cudnn_flags_are_stored(monkeypatch):
    cudnn = dl.backends.cudnn
    monkeypatch.setattr(cudnn, "benchmark", cudnn.benchmark)  # restored after the test
    monkeypatch.setattr(cudnn, "deterministic", cudnn.deterministic)
    cudnn.benchmark, cudnn.deterministic = True, True
    assert cudnn.benchmark and cudnn.deterministic
    with cudnn.flags(enabled=False, benchmark=False):
        assert not cudnn.enabled and not cudnn.benchmark and not cudnn.deterministic
    assert cudnn.enabled and cudnn.benchmark and cudnn.deterministic
    with pytest.raises(KeyError), cudnn.flags(deterministic=True):
        assert cudnn.deterministic
        raise KeyError("restores on errors too")
    assert cudnn.deterministic and cudnn.enabled


def test_submodules_import_as_in_pytorch():
    import dltool.engine.backends.cudnn as cudnn
    from dltool.engine.cuda import FloatTensor

    assert cudnn is dl.backends.cudnn and FloatTensor is dl.cuda.FloatTensor
    assert dl.device("cuda:1").index == 1 and dl.device("cpu").type == "cpu"


# ---------------------------------------------------------------- determinism


@pytest.fixture
def _restore_determinism():
    saved = dict(_environment._deterministic)
    yield
    _environment._deterministic.update(saved)


@pytest.mark.usefixtures("_restore_determinism")
def test_deterministic_algorithms_round_trip():
    torch = pytest.importorskip("torch")
    assert dl.are_deterministic_algorithms_enabled() is torch.are_deterministic_algorithms_enabled() is False
    dl.use_deterministic_algorithms(True, warn_only=True)
    assert dl.are_deterministic_algorithms_enabled() and dl.is_deterministic_algorithms_warn_only_enabled()
    dl.use_deterministic_algorithms(False)
    assert not dl.are_deterministic_algorithms_enabled()
    assert not dl.is_deterministic_algorithms_warn_only_enabled()
    with pytest.raises(TypeError) as expected:
        torch.use_deterministic_algorithms(1)
    with pytest.raises(TypeError) as info:
        dl.use_deterministic_algorithms(1)
    assert str(info.value).replace("' must", "' (position 1) must") == str(expected.value)


# ---------------------------------------------------------------- print options

_FLOATS = [
    [1.23456, -2.5, 1e-3],
    [1.23456e-6, 2.5e5],
    [[1.5, -2.25], [3.0, 4.125]],
    [1.0, 2.0],
    3.14159,
    (np.arange(40.0) / 3).tolist(),
]
_INTS = [list(range(10)), [True, False]]


@pytest.fixture
def printoptions():
    """Both libraries' print options, reset to the defaults after the test."""
    torch = pytest.importorskip("torch")
    yield torch
    torch.set_printoptions(profile="default")
    dl.set_printoptions(profile="default")


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"precision": 2},
        {"sci_mode": False},
        {"sci_mode": True},
        {"sci_mode": True, "precision": 2},
        {"profile": "short"},
        {"linewidth": 40},
        {"profile": "full"},
    ],
)
def test_set_printoptions_prints_as_pytorch(printoptions, options):
    torch = printoptions
    torch.set_printoptions(**options)
    dl.set_printoptions(**options)
    for value in _FLOATS:
        assert repr(dl.tensor(value)) == repr(torch.tensor(value)), value
    for value in _INTS:
        assert repr(dl.tensor(value)) == repr(torch.tensor(value)), value


@pytest.mark.parametrize("options", [{"threshold": 5}, {"threshold": 5, "edgeitems": 1}])
def test_threshold_summarizes_as_pytorch(printoptions, options):
    torch = printoptions
    torch.set_printoptions(**options)
    dl.set_printoptions(**options)
    for value in [list(range(10)), (np.arange(12.0) / 7).tolist()]:
        # NOTE: numpy writes the ellipsis ", ...," where PyTorch writes ",  ...,"
        assert repr(dl.tensor(value)) == repr(torch.tensor(value)).replace(",  ...,", ", ...,")
    assert repr(dl.tensor([1, 2, 3])) == repr(torch.tensor([1, 2, 3]))


def test_printoptions_round_trip(printoptions):
    torch = printoptions
    assert dl.get_printoptions() == torch._tensor_str.get_printoptions()
    dl.set_printoptions(precision=3, sci_mode=False)
    torch.set_printoptions(precision=3, sci_mode=False)
    assert dl.get_printoptions() == torch._tensor_str.get_printoptions()
    dl.set_printoptions(threshold=10)  # an omitted sci_mode goes back to automatic, as in PyTorch
    assert dl.get_printoptions()["sci_mode"] is None and dl.get_printoptions()["precision"] == 3
    with pytest.raises(ValueError, match="profile should be one of"):
        dl.set_printoptions(profile="long")
