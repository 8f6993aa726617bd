import numpy as np
import pytest

import dltool.engine as dl
from dltool.engine import nn
from tests.op_check import check_op

REDUCTIONS = ["mean", "sum", "none"]
rng = np.random.default_rng(0)
STEPS, BATCH, CLASSES = 8, 4, 5
# repeated labels (3, 3), an empty target, input lengths shorter than the longest
TARGETS = np.array([[1, 3, 3, 2], [2, 4, 0, 0], [0, 0, 0, 0], [4, 1, 2, 0]])
TARGET_LENGTHS = [4, 2, 0, 3]
INPUT_LENGTHS = [8, 6, 3, 5]
CONCATENATED = np.concatenate([row[:n] for row, n in zip(TARGETS, TARGET_LENGTHS, strict=True)])


def _ctc(targets, input_lengths=INPUT_LENGTHS, target_lengths=TARGET_LENGTHS, **kwargs):
    """``ctc_loss`` of ``log_softmax(x)``, the normalized log-probabilities it expects."""

    def fn(lib, x):
        lengths = [lib.tensor(input_lengths), lib.tensor(target_lengths)]
        return lib.nn.functional.ctc_loss(x.log_softmax(-1), lib.tensor(targets), *lengths, **kwargs)

    return fn


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("layout", ["padded", "concatenated"])
def test_ctc_loss_matches_pytorch(layout, reduction):
    targets = TARGETS if layout == "padded" else CONCATENATED
    check_op(_ctc(targets, reduction=reduction), (STEPS, BATCH, CLASSES))


def test_ctc_loss_blank_lengths_as_lists_and_unbatched():
    check_op(_ctc(TARGETS + 1, blank=0, reduction="sum"), (STEPS, BATCH, CLASSES + 1))
    check_op(_ctc(np.where(TARGETS == 4, 0, TARGETS), blank=4), (STEPS, BATCH, CLASSES))

    def as_lists(lib, x):
        return lib.nn.functional.ctc_loss(
            x.log_softmax(-1), lib.tensor(TARGETS), tuple(INPUT_LENGTHS), TARGET_LENGTHS
        )

    check_op(as_lists, (STEPS, BATCH, CLASSES))
    for reduction in REDUCTIONS:
        check_op(_ctc(TARGETS[0], INPUT_LENGTHS[0], TARGET_LENGTHS[0], reduction=reduction), (STEPS, CLASSES))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_ctc_loss_zero_infinity(reduction):
    # sample 0 needs 5 steps for (1, 1, 1) with blanks between, and gets 3: no alignment fits
    targets = np.array([[1, 1, 1], [2, 3, 0]])
    fn = _ctc(targets, [3, 6], [3, 2], reduction=reduction, zero_infinity=True)
    check_op(fn, (6, 2, CLASSES))
    loss = _ctc(targets, [3, 6], [3, 2], reduction="none")(dl, dl.randn(6, 2, CLASSES))
    assert np.isinf(loss[0].item()) and np.isfinite(loss[1].item())


def test_ctc_loss_gradient_of_log_probs_is_pytorchs():
    # as in PyTorch, the gradient is exp(log_probs) - occupancy: the gradient through log_softmax
    torch = pytest.importorskip("torch")
    log_probs = torch.randn(STEPS, BATCH, CLASSES, dtype=torch.float64).log_softmax(-1).numpy()
    ours, ref = dl.tensor(log_probs, requires_grad=True), torch.tensor(log_probs, requires_grad=True)
    dl.nn.functional.ctc_loss(ours, dl.tensor(TARGETS), INPUT_LENGTHS, TARGET_LENGTHS).backward()
    torch.nn.functional.ctc_loss(ref, torch.tensor(TARGETS), INPUT_LENGTHS, TARGET_LENGTHS).backward()
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), atol=1e-12)
    assert not ours.grad.numpy()[INPUT_LENGTHS[2] :, 2].any()  # steps past an input's length


