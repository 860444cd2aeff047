"""Runs command lines ``python -m COMMAND ARGS...`` fast: JAX and the shared modules are
imported once, then each command runs as ``__main__`` (``runpy``, as ``python -m`` does) in a
forked child of its own, so absl's flags and ``sys.argv`` start fresh for each.

Usage: ``python tests/_cli_runner.py '[["experiments.peers", "--help"], ...]'``; prints one JSON
list of ``[exit status, stdout, stderr]``, one per command line. For quick command lines only
(``--help``, flags refused before any model loads): a child must not start JAX's backends
in a way a fork breaks."""

from __future__ import annotations

import json
import os
import runpy
import sys
import tempfile

import jax  # noqa: F401  (imported once, shared by the forked children)
import matplotlib  # noqa: F401
import ml_collections  # noqa: F401

import experiments.cli  # noqa: F401


def _run(command: str, *args: str) -> tuple[int, str, str]:
    """``python -m command args...`` in a forked child: its exit status, stdout and stderr."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        pid = os.fork()
        if pid == 0:  # the child: run the command as python -m would, then exit
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.argv = [command, *args]
            code: object = 0
            try:
                runpy.run_module(command, run_name="__main__", alter_sys=True)
            except SystemExit as e:
                code = e.code
                if code is not None and not isinstance(code, int):
                    print(code, file=sys.stderr)
                    code = 1
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code or 0)
        _, status = os.waitpid(pid, 0)
        out.seek(0)
        err.seek(0)
        return (os.waitstatus_to_exitcode(status), out.read().decode(), err.read().decode())


if __name__ == "__main__":
    print(json.dumps([_run(*line) for line in json.loads(sys.argv[1])]))
