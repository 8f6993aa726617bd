"""A synthetic regression dataset, ``y = X w + b + noise``, for linear-regression runs and tests."""

from __future__ import annotations

import numpy as np

import dltool.engine as dl
from dltool.engine.utils.data import TensorDataset


class SyntheticRegression(TensorDataset):
    """``num_samples`` rows of ``x ~ N(0, I)`` and ``y = x w + b + noise * N(0, I)``.

    ``w`` and ``b`` come from ``seed`` alone, so the train and test splits share them; ``x`` and
    the noise differ between the splits. Samples are ``(x, y)`` float32 tensors of shapes
    ``(num_features,)`` and ``(num_outputs,)``.

    Args:
        num_samples: rows in this split.
        num_features: columns of ``x``.
        num_outputs: columns of ``y``.
        noise: standard deviation of the Gaussian noise.
        seed: fixes ``w``, ``b`` and both splits' samples.
        train: which split.

    Example:
        >>> data = SyntheticRegression(num_samples=4, num_features=3)
        >>> x, y = data[0]
        >>> tuple(x.shape), tuple(y.shape), tuple(data.weight.shape)
        ((3,), (1,), (3, 1))
    """

    def __init__(
        self,
        num_samples: int = 1024,
        num_features: int = 8,
        num_outputs: int = 1,
        noise: float = 0.1,
        seed: int = 0,
        train: bool = True,
    ) -> None:
        if num_samples < 1 or num_features < 1 or num_outputs < 1:
            raise ValueError(
                f"num_samples, num_features and num_outputs must be >= 1, got {num_samples}, {num_features}, "
                f"{num_outputs}"
            )
        if noise < 0:
            raise ValueError(f"noise must be >= 0, got {noise}")
        true_rng, train_rng, test_rng = (
            np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(3)
        )
        weight = true_rng.standard_normal((num_features, num_outputs))
        bias = true_rng.standard_normal(num_outputs)
        rng = train_rng if train else test_rng
        x = rng.standard_normal((num_samples, num_features))
        y = x @ weight + bias + noise * rng.standard_normal((num_samples, num_outputs))
        self.weight = dl.from_numpy(weight.astype(np.float32))
        self.bias = dl.from_numpy(bias.astype(np.float32))
        super().__init__(dl.from_numpy(x.astype(np.float32)), dl.from_numpy(y.astype(np.float32)))
