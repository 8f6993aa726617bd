"""The task API's pieces: running means, the supervised tasks' metrics and checks, optimizer requests."""

from __future__ import annotations

import numpy as np
import pytest

import dltool.engine as dl
from dltool.models.language import RNNLanguageModel
from dltool.training.errors import ConfigError
from dltool.training.tasks import (
    Classification,
    LanguageModel,
    MeanMetrics,
    Optimization,
    Regression,
    Task,
    batch_size,
    from_config,
    optimizations,
    to_device,
)


def test_means_weight_batches_by_size_and_survive_a_state_dict() -> None:
    means = MeanMetrics()
    means.update({"loss": dl.tensor(1.0), "acc": 1.0}, 2)
    means.update({"loss": 4.0, "acc": 0.0}, 1)
    assert means.compute() == {"loss": 2.0, "acc": 2 / 3}
    assert all(type(v) is float for v in means.compute().values())
    restored = MeanMetrics()
    restored.load_state_dict(means.state_dict())
    assert restored.compute() == means.compute()


def test_classification_scores_accuracy_and_counts_the_confusion_matrix() -> None:
    task = Classification(dl.nn.Flatten(), dl.nn.CrossEntropyLoss(), shown=1)
    task.classes = ["a", "b"]
    x = dl.tensor([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0]]).reshape(3, 2, 1, 1)  # images of 2 channels
    y = dl.tensor([1, 1, 0])
    train = task.training_step((x, y), 0)
    assert train["acc"] == pytest.approx(1 / 3)
    assert float(train["loss"]) == pytest.approx(float(dl.nn.functional.cross_entropy(x.flatten(1), y)))
    metrics = task.evaluate([(x, y), (x[:1], y[:1])], "val")
    assert metrics == pytest.approx({"val/loss": metrics["val/loss"], "val/acc": 2 / 4})
    np.testing.assert_array_equal(task.matrix, [[0, 1], [1, 2]])
    assert len(task.mistakes) == 1 and task.mistakes[0][1:] == (1, 0)
    assert set(task.pictures()) == {"val/confusion_matrix", "val/misclassified"}
    assert task.training  # evaluate puts the mode back


def test_regression_reports_the_mean_absolute_error() -> None:
    task = Regression(dl.nn.Identity(), dl.nn.MSELoss())
    values = task.training_step((dl.tensor([[1.0], [2.0]]), dl.tensor([[0.0], [2.5]])), 0)
    assert values["mae"] == 0.75 and float(values["loss"]) == pytest.approx(0.625)


def test_check_names_a_loss_that_does_not_fit() -> None:
    task = Classification(dl.nn.Identity(), dl.nn.MSELoss())
    task.classes = ["a", "b"]
    with pytest.raises(
        ConfigError, match=r"loss \(MSELoss\) does not fit this model and dataset \(model output \(2, 2\)"
    ):
        task.check((dl.zeros(2, 2), dl.tensor([0, 1])))
    with pytest.raises(ConfigError, match="model: its output does not match the dataset's 3 classes"):
        task.classes = ["a", "b", "c"]
        task.check((dl.zeros(2, 2), dl.tensor([0, 1])))


def test_optimizer_requests_and_built_optimizers_become_optimizations() -> None:
    weight = dl.nn.Parameter(dl.zeros(2))
    sgd = dl.optim.SGD([weight], lr=0.1)
    built = optimizations(
        [from_config("optimizer", [weight], scheduler="scheduler"), sgd, Optimization(sgd, interval="step")],
        lambda request: Optimization(sgd, config_key=request.key),
    )
    assert [o.config_key for o in built] == ["optimizer", None, None]
    assert built[2].interval == "step"
    with pytest.raises(TypeError, match="got str"):
        optimizations("adam", lambda request: None)
    with pytest.raises(TypeError, match="no optimizer"):
        optimizations([], lambda request: None)


def test_the_default_optimizer_request_covers_every_parameter() -> None:
    class Two(Task):
        def __init__(self) -> None:
            super().__init__()
            self.a, self.b = dl.nn.Linear(2, 2), dl.nn.Linear(2, 1)

    request = Two().configure_optimizers()
    assert request.key == "optimizer" and request.scheduler == "scheduler" and len(request.params) == 4
    assert not Two().has_validation


def test_optimizer_step_clips_and_steps_each_optimizer() -> None:
    task = Task()
    task.weight = dl.nn.Parameter(dl.tensor([3.0, 4.0]))
    task.grad_clip = 1.0
    sgd = dl.optim.SGD([task.weight], lr=1.0)
    task.optimizer_step((task.weight * dl.tensor([3.0, 4.0])).sum(), sgd)
    np.testing.assert_allclose(task.weight.detach().numpy(), [3.0 - 0.6, 4.0 - 0.8], rtol=1e-6)


def test_batches_move_to_the_device_and_count_their_samples() -> None:
    batch = {"x": dl.zeros(5, 3), "rest": [dl.zeros(5), 7]}
    assert to_device(batch, "cpu")["rest"][1] == 7
    assert batch_size(batch) == 5 and batch_size((dl.tensor(1.0),)) == 1


def test_a_carried_state_continues_the_stream_detached() -> None:
    dl.manual_seed(0)
    task = LanguageModel(RNNLanguageModel(7, embedding_dim=4, hidden_size=5, num_layers=1), carry_state=True)
    tokens = dl.randint(0, 7, (2, 9))
    first, second = (tokens[:, :4], tokens[:, 1:5]), (tokens[:, 4:8], tokens[:, 5:9])
    task.training_step(first, 0)
    carried = task.training_step(second, 1)["loss"]
    logits, _ = task.model(tokens[:, :8])  # one pass over both windows
    whole = dl.nn.functional.cross_entropy(logits[:, 4:].reshape(-1, 7), tokens[:, 5:9].reshape(-1))
    np.testing.assert_allclose(float(carried), float(whole), rtol=1e-5)
    assert all(not s.requires_grad for s in task._state)
    fresh = task.training_step(second, 0)["loss"]  # a pass's first batch starts from zero
    assert float(fresh) != pytest.approx(float(carried))
    metrics = task.epoch_metrics({"loss": 1.0})
    assert metrics["ppl"] == pytest.approx(np.e) and task.epoch_metrics({"loss": 800.0})["ppl"] == float(
        "inf"
    )


def test_generate_samples_after_the_prompt_and_follows_the_seed() -> None:
    dl.manual_seed(0)
    task = LanguageModel(RNNLanguageModel(7, embedding_dim=4, hidden_size=5, num_layers=1))
    draw = [task.generate([1, 2], 12, 0.8, dl.Generator().manual_seed(3)) for _ in range(2)]
    assert draw[0] == draw[1] and len(draw[0]) == 12 and all(0 <= t < 7 for t in draw[0])
    with pytest.raises(ValueError, match="temperature must be > 0"):
        task.generate([1], 3, 0.0)
