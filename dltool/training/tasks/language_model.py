"""Language modelling: predict each next token; truncated BPTT for recurrent models."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import dltool.engine as dl
from dltool.training.tasks.base import StepOutput, Task

# (inputs, targets, state) -> (loss, final state)
LossAndState = Callable[[dl.Tensor, dl.Tensor, Any], tuple[dl.Tensor, Any]]

# exp() of a mean loss above this overflows a float; such a perplexity is reported as inf
_LARGEST_EXPONENT = 700.0


class LanguageModel(Task):
    """Next-token cross-entropy of a model ``(tokens, state) -> (logits, state)`` on
    ``(input, target)`` windows, with perplexity (``exp`` of the pass's mean loss).

    With ``carry_state`` a recurrent model's state runs on from one batch to the next within a
    pass, detached, so gradients flow back ``seq_len`` steps while the state sees the whole
    stream (truncated backpropagation through time). That needs batches whose rows continue
    each other (``TextCorpus(streams=batch_size)`` without shuffling); the state starts from
    zero at each pass's first batch. A resumed run starts its first batch from zero too: the
    state is not in checkpoints, so a language model's resume mid-epoch is not bit-exact.

    Args:
        model: e.g. ``dltool.models.language.RNNLanguageModel``.
        carry_state: carry the state across batches (True) or start each batch from zero.
    """

    name = "language_model"
    dataset_kinds = ("language_model",)
    metric_names = ("loss", "ppl")

    def __init__(self, model: dl.nn.Module, carry_state: bool = True) -> None:
        super().__init__()
        if not isinstance(model, dl.nn.Module):
            raise TypeError(f"model: expected an nn.Module, got {type(model).__name__}")
        self.model = model
        self.carry_state = carry_state
        self._state: Any = None

    def forward(self, tokens: dl.Tensor, state: Any = None) -> tuple[dl.Tensor, Any]:
        return self.model(tokens, state)

    def training_step(self, batch: Any, batch_idx: int) -> StepOutput:
        return self.carried_step(batch, batch_idx, self.loss_and_state)

    def carried_step(self, batch: Any, batch_idx: int, loss_and_state: LossAndState) -> StepOutput:
        """``loss_and_state`` (``self.loss_and_state``, or a compiled step around it) on ``batch``
        from the state the batch starts from, its final state kept for the next batch."""
        inputs, targets = batch
        loss, state = loss_and_state(inputs, targets, self.initial_state(inputs, batch_idx))
        self.keep_state(state)
        return {"loss": loss}

    def initial_state(self, inputs: dl.Tensor, batch_idx: int) -> Any:
        """The state a batch starts from: the previous batch's with ``carry_state``, else None."""
        state = self._state if self.carry_state and batch_idx > 0 else None
        if state is not None and _rows(state) != inputs.shape[0]:
            return None  # a shorter last batch: its rows continue none of the previous ones
        return state

    def loss_and_state(self, inputs: dl.Tensor, targets: dl.Tensor, state: Any) -> tuple[dl.Tensor, Any]:
        """The batch's next-token cross-entropy and the model's final state, detached."""
        logits, state = self.model(inputs, state)
        loss = dl.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))
        return loss, _detached(state)

    def keep_state(self, state: Any) -> None:
        """Keep a batch's final state for the next batch (with ``carry_state``)."""
        self._state = state if self.carry_state else None

    def validation_step(self, batch: Any, batch_idx: int) -> StepOutput:
        return self.training_step(batch, batch_idx)

    def epoch_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        loss = metrics["loss"]
        return {**metrics, "ppl": math.exp(loss) if loss < _LARGEST_EXPONENT else math.inf}

    @dl.no_grad()
    def generate(
        self, prompt: list[int], length: int, temperature: float = 1.0, generator: dl.Generator | None = None
    ) -> list[int]:
        """``length`` tokens sampled after ``prompt``, one at a time, from the softmax of the
        logits divided by ``temperature`` (lower: more likely tokens; 0 is not allowed).

        A recurrent model is fed each new token with its state; a model without state (a
        Transformer) is fed the last ``max_len`` tokens each time.
        """
        if not prompt:
            raise ValueError("generate needs a prompt of at least one token")
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        was_training = self.training
        self.eval()
        device = self.model_device()
        context = list(prompt)
        window = getattr(self.model, "max_len", None)
        try:
            logits, state = self.model(dl.tensor([context[-window:] if window else context], device=device))
            for _ in range(length):
                probs = (logits[0, -1] / temperature).softmax(dim=-1)
                token = int(dl.multinomial(probs, 1, generator=generator).item())
                context.append(token)
                feed = [token] if state is not None else context[-window:] if window else context
                logits, state = self.model(dl.tensor([feed], device=device), state)
        finally:
            self.train(was_training)
        return context[len(prompt) :]

    def model_device(self) -> Any:
        return next(self.model.parameters()).device


def _rows(state: Any) -> int:
    """The batch size a recurrent state is for: ``h`` is ``(layers, N, hidden)``."""
    first = state[0] if isinstance(state, tuple) else state
    return int(first.shape[1])


def _detached(state: Any) -> Any:
    if state is None:
        return None
    if isinstance(state, tuple):
        return tuple(s.detach() for s in state)
    return state.detach()