def test_ctc_loss_longer_sequences_float32():
    torch = pytest.importorskip("torch")
    steps, batch, classes, longest = 60, 6, 12, 15
    logits = rng.standard_normal((steps, batch, classes)).astype(np.float32)
    targets = rng.integers(1, classes, (batch, longest))
    input_lengths, target_lengths = rng.integers(40, steps + 1, batch), rng.integers(1, longest + 1, batch)
    ours = dl.tensor(logits, requires_grad=True)
    ref = torch.tensor(logits, requires_grad=True)
    loss = nn.CTCLoss()(
        ours.log_softmax(-1), dl.tensor(targets), dl.tensor(input_lengths), dl.tensor(target_lengths)
    )
    torch_loss = torch.nn.CTCLoss()(
        ref.log_softmax(-1), torch.tensor(targets), torch.tensor(input_lengths), torch.tensor(target_lengths)
    )
    loss.backward()
    torch_loss.backward()
    assert loss.dtype == dl.float32 and ours.grad.dtype == dl.float32
    np.testing.assert_allclose(loss.item(), torch_loss.item(), rtol=1e-5)
    np.testing.assert_allclose(ours.grad.numpy(), ref.grad.numpy(), atol=1e-6)


def test_ctc_module_repr_and_double_backward():
    torch = pytest.importorskip("torch")
    for make in (
        lambda lib: lib.nn.CTCLoss(),
        lambda lib: lib.nn.CTCLoss(blank=2, reduction="sum", zero_infinity=True),
    ):
        assert repr(make(dl)) == repr(make(torch))
        assert make(dl).blank == make(torch).blank and make(dl).zero_infinity == make(torch).zero_infinity
    x = dl.randn(STEPS, BATCH, CLASSES, dtype=dl.float64, requires_grad=True)
    loss = _ctc(TARGETS)(dl, x)
    (grad,) = dl.autograd.grad(loss, x, create_graph=True)
    with pytest.raises(RuntimeError, match="derivative for ctc_loss_backward is not implemented"):
        grad.sum().backward()


def test_ctc_loss_errors_read_like_pytorch():
    log_probs = dl.randn(STEPS, BATCH, CLASSES).log_softmax(-1)
    targets, lengths = dl.tensor(TARGETS), dl.tensor(TARGET_LENGTHS)
    inputs = dl.tensor(INPUT_LENGTHS)
    F = dl.nn.functional
    with pytest.raises(RuntimeError, match="blank must be in label range"):
        F.ctc_loss(log_probs, targets, inputs, lengths, blank=CLASSES)
    with pytest.raises(RuntimeError, match="input_lengths must be of size batch_size"):
        F.ctc_loss(log_probs, targets, inputs[:2], lengths)
    with pytest.raises(RuntimeError, match="target_lengths must be of size batch_size"):
        F.ctc_loss(log_probs, targets, inputs, lengths[:3])
    with pytest.raises(RuntimeError, match="Expected input_lengths to have value at most 8, but got value 9"):
        F.ctc_loss(log_probs, targets, [9, 6, 3, 5], lengths)
    with pytest.raises(
        RuntimeError, match="Expected target_lengths to have value at least 0, but got value -1"
    ):
        F.ctc_loss(log_probs, targets, inputs, [4, 2, -1, 3])
    with pytest.raises(
        RuntimeError, match="Expected tensor to have size at least 5 at dimension 1, but got size 4"
    ):
        F.ctc_loss(log_probs, targets, inputs, [5, 2, 0, 3])
    with pytest.raises(RuntimeError, match="Expected tensor to have size 9 at dimension 0, but got size 8"):
        F.ctc_loss(log_probs, dl.tensor(CONCATENATED[:-1]), inputs, lengths)
    with pytest.raises(RuntimeError, match="Expected tensor to have size 4 at dimension 0, but got size 2"):
        F.ctc_loss(log_probs, targets[:2], inputs, lengths)
    with pytest.raises(RuntimeError, match="Expected 1 to 2 dimensions, but got 3-dimensional tensor"):
        F.ctc_loss(log_probs, targets[None], inputs, lengths)
    with pytest.raises(RuntimeError, match="input_lengths must be integral"):
        F.ctc_loss(log_probs, targets, inputs.float(), lengths)
    with pytest.raises(RuntimeError, match="target_lengths must be integral"):
        F.ctc_loss(log_probs, targets, inputs, lengths.float())
    with pytest.raises(ValueError, match="x is not a valid value for reduction"):
        F.ctc_loss(log_probs, targets, inputs, lengths, reduction="x")
    with pytest.raises(IndexError, match="target 6 is out of bounds for 5 classes"):
        F.ctc_loss(log_probs, targets + 5, inputs, lengths)
