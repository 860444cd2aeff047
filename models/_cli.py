"""The model-zoo command lines' error policy: a bad input is one line and exit status 1.

A :class:`secnn_jax.SecnnError` (an unknown model, a missing or corrupt checkpoint, an unreadable
torch file, a state dict that does not match) is the user's to fix, and its message says how, so
the tools print it on one line and exit with status 1. Any other exception is a bug in the
library and keeps its traceback.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from secnn_jax.errors import SecnnError

__all__ = ["one_line_errors", "one_line"]


def one_line(error: BaseException) -> str:
    """``error: <Type>: <message>`` with the message's line breaks and indents collapsed."""
    return f"error: {type(error).__name__}: {' '.join(str(error).split())}"


def one_line_errors(main: Callable[[list[str]], Any]) -> Callable[[list[str]], Any]:
    """Wraps an absl ``main``: a :class:`SecnnError` exits with status 1 and :func:`one_line`."""

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> Any:
        try:
            return main(argv)
        except SecnnError as error:
            sys.exit(one_line(error))  # SystemExit with a message: printed to stderr, status 1

    return wrapped
