"""Language models: a recurrent network and a causal Transformer, with one interface.

Both map token ids ``(N, T)`` and a state to next-token logits ``(N, T, vocab_size)`` and a new
state, so a trainer can carry the state of a recurrent model across batches (truncated
backpropagation through time) and pass the Transformer's ``None`` along unchanged.
"""

from __future__ import annotations

from typing import Any

from dltool.engine import Tensor, arange, nn
from dltool.engine.nn import init

_CELLS = {"lstm": nn.LSTM, "gru": nn.GRU, "rnn": nn.RNN}


def _check_tokens(model: nn.Module, tokens: Tensor) -> None:
    if tokens.ndim != 2:
        raise ValueError(
            f"{type(model).__name__} expects token ids of shape (N, T), got shape {tuple(tokens.shape)}"
        )


class RNNLanguageModel(nn.Module):
    """``Embedding-Dropout-RNN-Dropout-Linear``, as PyTorch's word_language_model example builds it.

    The submodule names (``encoder``, ``rnn``, ``decoder``) are the example's, so its state dicts
    load here. ``dropout`` also applies between stacked recurrent layers.

    Args:
        vocab_size: the number of distinct tokens (inputs and logits).
        embedding_dim: the size of a token's embedding.
        hidden_size: the recurrent state's size per layer.
        num_layers: stacked recurrent layers.
        cell: ``"lstm"``, ``"gru"`` or ``"rnn"`` (Elman, tanh).
        dropout: the drop probability on the embeddings, between layers, and on the outputs.
        tie_weights: share the embedding matrix with the decoder (Press & Wolf, 2017); needs
            ``embedding_dim == hidden_size``.
        init_range: start the embedding and decoder weights from ``U(-init_range, init_range)``
            and the decoder bias at zero, as the word_language_model example does with 0.1; None
            keeps each layer's own initialization (the embedding from ``N(0, 1)``), which trained
            the Shakespeare characters faster (see docs/tasks.md).

    Raises:
        ValueError: an unknown ``cell``, or ``tie_weights`` with different sizes.

    Example:
        >>> import dltool.engine as torch
        >>> model = RNNLanguageModel(vocab_size=80, hidden_size=32)
        >>> logits, (h, c) = model(torch.zeros(4, 10, dtype=torch.int64))
        >>> logits.shape, h.shape
        ((4, 10, 80), (2, 4, 32))
    """

    def __init__(
        self,
        vocab_size: int,
        embedding_dim: int = 64,
        hidden_size: int = 256,
        num_layers: int = 2,
        cell: str = "lstm",
        dropout: float = 0.0,
        tie_weights: bool = False,
        init_range: float | None = None,
    ) -> None:
        super().__init__()
        if cell not in _CELLS:
            raise ValueError(f"cell must be one of {', '.join(map(repr, _CELLS))}, got {cell!r}")
        if tie_weights and embedding_dim != hidden_size:
            raise ValueError(
                "tie_weights needs embedding_dim == hidden_size (the decoder reuses the embedding "
                f"matrix), got embedding_dim={embedding_dim} and hidden_size={hidden_size}"
            )
        self.cell = cell
        self.drop = nn.Dropout(dropout)
        self.encoder = nn.Embedding(vocab_size, embedding_dim)
        # NOTE: the layers' own dropout only acts between layers, and warns when there are none
        self.rnn = _CELLS[cell](
            embedding_dim,
            hidden_size,
            num_layers=num_layers,
            batch_first=True,
            dropout=dropout if num_layers > 1 else 0.0,
        )
        self.decoder = nn.Linear(hidden_size, vocab_size)
        if tie_weights:
            self.decoder.weight = self.encoder.weight
        if init_range is not None:
            init.uniform_(self.encoder.weight, -init_range, init_range)
            init.uniform_(self.decoder.weight, -init_range, init_range)
            init.zeros_(self.decoder.bias)

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, Any]:
        """Logits for the token after each of ``tokens``, and the recurrent state after the last.

        Args:
            tokens: int64 token ids ``(N, T)``.
            state: the state a previous call returned (``(h, c)`` for an LSTM, ``h`` otherwise,
                each ``(num_layers, N, hidden_size)``), or None to start from zeros.

        Returns:
            ``(logits, state)``: logits ``(N, T, vocab_size)`` and the new state.
        """
        _check_tokens(self, tokens)
        output, state = self.rnn(self.drop(self.encoder(tokens)), state)
        return self.decoder(self.drop(output)), state


class TransformerLanguageModel(nn.Module):
    """A decoder-only (GPT-style) Transformer: each position attends to itself and those before it.

    Token plus learned position embeddings (both from ``N(0, 0.02)``, as GPT-2 starts them), then
    dropout, then ``num_layers`` pre-norm ``TransformerEncoderLayer``s under a causal mask, a final
    ``LayerNorm`` and a ``Linear`` decoder. It has no recurrent state: ``forward`` ignores
    ``state`` and returns None for it.

    Args:
        vocab_size: the number of distinct tokens (inputs and logits).
        d_model: the width of the embeddings and of every layer.
        nhead: attention heads per layer; must divide ``d_model``.
        num_layers: stacked Transformer layers.
        dim_feedforward: the hidden size of each layer's feed-forward network.
        max_len: the longest sequence (the number of position embeddings).
        dropout: the drop probability on the embeddings, in attention, and after each block.

    Example:
        >>> import dltool.engine as torch
        >>> model = TransformerLanguageModel(vocab_size=80, d_model=32, nhead=2, dim_feedforward=64)
        >>> logits, state = model(torch.zeros(4, 10, dtype=torch.int64))
        >>> logits.shape, state
        ((4, 10, 80), None)
    """

    def __init__(
        self,
        vocab_size: int,
        d_model: int = 128,
        nhead: int = 4,
        num_layers: int = 2,
        dim_feedforward: int = 512,
        max_len: int = 512,
        dropout: float = 0.1,
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.embedding = nn.Embedding(vocab_size, d_model)
        self.position = nn.Embedding(max_len, d_model)
        self.drop = nn.Dropout(dropout)
        layer = nn.TransformerEncoderLayer(
            d_model, nhead, dim_feedforward, dropout, batch_first=True, norm_first=True
        )
        self.encoder = nn.TransformerEncoder(
            layer, num_layers, norm=nn.LayerNorm(d_model), enable_nested_tensor=False
        )
        self.decoder = nn.Linear(d_model, vocab_size)
        init.normal_(self.embedding.weight, std=0.02)
        init.normal_(self.position.weight, std=0.02)

    def forward(self, tokens: Tensor, state: Any = None) -> tuple[Tensor, None]:
        """Logits for the token after each of ``tokens``, each from that token and those before it.

        Args:
            tokens: int64 token ids ``(N, T)`` with ``T <= max_len``.
            state: ignored; there for the interface ``RNNLanguageModel`` shares.

        Returns:
            ``(logits, None)`` with logits ``(N, T, vocab_size)``.

        Raises:
            ValueError: ``tokens`` is not 2-D, or longer than ``max_len``.
        """
        _check_tokens(self, tokens)
        length = tokens.shape[1]
        if length > self.max_len:
            raise ValueError(
                f"TransformerLanguageModel got a sequence of {length} tokens, longer than max_len={self.max_len}"
            )
        x = self.drop(self.embedding(tokens) + self.position(arange(length, device=tokens.device)))
        mask = nn.Transformer.generate_square_subsequent_mask(length, device=x.device, dtype=x.dtype)
        return self.decoder(self.encoder(x, mask=mask, is_causal=True)), None
