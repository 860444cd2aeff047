"""The project's one error type for bad input: :class:`SecnnError`.

Every error the library, the model zoo and the command-line tools raise because of a user's input
(a file, a flag, a shape, a NaN) derives from :class:`SecnnError`. Subclasses also derive from the
built-in error they refine (``ValueError``, ``FileNotFoundError``, ...) where that was already the
documented behaviour, so existing ``except ValueError`` code keeps working. The command-line tools
print a :class:`SecnnError` as one line and exit with status 1; any other exception is a bug and
keeps its traceback.
"""

from __future__ import annotations

__all__ = ["SecnnError"]


class SecnnError(Exception):
    """Base class of every error raised for bad input (see the module docstring)."""
