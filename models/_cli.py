"""The command lines' policy (the zoo's and the experiments'): a bad input is one line and exit
status 1; ``--help`` explains the command and exits 0.

A :class:`secnn_jax.SecnnError` (an unknown model, a missing or corrupt checkpoint, an unreadable
torch file, a state dict that does not match) is the user's to fix, and its message says how, so
the tools print it on one line and exit with status 1. Any other exception is a bug in the
library and keeps its traceback. :func:`run` applies the policy to flag parsing too: an unknown
flag or a value a validator refuses is one line (``error: --frames: ...``), and ``--help`` prints
the command's docstring, its own flags and any extra text (the studies' configuration fields),
then exits 0; ``--helpfull`` stays absl's.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable
from typing import Any

from absl import app, flags

from secnn_jax.errors import SecnnError

__all__ = ["HELP_ARGS", "help_text", "one_line", "one_line_errors", "run"]

#: The arguments that ask for the short help (absl's spellings).
HELP_ARGS: frozenset[str] = frozenset({"--help", "-help", "-?", "--?", "--helpshort",
                                       "-helpshort", "--help=true", "--helpshort=true"})


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


def _wants_help(argv: list[str]) -> bool:
    """Whether ``argv`` (before any ``--``) asks for the short help."""
    for arg in argv[1:]:
        if arg == "--":
            return False
        if arg in HELP_ARGS:
            return True
    return False


def help_text(extra: str = "") -> str:
    """The ``--help`` text: the main module's docstring, its key flags (absl's rendering, each
    with its default) and ``extra``."""
    main = sys.modules["__main__"]
    doc = (main.__doc__ or f"USAGE: {sys.argv[0]} [flags]").rstrip()
    parts = [doc, "", "flags:", flags.FLAGS.main_module_help()]
    if extra:
        parts += ["", extra.rstrip()]
    parts += ["", "Try --helpfull to get a list of all flags (absl's included)."]
    return "\n".join(parts) + "\n"


def run(main: Callable[[list[str]], Any], *, extra_help: Callable[[], str] | None = None,
        check: Callable[[], Any] | None = None) -> None:
    """``absl.app.run(main)`` under the one-line policy.

    ``--help`` prints :func:`help_text` (with ``extra_help()``) on stdout and exits 0; a flag
    absl refuses (unknown, malformed, failing a validator) exits 1 with one line naming it;
    ``check()`` runs right after parsing, before ``main`` (a :class:`SecnnError` it raises is
    one line and exit 1); a :class:`SecnnError` from ``main`` is one line and exit 1.
    """

    def parser(argv: list[str]) -> list[str]:
        if _wants_help(argv):
            sys.stdout.write(help_text(extra_help() if extra_help else ""))
            sys.exit(0)
        try:
            rest = flags.FLAGS(argv)
        except flags.Error as error:
            sys.exit(f"error: {' '.join(str(error).split())}")
        if check is not None:
            try:
                check()
            except SecnnError as error:
                sys.exit(one_line(error))
        return rest

    guarded = one_line_errors(main)

    @functools.wraps(main)
    def wrapped(argv: list[str]) -> Any:
        try:
            return guarded(argv)
        except app.UsageError as error:  # absl would print the whole usage text first
            sys.exit(f"error: {' '.join(str(error).split())}")

    app.run(wrapped, flags_parser=parser)
