"""``Work``: the handle an ``async_op=True`` collective returns."""

from __future__ import annotations

from collections.abc import Callable


class Work:
    """A collective in flight; ``wait()`` blocks until its result is in the tensors.

    Args:
        wait: blocks until the transfer is complete.
        test: returns whether the transfer is complete, without blocking.
        then: runs once after completion (e.g. the division of ``ReduceOp.AVG``, or copying a
            gathered buffer into the caller's tensors).
    """

    def __init__(
        self, wait: Callable[[], object], test: Callable[[], bool], then: Callable[[], None] | None = None
    ) -> None:
        self._wait = wait
        self._test = test
        self._then = [] if then is None else [then]
        self._done = False

    def _and_then(self, then: Callable[[], None]) -> Work:
        """Run ``then`` after completion too (after what runs already)."""
        self._then.append(then)
        return self

    def wait(self, timeout: object = None) -> bool:
        """Block until the collective has finished and its result is in place; return True.

        ``timeout`` is accepted for PyTorch's signature; MPI has no timeouts, so it is ignored.
        """
        if not self._done:
            self._wait()
            self._finish()
        return True

    def is_completed(self) -> bool:
        """Whether the collective has finished (finishing it if the transfer is done)."""
        if not self._done and self._test():
            self._finish()
        return self._done

    def _finish(self) -> None:
        self._done = True
        for then in self._then:
            then()
